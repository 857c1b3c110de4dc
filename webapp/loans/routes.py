"""Loan list and loan page, for every role within its scope."""
from __future__ import annotations

from flask import Blueprint, current_app, request
from flask_login import current_user

from webapp import db
from webapp.htmx import render
from webapp.permissions import Perm, requires
from webapp.payments.forms import ReversalForm
from webapp.services import loans, payments, replay
from webapp.services.pagination import clamp

bp = Blueprint("loans", __name__, url_prefix="/loans")


def loan_page_args() -> dict:
    """The list's query parameters, made safe."""
    page, per_page = clamp(request.args.get("page"), request.args.get("per_page"), current_app.config["PAGE_SIZE"])
    return {"q": request.args.get("q", ""), "asset_class": request.args.get("class", ""),
            "sort": request.args.get("sort", "dpd"), "page": page, "per_page": per_page}


@bp.get("/")
@requires(Perm.VIEW_LOANS)
def index():
    args = loan_page_args()
    page = loans.list_for(db.session(), current_user, **args)
    return render("loans/index.html", "loans/_table.html", page=page, args=args, target=request.path)


@bp.get("/<number>")
@requires(Perm.VIEW_LOANS)
def show(number: str):
    session = db.session()
    loan = loans.get_for(session, current_user, number)
    position = replay.live_position(session, loan)
    return render("loans/show.html", "loans/_position.html", loan=loan, position=position,
                  history=payments.history(session, loan), reversal_form=ReversalForm(formdata=None))
