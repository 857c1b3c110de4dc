"""The job functions RQ runs. Thin: they take dates, call jobs.dayend, and return a plain summary.

The CronRun row is the record of a run; the summary returned here is what RQ keeps as the job's result.
"""
from __future__ import annotations

from datetime import date

from jobs import collections, dayend, reminders
from jobs.queue import job

DAYEND_TIMEOUT = 6 * 3600  # a full portfolio in batches; RQ stops the job after this


def outcome(run) -> dict:
    return {"run_id": run.id, "job": run.job, "business_date": run.business_date.isoformat(),
            "attempt": run.attempt, "status": run.status, "loans_processed": run.loans_processed,
            "error": run.error}


@job("dayend", timeout=DAYEND_TIMEOUT)
def dayend_for_date(business_date: str, force: bool = False) -> dict:
    """Day-end for one business date (YYYY-MM-DD)."""
    return outcome(dayend.run_dayend(date.fromisoformat(business_date), force=force))


@job("dayend", timeout=DAYEND_TIMEOUT)
def dayend_catchup() -> list[dict]:
    """Day-end for every missed business date up to yesterday (IST), oldest first."""
    return [outcome(run) for run in dayend.run_due()]


@job("dayend", timeout=DAYEND_TIMEOUT)
def nightly() -> list[dict]:
    """The scheduled chain: day-end catch-up, then priority scoring and escalation on the latest date."""
    return [outcome(run) for run in collections.run_nightly()]


BACKUP_TIMEOUT = 4 * 3600


@job("default", timeout=BACKUP_TIMEOUT)
def backup_daily() -> dict:
    """The nightly backup: create, verify by restoring into a scratch database, prune (webapp/services/backup.py)."""
    from flask import current_app

    from webapp import db
    from webapp.services import backup

    return backup.daily(current_app.config, db.engine())


INTEGRITY_TIMEOUT = 2 * 3600


@job("default", timeout=INTEGRITY_TIMEOUT)
def integrity_daily() -> dict:
    """The daily integrity check (webapp/services/integrity.py); a failure logs an ERROR and sets the metric."""
    from jobs.transaction import in_transaction
    from webapp.permissions import SystemActor
    from webapp.services import integrity

    report = in_transaction(lambda s: integrity.check(s, SystemActor("integrity-job")))
    return {"ok": report.ok, "summary": report.summary(), "check_run": report.run.id}


def dayend_inline(business_date: date | None = None) -> list:
    """`kisht jobs run dayend`: that date when given, else the catch-up the schedule runs."""
    return [dayend.run_dayend(business_date)] if business_date else dayend.run_due()


def _after_dayend(job_name: str):
    def run(business_date: date | None = None) -> list:
        from webapp import clock

        return [collections.run_after_dayend(job_name, business_date or clock.last_business_date())]

    return run


# Jobs `kisht jobs run NAME` knows; each returns its CronRuns.
NAMED = {"dayend": dayend_inline, "nightly": lambda business_date=None: collections.run_nightly(),
         "scoring": _after_dayend("scoring"), "escalation": _after_dayend("escalation"),
         "reminders": reminders.run_inline}
