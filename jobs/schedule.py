"""The schedule, declared as data, and its reconciliation with rq-scheduler.

Times are declared in IST (business time) and handed to rq-scheduler in UTC. On start, `kisht scheduler`
reconciles Redis with SCHEDULE by job id: an entry that is not declared, or whose definition changed, is
cancelled; a missing one is created with its fixed id. Restarting therefore never duplicates a schedule.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

import rq_scheduler
from crontab import CronTab
from rq.job import Job, JobStatus

from jobs.tasks import BACKUP_TIMEOUT, DAYEND_TIMEOUT, INTEGRITY_TIMEOUT

IST_OFFSET_MINUTES = 5 * 60 + 30  # India has no daylight saving: always UTC+05:30


@dataclass(frozen=True)
class Scheduled:
    id: str  # fixed RQ job id (letters, digits, - and _)
    cron_ist: str  # minute hour day-of-month month day-of-week, in IST
    func: str  # dotted path of a function declared with @jobs.queue.job
    queue: str
    timeout: int
    description: str = field(default="", compare=False)

    @property
    def cron_utc(self) -> str:
        return ist_to_utc(self.cron_ist)


SCHEDULE: tuple[Scheduled, ...] = (
    Scheduled("nightly", "15 0 * * *", "jobs.tasks.nightly", "dayend", DAYEND_TIMEOUT,
              "Day-end for every missed business date up to yesterday (IST), then scoring and escalation"),
    Scheduled("reminders-hourly", "5 * * * *", "jobs.reminders.reminders_due", "default", 30 * 60,
              "Queue today's reminders and deliver what the 08:00–19:00 IST window allows"),
    Scheduled("backup-daily", "30 2 * * *", "jobs.tasks.backup_daily", "default", BACKUP_TIMEOUT,
              "Back up the database, verify the backup in a scratch database, prune by the retention policy"),
    Scheduled("integrity-daily", "0 4 * * *", "jobs.tasks.integrity_daily", "default", INTEGRITY_TIMEOUT,
              "Integrity check: orphans, duplicates, allocations, paid ≤ due, positions vs a replay, audit chain"),
)


# ---------------------------------------------------------------- IST → UTC

def _weekdays(spec: str) -> list[int]:
    days: set[int] = set()
    for part in spec.split(","):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise ValueError(f"day of week {spec!r}: use numbers 0-7, lists and ranges")
        days.update(d % 7 for d in range(int(low), int(high or low) + 1))
    return sorted(days)


def ist_to_utc(cron_ist: str) -> str:
    """The same moments as a UTC cron expression: subtract 5:30, moving the day back when it wraps.

    Pure arithmetic on the fields, so the server's TZ plays no part. Supported: a fixed minute; a fixed hour
    or every hour; any day of the week (as numbers). Day of month and month must be `*`, because a day
    earlier than "the 1st" has no cron form.
    """
    parts = cron_ist.split()
    if len(parts) != 5:
        raise ValueError(f"{cron_ist!r}: a cron expression has five fields")
    minute, hour, day, month, weekday = parts
    if not minute.isdigit() or int(minute) > 59:
        raise ValueError(f"{cron_ist!r}: the minute must be a number 0-59")
    if day != "*" or month != "*":
        raise ValueError(f"{cron_ist!r}: day of month and month must be *")
    if hour == "*":  # every hour: only the minute moves
        return f"{(int(minute) - 30) % 60} * * * {weekday}"
    if not hour.isdigit() or int(hour) > 23:
        raise ValueError(f"{cron_ist!r}: the hour must be a number 0-23 or *")
    minutes = int(hour) * 60 + int(minute) - IST_OFFSET_MINUTES
    wraps = minutes < 0
    utc_hour, utc_minute = divmod(minutes % (24 * 60), 60)
    if wraps and weekday != "*":
        weekday = ",".join(str(d) for d in sorted({(d - 1) % 7 for d in _weekdays(weekday)}))
    return f"{utc_minute} {utc_hour} * * {weekday}"


def next_run(cron_utc: str, now: datetime | None = None) -> datetime:
    """The next moment a UTC cron expression fires, after `now` (aware, UTC)."""
    return CronTab(cron_utc).next(now=now or datetime.now(timezone.utc), return_datetime=True)


# ---------------------------------------------------------------- rq-scheduler

@contextmanager
def _local_time_reading():
    """Quiet the crontab library's warning about rq-scheduler's local-time reading; we replace that reading."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


class Scheduler(rq_scheduler.Scheduler):
    """rq-scheduler 0.14 reads a cron string in the server's local time zone; ours are UTC whatever TZ says.

    After it places a cron job (on creation and after each run) we place it again at the UTC moment.
    """

    def cron(self, cron_string, func, *args, **kwargs):
        with _local_time_reading():
            job = super().cron(cron_string, func, *args, **kwargs)
        self._place(job)
        return job

    def enqueue_job(self, job):
        with _local_time_reading():
            super().enqueue_job(job)
        if job.meta.get("cron_string") and job.id in self:
            self._place(job)

    def _place(self, job: Job) -> None:
        moment = next_run(job.meta["cron_string"])
        self.connection.zadd(self.scheduled_jobs_key, {job.id: int(moment.timestamp())})


@dataclass
class Reconciled:
    created: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def _matches(job: Job, spec: Scheduled) -> bool:
    return (job.func_name == spec.func and job.origin == spec.queue and job.timeout == spec.timeout
            and job.meta.get("cron_string") == spec.cron_utc and not job.args and not job.kwargs)


def reconcile(scheduler: rq_scheduler.Scheduler, schedule: tuple[Scheduled, ...] = SCHEDULE) -> Reconciled:
    """Make the scheduled jobs in Redis exactly the declared ones, by id."""
    declared = {spec.id: spec for spec in schedule}
    if len(declared) != len(schedule):
        raise ValueError("two scheduled jobs share an id")
    result = Reconciled()
    for job in list(scheduler.get_jobs()):
        spec = declared.get(job.id)
        if spec is not None and _matches(job, spec):
            result.kept.append(job.id)  # its next run time stands, so a run missed while we were down still happens
            continue
        scheduler.cancel(job)
        if job.get_status() not in (JobStatus.QUEUED, JobStatus.STARTED):
            job.delete()  # a queued or running one finishes; the new definition takes over its id
        (result.replaced if spec else result.cancelled).append(job.id)
    for spec in schedule:
        if spec.id in result.kept:
            continue
        # result_ttl=-1: the job keeps its id from run to run, so its record must outlive each run.
        scheduler.cron(spec.cron_utc, func=spec.func, id=spec.id, queue_name=spec.queue, timeout=spec.timeout,
                       result_ttl=-1, description=spec.description or spec.id, meta={"cron_ist": spec.cron_ist})
        if spec.id not in result.replaced:
            result.created.append(spec.id)
    return result
