"""The branch manager's overview: the branch's portfolio by class and its loans."""
from flask import Blueprint
from flask_login import current_user

from webapp import db
from webapp.loans.routes import render_loan_list
from webapp.permissions import home_of
from webapp.services import collections, loans

bp = Blueprint("manager", __name__, url_prefix="/manager")


@bp.get("/")
@home_of("manager")
def home():
    session = db.session()
    promises, more_promises = collections.promises_due(session, current_user)
    return render_loan_list("manager/home.html", default_sort="priority",
                            summary=loans.portfolio_summary(session, current_user),
                            promises=promises, more_promises=more_promises)
