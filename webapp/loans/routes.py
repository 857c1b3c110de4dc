"""Loan list and loan page, for every role within its scope."""
from __future__ import annotations

from flask import Blueprint, current_app, g, request, url_for
from flask_login import current_user

from webapp import db
from webapp.htmx import render
from webapp.permissions import Perm, requires
from webapp.payments.forms import ReversalForm
from webapp.services import collections, loans, payments, replay
from webapp.services.pagination import clamp

bp = Blueprint("loans", __name__, url_prefix="/loans")


@bp.app_template_global()
def loan_url(number: str) -> str:
    """The loan page's address, as url_for('loans.show', number=...) gives it. The route is built once per
    request and each number appended, quoted by the route's own converter: a manager's home links about 135
    loans, and url_for for each was about 8 % of the page's CPU."""
    parts = g.get("loan_url_parts")
    if parts is None:
        segment = current_app.url_map.converters["default"](current_app.url_map)  # the <number> segment's
        parts = g.loan_url_parts = (url_for("loans.show", number="~")[:-1], segment.to_url)
    prefix, to_url = parts
    return prefix + to_url(number)


def loan_page_args(default_sort: str = "dpd") -> dict:
    """The list's query parameters, made safe."""
    page, per_page = clamp(request.args.get("page"), request.args.get("per_page"), current_app.config["PAGE_SIZE"])
    return {"q": request.args.get("q", "")[:64], "asset_class": request.args.get("class", ""),
            "sort": request.args.get("sort", default_sort), "collector": request.args.get("collector", "")[:64],
            "page": page, "per_page": per_page}


def render_loan_list(page_template: str, *, default_sort: str = "dpd", **context):
    """Every loan list (worklists, homes, /loans): one query for the page, one for its flags."""
    session = db.session()
    args = loan_page_args(default_sort)
    sort, ordering_note = collections.worklist_sort(session, args["sort"])
    page = loans.list_for(session, current_user, **{**args, "sort": sort})
    flags = loans.flags_for(session, [loan.id for loan in page.items])
    return render(page_template, "loans/_table.html", page=page, args=args, target=request.path,
                  ordering_note=ordering_note, flags=flags,
                  scored=any(f.score is not None for f in flags.values()), **context)


@bp.get("/")
@requires(Perm.VIEW_LOANS)
def index():
    return render_loan_list("loans/index.html")


@bp.get("/<number>")
@requires(Perm.VIEW_LOANS)
def show(number: str):
    session = db.session()
    loan = loans.get_for(session, current_user, number)
    position = replay.live_position(session, loan)
    return render("loans/show.html", "loans/_position.html", loan=loan, position=position,
                  history=payments.history(session, loan), reversal_form=ReversalForm(formdata=None),
                  score=collections.score_of(session, loan.id), contacts=collections.contacts_of(session, loan.id),
                  escalation=loans.flags_for(session, [loan.id])[loan.id].escalation)
