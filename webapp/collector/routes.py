"""The collector's worklist: loans assigned to them, most overdue first, searchable."""
from flask import Blueprint

from webapp.loans.routes import render_loan_list
from webapp.permissions import home_of

bp = Blueprint("collector", __name__, url_prefix="/collector")


@bp.get("/")
@home_of("collector")
def home():
    return render_loan_list("collector/home.html", default_sort="priority")
