"""Contacts and promises to pay (collectors, managers) and the escalation queues (managers, legal)."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from flask_login import current_user

from webapp import clock, db
from webapp.errors import Conflict, ValidationError
from webapp.htmx import render, trigger
from webapp.models.collections import CHANNELS, OUTCOMES
from webapp.forms import CsrfOnlyForm
from webapp.permissions import Perm, requires
from webapp.services import collections, disputes, loans
from webapp.services.pagination import clamp

bp = Blueprint("collections", __name__)

CONTACT_FIELDS = ("channel", "outcome", "note", "contacted_at", "promise_amount", "promise_date")
ESCALATION_FIELDS = ("assignee", "note", "next_action_on", "notice_sent_on", "notice_served_on")


def _contact_form(loan, values=None, errors=None, status=200):
    now_ist = clock.to_ist(clock.now()).strftime("%Y-%m-%dT%H:%M")
    return render("collections/contact.html", "collections/_contact_form.html", status, loan=loan,
                  values=values or {"channel": "CALL", "contacted_at": now_ist}, errors=errors or {},
                  channels=CHANNELS, outcomes=OUTCOMES, form=CsrfOnlyForm(formdata=None))


@bp.get("/loans/<number>/contacts/new")
@requires(Perm.LOG_CONTACT)
def new_contact(number: str):
    return _contact_form(loans.get_for(db.session(), current_user, number))


@bp.post("/loans/<number>/contacts")
@requires(Perm.LOG_CONTACT)
def create_contact(number: str):
    loan = loans.get_for(db.session(), current_user, number)
    if not CsrfOnlyForm().validate_on_submit():  # CSRF
        raise ValidationError("The form expired; reload and try again.")
    values = {k: request.form.get(k, "") for k in CONTACT_FIELDS}
    try:
        contact = collections.log_contact(db.session(), current_user, number, values)
    except ValidationError as refused:
        db.rollback_request()
        return _contact_form(loan, values, refused.fields, 422)
    response = render_template("collections/_contact_logged.html", loan=loan, contact=contact)
    return trigger(current_app.make_response((response, 201)), "contact-logged")


@bp.get("/escalations/")
@requires(Perm.WORK_ESCALATIONS)
def escalations():
    page, per_page = clamp(request.args.get("page"), request.args.get("per_page"), current_app.config["PAGE_SIZE"])
    level, status = request.args.get("level", ""), request.args.get("status", "OPEN")
    result = collections.queue(db.session(), current_user, level=level, status=status, page=page, per_page=per_page)
    # `status_filter`, not `status`: render() takes `status` as the HTTP status of the response.
    return render("collections/escalations.html", "collections/_escalations.html", page=result, level=level,
                  status_filter=status, levels=collections.QUEUE_LEVELS.get(current_user.role, ()),
                  overdue_disputes=disputes.overdue_open(db.session(), current_user))


@bp.get("/escalations/<escalation_id>")
@requires(Perm.WORK_ESCALATIONS)
def escalation(escalation_id: str):
    item = collections.get_escalation(db.session(), current_user, escalation_id)
    return render("collections/escalation.html", "collections/_escalation_form.html", escalation=item, errors={},
                  values={}, form=CsrfOnlyForm(formdata=None))


@bp.post("/escalations/<escalation_id>")
@requires(Perm.WORK_ESCALATIONS)
def work_escalation(escalation_id: str):
    if not CsrfOnlyForm().validate_on_submit():
        raise ValidationError("The form expired; reload and try again.")
    values = {k: request.form.get(k, "") for k in ESCALATION_FIELDS}
    try:
        item = collections.work_escalation(db.session(), current_user, escalation_id, values)
        errors, status, values = {}, 200, {}
    except (ValidationError, Conflict) as refused:
        db.rollback_request()
        item = collections.get_escalation(db.session(), current_user, escalation_id)
        errors, status = refused.fields or {"note": refused.message}, refused.status
    return render("collections/escalation.html", "collections/_escalation_form.html", status, escalation=item,
                  errors=errors, values=values, form=CsrfOnlyForm(formdata=None), saved=not errors)
