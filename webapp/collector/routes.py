"""The collector's worklist: loans assigned to them, most overdue first, searchable."""
from flask import Blueprint, request
from flask_login import current_user

from webapp import db
from webapp.htmx import render
from webapp.loans.routes import loan_page_args
from webapp.permissions import home_of
from webapp.services import loans

bp = Blueprint("collector", __name__, url_prefix="/collector")


@bp.get("/")
@home_of("collector")
def home():
    args = loan_page_args()
    page = loans.list_for(db.session(), current_user, **args)
    return render("collector/home.html", "loans/_table.html", page=page, args=args, target=request.path)
