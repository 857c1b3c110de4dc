"""Admin: day-end runs (history, lock, run a date) and the kill switches. Registered on the admin blueprint."""
from __future__ import annotations

import logging

import redis
from flask import current_app, request, url_for
from flask_login import current_user
from sqlalchemy import select

from jobs import locks, tasks
from jobs.queue import enqueue
from webapp import clock, db
from webapp.admin.routes import bp
from webapp.errors import NotFound, ValidationError
from webapp.htmx import render, trigger
from webapp.models import CronRun
from webapp.models.dayend import FLAGS
from webapp.permissions import Perm, requires
from webapp.services import dayend, flags
from webapp.services.loans import parse_date
from webapp.services.pagination import clamp, paginate

log = logging.getLogger("kisht.admin")

FLAG_EFFECTS = {
    "CRON_ENABLED": "Day-end and the other scheduled jobs. Off: new runs are refused and a running day-end "
                    "stops before its next batch.",
    "ESCALATION_ENABLED": "Opening and closing escalations (manager, senior and legal review queues) after day-end.",
    "SCORING_ENABLED": "Priority scores that order the worklists. Off: worklists fall back to DPD, then overdue.",
    "REMINDERS_ENABLED": "Payment reminders to borrowers (SMS/WhatsApp gateway, email, log).",
}


# ---------------------------------------------------------------- day-end runs

def _lock_holder() -> str | None:
    url = current_app.config["REDIS_URL"]
    if not url:
        return None
    try:
        return locks.holder(redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2), dayend.JOB)
    except redis.RedisError as error:
        log.warning("jobs screen: redis unreachable: %s", type(error).__name__)
        return "unknown (Redis is unreachable)"


def _jobs_context(**extra) -> dict:
    session = db.session()
    page, per_page = clamp(request.args.get("page"), request.args.get("per_page"), current_app.config["PAGE_SIZE"])
    runs = paginate(session, select(CronRun).order_by(CronRun.started_at.desc(), CronRun.id.desc()), page, per_page)
    context = {"runs": runs, "lock_holder": _lock_holder(), "last_succeeded": dayend.last_succeeded_date(session),
               "cron_enabled": flags.is_enabled(session, "CRON_ENABLED"),
               "queued_mode": bool(current_app.config["REDIS_URL"]), "errors": {}, "form": {}, "outcome": None, "message": None,
               "target": url_for("admin.jobs"), "default_date": clock.last_business_date()}
    context.update(extra)
    return context


@bp.get("/jobs")
@requires(Perm.ADMINISTER)
def jobs():
    return render("admin/jobs.html", "admin/_runs.html", **_jobs_context())


@bp.post("/jobs/run")
@requires(Perm.ADMINISTER)
def run_dayend():
    form = {"date": request.form.get("date", "").strip(), "force": bool(request.form.get("force"))}
    errors: dict[str, str] = {}
    try:
        business_date = parse_date(form["date"])
        dayend.request_run(db.session(), current_user, business_date, force=form["force"])
    except ValueError as problem:
        errors = {"date": str(problem)}
    except ValidationError as refused:
        errors = refused.fields
    if errors:
        return render("admin/jobs.html", "admin/_run_form.html", 422, **_jobs_context(errors=errors, form=form))
    try:
        queued = enqueue(tasks.dayend_for_date, business_date.isoformat(), force=form["force"])
    except redis.RedisError as error:
        log.error("day-end %s could not be queued: %s", business_date, error)
        db.rollback_request()  # no audit entry for a request that did nothing
        return render("admin/jobs.html", "admin/_run_form.html", 503, **_jobs_context(
            form=form, message="Day-end could not be queued: Redis is unreachable. Nothing was queued; try again."))
    outcome = {"business_date": business_date, "force": form["force"], "job_id": queued.job_id,
               "queue": queued.queue, "run": queued.result}
    body, status = render("admin/jobs.html", "admin/_run_form.html", **_jobs_context(form=form, outcome=outcome))
    return trigger(current_app.make_response((body, status)), "dayend-requested")


# ---------------------------------------------------------------- kill switches

def _flags_context(session, **extra) -> dict:
    context = {"states": flags.list_flags(session), "effects": FLAG_EFFECTS, "errors_by_flag": {}, "saved": None,
               "reasons": {}}
    context.update(extra)
    return context


@bp.get("/flags")
@requires(Perm.ADMINISTER)
def flag_list():
    return render("admin/flags.html", "admin/_flags.html", **_flags_context(db.session()))


@bp.post("/flags/<name>")
@requires(Perm.ADMINISTER)
def flag_set(name: str):
    if name not in FLAGS:
        raise NotFound(f"No kill switch {name}.")
    session = db.session()
    target, reason = request.form.get("enabled", ""), request.form.get("reason", "")
    errors: dict[str, str] = {}
    if target not in ("on", "off"):
        errors["enabled"] = "must be on or off"
    if not request.form.get("confirm"):
        errors["confirm"] = "tick to confirm you understand what this switch stops"
    if not reason.strip():
        errors["reason"] = "is required"  # the service insists too; said here so both problems show at once
    if not errors:
        try:
            flags.set_flag(session, current_user, name, target == "on", reason)
        except ValidationError as refused:
            session.rollback()
            errors = refused.fields
    if errors:
        context = _flags_context(session, errors_by_flag={name: errors}, reasons={name: reason})
        return render("admin/flags.html", "admin/_flag.html", 422, state=_state(context, name), **context)
    context = _flags_context(session, saved=name)
    body, status = render("admin/flags.html", "admin/_flag.html", state=_state(context, name), **context)
    return trigger(current_app.make_response((body, status)), "flag-changed", {"name": name, "enabled": target == "on"})


def _state(context: dict, name: str):
    return next(state for state in context["states"] if state.name == name)
