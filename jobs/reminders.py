"""The reminders job: lock, CronRun bookkeeping, selection, then delivery in batches with the kill switch
checked at start and between batches.

Rules live in webapp/services/reminders.py; this drives them, one transaction per step. Each message is
claimed in its own transaction before it is sent, so a crash or a second worker never sends it twice.
"""
from __future__ import annotations

import logging
from datetime import date

from flask import current_app

from jobs.locks import JobLock, LockHeld
from jobs.transaction import in_transaction
from jobs.queue import job
from webapp import clock
from webapp.models import CronRun
from webapp.services import dayend, flags
from webapp.services import reminders as service

log = logging.getLogger("kisht.jobs")
TIMEOUT = 30 * 60  # RQ stops a run after this; the next hourly run carries on where it stopped
# The schedule entry for jobs/schedule.py (hourly: 08:05 … 18:05 IST deliver, the others select and defer):
#   Scheduled("reminders-hourly", "5 * * * *", "jobs.reminders.reminders_due", "default", TIMEOUT,
#             "Payment reminders: today's selection (IST), then delivery 08:00-19:00 IST")


def run_reminders(business_date: date | None = None) -> CronRun:
    """Select the reminders of `business_date` (default today, IST) and deliver whatever is due now.

    Returns the CronRun: SUCCEEDED, SKIPPED (switched off, or another run holds the lock) or FAILED.
    """
    config = current_app.config
    business_date = business_date or clock.today_ist()
    service.check_date(business_date, config)
    lock = JobLock(config["REDIS_URL"], service.JOB, config["JOB_LOCK_TTL_SECONDS"], dayend.worker_name())
    try:
        with lock:
            return _run_locked(business_date, lock)
    except LockHeld as held:
        reason = str(held)
        log.warning("reminders %s refused: %s", business_date, reason)
        return in_transaction(lambda s: dayend.record_skip(s, service.JOB, business_date, reason))


def _run_locked(business_date: date, lock: JobLock) -> CronRun:
    config = current_app.config

    def start(session):
        if not flags.is_enabled(session, service.FLAG):
            return dayend.record_skip(session, service.JOB, business_date, f"{service.FLAG} is off")
        return service.start_run(session, business_date, stale_after_seconds=config["JOB_LOCK_TTL_SECONDS"] * 2)

    run = in_transaction(start)
    if run.status == "SKIPPED":
        log.warning("reminders %s skipped: %s", business_date, run.error)
        return run
    run_id, counts = run.id, service.RunCounts()
    try:
        def select(session):
            added = service.select_for_date(session, business_date)
            service.render_new(session, business_date)
            counts.selected = added
            service.heartbeat(session, run_id, counts)

        in_transaction(select)
        log.info("reminders %s: run %s selected %s", business_date, run_id, counts.selected)
        stop = _deliver(run_id, counts, lock)
        if stop:
            in_transaction(lambda s: dayend.fail_run(s, run_id, f"stopped after {counts.sent} sent: {stop}"))
            log.warning("reminders %s stopped: %s", business_date, stop)
            return in_transaction(lambda s: s.get(CronRun, run_id))
        run = in_transaction(lambda s: service.finish_run(s, run_id, counts))
        log.info("reminders %s succeeded: %s", business_date, counts.as_dict())
        return run
    except Exception as error:
        log.exception("reminders %s failed", business_date)
        reason = f"{type(error).__name__}: {error}"
        in_transaction(lambda s: dayend.fail_run(s, run_id, reason))
        return in_transaction(lambda s: s.get(CronRun, run_id))


def _deliver(run_id: int, counts: service.RunCounts, lock: JobLock) -> str | None:
    """Deliver batch after batch until nothing is due; the reason to stop early, or None."""
    config = current_app.config
    max_attempts, batch_size = config["REMINDER_MAX_ATTEMPTS"], config["REMINDER_BATCH_SIZE"]
    while True:
        stop = _stop_reason(lock)
        if stop:
            return stop
        now = clock.now()
        if not service.in_window(now):
            counts.deferred += in_transaction(lambda s: service.defer_outside_window(s, now))
            in_transaction(lambda s: service.heartbeat(s, run_id, counts, batch_done=False))
            return None
        counts.failed += in_transaction(lambda s: service.fail_exhausted(s, now, max_attempts))
        ids = in_transaction(lambda s: service.due_ids(s, now, max_attempts, batch_size))
        if not ids:
            return None
        for reminder_id in ids:
            moment = clock.now()
            if not service.in_window(moment):
                break  # the window closed during the batch: the next round defers the rest
            if not in_transaction(lambda s: service.claim(s, reminder_id, moment, max_attempts)):
                continue  # another worker took it, or it is no longer waiting
            try:
                outcome = in_transaction(lambda s: service.deliver(s, reminder_id))
            except Exception as error:  # one bad row must not hold back the others
                log.exception("reminder %s: delivery raised", reminder_id)
                crash = error
                outcome = in_transaction(lambda s: service.record_crash(s, reminder_id, crash))
            if outcome.status == "SENT":
                counts.sent += 1
            elif outcome.status == "CANCELLED":
                counts.cancelled += 1
            elif outcome.status == "FAILED":
                counts.failed += 1
            else:
                counts.retrying += 1
        in_transaction(lambda s: service.heartbeat(s, run_id, counts))


def _stop_reason(lock: JobLock) -> str | None:
    if not lock.still_held():
        return "lost the reminders lock"
    if not in_transaction(lambda s: flags.is_enabled(s, service.FLAG)):
        return f"{service.FLAG} was switched off"
    return None


def run_inline(business_date: date | None = None) -> list[CronRun]:
    """For `kisht jobs run reminders` (jobs.tasks.NAMED) and `kisht reminders run`: one run, as a list."""
    return [run_reminders(business_date)]


@job("default", timeout=TIMEOUT)
def reminders_due() -> dict:
    """The scheduled entry point: today's (IST) selection, then every delivery that is due now."""
    run = run_reminders()
    return {"run_id": run.id, "job": run.job, "business_date": run.business_date.isoformat(),
            "attempt": run.attempt, "status": run.status, "summary": run.summary, "error": run.error}
