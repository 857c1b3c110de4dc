"""Admin: the reminder outbox — counts per status, rows filtered by status, final failures and resending them."""
from __future__ import annotations

from flask import Blueprint, current_app, redirect, request, url_for
from flask_login import current_user

from webapp import db
from webapp.htmx import is_htmx, render, trigger
from webapp.models.reminders import REMINDER_STATUSES
from webapp.permissions import Perm, requires
from webapp.services import reminders
from webapp.services.pagination import clamp

bp = Blueprint("reminders", __name__, url_prefix="/admin/reminders")


def _context() -> dict:
    session = db.session()
    status = request.args.get("status", "").strip().upper()
    status = status if status in REMINDER_STATUSES else ""
    page, per_page = clamp(request.args.get("page"), request.args.get("per_page"), current_app.config["PAGE_SIZE"])
    return {"counts": reminders.status_counts(session), "current": status, "statuses": REMINDER_STATUSES,
            "page": reminders.outbox_page(session, status=status or None, page=page, per_page=per_page),
            "transport": current_app.config["REMINDER_TRANSPORT"], "target": url_for("reminders.index")}


@bp.get("/")
@requires(Perm.ADMINISTER)
def index():
    return render("reminders/index.html", "reminders/_outbox.html", **_context())


@bp.post("/<reminder_id>/resend")
@requires(Perm.ADMINISTER)
def resend(reminder_id: str):
    reminder = reminders.resend(db.session(), current_user, reminder_id)
    if is_htmx():  # the outbox refreshes itself on this event
        return trigger(current_app.make_response(("", 204)), "reminder-resent", {"id": reminder.id})
    return redirect(url_for("reminders.index", status="PENDING"))
