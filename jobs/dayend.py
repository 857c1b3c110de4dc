"""The day-end job: lock, CronRun bookkeeping, batches with the kill switch checked between them.

Rules live in webapp/services/dayend.py; this drives them, one transaction per step.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Callable

from flask import current_app

from jobs.locks import JobLock, LockHeld
from jobs.transaction import in_transaction
from webapp import clock
from webapp.models import CronRun
from webapp.services import dayend, flags

log = logging.getLogger("kisht.jobs")
FLAG = "CRON_ENABLED"


def run_dayend(business_date: date, *, force: bool = False,
               progress: Callable[[int, int], None] | None = None) -> CronRun:
    """Run day-end for one date. Returns the CronRun (SUCCEEDED, SKIPPED or FAILED); never runs twice at once."""
    config = current_app.config
    dayend.check_date(business_date)
    lock = JobLock(config["REDIS_URL"], dayend.JOB, config["JOB_LOCK_TTL_SECONDS"], dayend.worker_name())
    try:
        with lock:
            return _run_locked(business_date, force, lock, progress)
    except LockHeld as held:
        reason = str(held)
        log.warning("day-end %s refused: %s", business_date, reason)
        return in_transaction(lambda s: dayend.record_skip(s, dayend.JOB, business_date, reason, forced=force))


def _run_locked(business_date: date, force: bool, lock: JobLock, progress) -> CronRun:
    config = current_app.config

    def start(session):
        if not flags.is_enabled(session, FLAG):
            return dayend.record_skip(session, dayend.JOB, business_date, f"{FLAG} is off", forced=force), [], {}
        run = dayend.start_run(session, dayend.JOB, business_date, force=force,
                               stale_after_seconds=config["JOB_LOCK_TTL_SECONDS"] * 2)
        if run.status == "SKIPPED":
            return run, [], {}
        dayend.ensure_partition(session, business_date)
        ranges = dayend.batch_ranges(session, config["DAYEND_BATCH_SIZE"])
        run.batches_total = len(ranges)
        return run, ranges, dayend.statements_for(session)

    run, ranges, statements = in_transaction(start)
    if run.status == "SKIPPED":
        log.warning("day-end %s refused: %s", business_date, run.error)
        return run
    run_id = run.id
    parallel = _parallel_batches()
    log.info("day-end %s started: run %s, %s batches, %s at a time", business_date, run_id, len(ranges), parallel)
    try:
        stopped = _run_batches(business_date, run_id, ranges, statements, parallel, lock, progress)
        if stopped:
            in_transaction(lambda s: dayend.fail_run(s, run_id, stopped))
            log.warning("day-end %s stopped: %s", business_date, stopped)
            return in_transaction(lambda s: s.get(CronRun, run_id))
        run = in_transaction(lambda s: dayend.finish_run(s, run_id))
        log.info("day-end %s succeeded: %s loans in %.1f s", business_date, run.loans_processed,
                 run.duration_seconds or 0)
        return run
    except Exception as error:
        log.exception("day-end %s failed", business_date)
        reason = f"{type(error).__name__}: {error}"
        in_transaction(lambda s: dayend.fail_run(s, run_id, reason))
        return in_transaction(lambda s: s.get(CronRun, run_id))


def _parallel_batches() -> int:
    """Batches are disjoint id ranges, so PostgreSQL runs several at once; SQLite has one writer."""
    config = current_app.config
    if config["DATABASE_URL"].startswith("sqlite"):
        return 1
    return config["DAYEND_PARALLEL_BATCHES"]


def _run_batches(business_date: date, run_id: int, ranges: list[tuple[int, int]], statements: dict[str, str],
                 parallel: int, lock: JobLock, progress) -> str | None:
    """Every batch in its own transaction, `parallel` at a time, each connection its own.

    Before each batch the lock and the kill switch are checked; once either says stop, no further batch
    starts (those running finish and commit). Returns why it stopped, or None when every batch is done.
    """
    app = current_app._get_current_object()
    guard = threading.Lock()
    done: list[int] = []
    stop: list[str] = []

    def one(low: int, high: int) -> None:
        with app.app_context():
            with guard:  # checked under the guard so that no batch starts after another has seen "stop"
                reason = None if stop else _stop_reason(lock)
                if reason:
                    stop.append(f"stopped after {len(done)} of {len(ranges)} batches: {reason}")
                if stop:
                    return

            def batch(session):
                result = dayend.process_batch(session, business_date, low, high, statements)
                dayend.heartbeat(session, run_id, result)

            try:
                in_transaction(batch)
            except Exception:
                with guard:
                    stop.append("a batch failed")
                raise
            with guard:
                done.append(low)
                if progress:
                    progress(len(done), len(ranges))

    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="dayend-batch") as pool:
        futures = [pool.submit(one, low, high) for low, high in ranges]
    for future in futures:  # all have finished here; a batch's error fails the run
        future.result()
    return stop[0] if stop else None


def _stop_reason(lock: JobLock) -> str | None:
    if not lock.still_held():
        return "lost the day-end lock"
    if not in_transaction(lambda s: flags.is_enabled(s, FLAG)):
        return f"{FLAG} was switched off"
    return None


def run_due() -> list[CronRun]:
    """The scheduled entry point: every missed business date up to yesterday (IST), oldest first."""
    dates = in_transaction(lambda s: dayend.dates_due(s, clock.today_ist(), current_app.config["DAYEND_CATCHUP_DAYS"]))
    runs = []
    for business_date in dates:
        run = run_dayend(business_date)
        runs.append(run)
        if run.status != "SUCCEEDED":
            break  # later dates need this one's classes; the next schedule retries from here
    return runs
