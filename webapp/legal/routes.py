"""Legal's queue: NPA loans, longest overdue first."""
from flask import Blueprint

from webapp.loans.routes import render_loan_list
from webapp.permissions import home_of

bp = Blueprint("legal", __name__, url_prefix="/legal")


@bp.get("/")
@home_of("legal")
def home():
    return render_loan_list("legal/home.html", default_sort="dpd")
