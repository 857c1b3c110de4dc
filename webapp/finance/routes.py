"""Finance's overview of the whole portfolio."""
from flask import Blueprint, request
from flask_login import current_user

from webapp import db
from webapp.htmx import render
from webapp.loans.routes import loan_page_args
from webapp.permissions import home_of
from webapp.services import loans

bp = Blueprint("finance", __name__, url_prefix="/finance")


@bp.get("/")
@home_of("finance")
def home():
    args = loan_page_args()
    page = loans.list_for(db.session(), current_user, **args)
    summary = loans.portfolio_summary(db.session(), current_user)
    return render("finance/home.html", "loans/_table.html", page=page, args=args, summary=summary,
                  target=request.path)
