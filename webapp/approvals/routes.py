"""The maker-checker inbox: backdated payments and reversals awaiting a second person."""
from __future__ import annotations

from flask import Blueprint, current_app, request, url_for
from flask_login import current_user

from webapp import db
from webapp.errors import ValidationError
from webapp.htmx import redirect_to, render
from webapp.payments.forms import DecisionForm
from webapp.permissions import Perm, requires_any

DECIDERS = (Perm.APPROVE_BACKDATED, Perm.APPROVE_REVERSAL)
from webapp.services import approvals
from webapp.services.pagination import clamp

bp = Blueprint("approvals", __name__, url_prefix="/approvals")


@bp.get("/")
@requires_any(*DECIDERS)  # managers see their branch's items, finance every reversal
def index():
    page, per_page = clamp(request.args.get("page"), request.args.get("per_page"), current_app.config["PAGE_SIZE"])
    filters = approvals.parse_filters(request.args)
    result = approvals.inbox(db.session(), current_user, filters, page, per_page)
    return render("approvals/index.html", "approvals/_table.html", page=result, filters=filters,
                  form=DecisionForm(formdata=None), decidable=approvals.decidable_by)


@bp.get("/<approval_id>")
@requires_any(*DECIDERS)
def show(approval_id: str):
    approval = approvals.get_for(db.session(), current_user, approval_id)
    return render("approvals/show.html", "approvals/_impact.html", approval=approval,
                  impact=approvals.impact(db.session(), approval), form=DecisionForm(formdata=None),
                  decidable=approvals.decidable_by(current_user, approval))


@bp.post("/decide")
@requires_any(*DECIDERS)
def decide():
    form = DecisionForm()
    if not form.validate_on_submit():
        raise ValidationError("The decision is not valid.", fields={k: "; ".join(v) for k, v in form.errors.items()})
    action = request.form.get("action")
    if action not in ("approve", "reject"):
        raise ValidationError("The decision is not valid.", fields={"action": "must be approve or reject"})
    approvals.decide(db.session(), current_user, request.form.getlist("approval_id"),
                     approve=action == "approve", reason=form.reason.data)
    return redirect_to(request.form.get("back") if (request.form.get("back") or "").startswith("/approvals")
                       else url_for("approvals.index"))
