"""Finance's overview of the whole portfolio."""
from flask import Blueprint
from flask_login import current_user

from webapp import db
from webapp.loans.routes import render_loan_list
from webapp.permissions import home_of
from webapp.services import loans

bp = Blueprint("finance", __name__, url_prefix="/finance")


@bp.get("/")
@home_of("finance")
def home():
    summary = loans.portfolio_summary(db.session(), current_user)
    return render_loan_list("finance/home.html", default_sort="dpd", summary=summary)
