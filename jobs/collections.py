"""Jobs that follow day-end: priority scoring and escalation. Each obeys its kill switch."""
from __future__ import annotations

import logging
from datetime import date

from flask import current_app

from jobs.dayend import run_due
from jobs.locks import JobLock, LockHeld
from jobs.transaction import in_transaction
from webapp.models import CronRun
from webapp.services import collections, dayend, flags

log = logging.getLogger("kisht.jobs")
JOBS = {
    "scoring": ("SCORING_ENABLED", lambda s, d: {"loans_scored": collections.score_loans(s, d)}),
    "escalation": ("ESCALATION_ENABLED", collections.escalate),
}


def run_after_dayend(job: str, business_date: date, *, force: bool = False) -> CronRun:
    """Run one follow-up job for a business date: skipped when switched off or already done."""
    flag, work = JOBS[job]
    config = current_app.config
    lock = JobLock(config["REDIS_URL"], job, config["JOB_LOCK_TTL_SECONDS"], dayend.worker_name())

    def start(session):
        if not flags.is_enabled(session, flag):
            return dayend.record_skip(session, job, business_date, f"{flag} is off", forced=force)
        return dayend.start_run(session, job, business_date, force=force,
                                stale_after_seconds=config["JOB_LOCK_TTL_SECONDS"] * 2)

    try:
        with lock:
            run = in_transaction(start)
            if run.status == "SKIPPED":
                log.warning("%s %s skipped: %s", job, business_date, run.error)
                return run
            run_id = run.id
            try:
                return in_transaction(lambda s: dayend.complete_run(s, run_id, work(s, business_date)))
            except Exception as error:
                log.exception("%s %s failed", job, business_date)
                reason = f"{type(error).__name__}: {error}"
                in_transaction(lambda s: dayend.fail_run(s, run_id, reason))
                return in_transaction(lambda s: s.get(CronRun, run_id))
    except LockHeld as held:
        reason = str(held)
        return in_transaction(lambda s: dayend.record_skip(s, job, business_date, reason, forced=force))


def run_nightly() -> list[CronRun]:
    """The scheduled chain: catch up day-end, then score and escalate on the latest business date."""
    runs = run_due()
    if runs and runs[-1].status == "SUCCEEDED":
        latest = runs[-1].business_date
        runs += [run_after_dayend("scoring", latest), run_after_dayend("escalation", latest)]
    return runs
