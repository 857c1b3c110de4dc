"""Day-end (DESIGN.md §4, §5): the official DPD, RBI asset class and bucket of every loan for a business date.

Set-based SQL over loan-id ranges (never a Python loop per loan), the same on PostgreSQL and SQLite:

* money counted is posted payments net of approved reversals with value date ≤ D; with `cumulative_due`
  fixed on each instalment, the oldest unpaid instalment is the first due by D whose cumulative due
  exceeds the money received (allocation is oldest first), and overdue = dues by D − money, floored at 0;
* DPD(D) = D − oldest unpaid due date + 1; classes by DPD, except that NPA stays until overdue is 0,
  read from the previous day-end's row (runs go date by date). Where there is none (the first run, a gap),
  the class stored on the loan serves, if it describes a date no later than D;
* the same pass computes the live position (all money received so far) that screens sort by, and marks
  instalments that fell due as paid, part-paid or overdue. Money held as advance pays an instalment when it
  falls due, so the loan's outstanding principal is stored again too, as a replay would store it;
* a batch reads, then writes: a loan a payment changed in between keeps the position that payment's own
  replay stored (PostgreSQL; on SQLite the batch's write fails instead and the run can be repeated).

Each batch is its own transaction. A run is a CronRun row; this module keeps its bookkeeping, and the
job in jobs/dayend.py drives the batches, the lock and the kill switch.
"""
from __future__ import annotations

import json
import os
import socket
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta

from flask import current_app
from sqlalchemy import Date, bindparam, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webapp import clock, money
from webapp.db import dpd_sql
from webapp.errors import ValidationError
from webapp.permissions import Perm, require
from webapp.models import CronRun, DayendPosition, Loan
from webapp.services import audit, ledger
from webapp.services.collections import SETTLE_PROMISES

JOB = "dayend"
SYSTEM = audit.Actor(None, "dayend")


# ---------------------------------------------------------------- bookkeeping

def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def check_date(business_date: date) -> None:
    if business_date >= clock.today_ist():
        raise ValidationError("Day-end can run only for a date that has ended (IST).",
                              fields={"date": f"must be before {clock.today_ist().isoformat()}"})


def request_run(session: Session, actor, business_date: date, *, force: bool) -> None:
    """An administrator asks for a day-end run from the screen: checked and audited before it is queued."""
    require(actor, Perm.ADMINISTER)
    check_date(business_date)
    audit.record(session, actor, "dayend.requested", "dayend", business_date.isoformat(),
                 after={"business_date": business_date, "force": force})


def _next_attempt(session: Session, job: str, business_date: date) -> int:
    latest = session.scalar(select(func.max(CronRun.attempt)).where(CronRun.job == job,
                                                                     CronRun.business_date == business_date))
    return (latest or 0) + 1


def record_skip(session: Session, job: str, business_date: date, reason: str, *, forced: bool = False) -> CronRun:
    """A refused or switched-off run leaves a SKIPPED row saying why."""
    now = clock.now()
    run = CronRun(job=job, business_date=business_date, attempt=_next_attempt(session, job, business_date),
                  status="SKIPPED", forced=forced, started_at=now, finished_at=now, worker=worker_name(), error=reason)
    session.add(run)
    session.flush()
    return run


def start_run(session: Session, job: str, business_date: date, *, force: bool, stale_after_seconds: int) -> CronRun:
    """Open a RUNNING attempt, or record a SKIPPED one saying why not (the caller commits either)."""
    succeeded = session.scalar(select(CronRun).where(CronRun.job == job, CronRun.business_date == business_date,
                                                     CronRun.status == "SUCCEEDED").order_by(CronRun.id.desc()))
    if succeeded is not None and not force:
        return record_skip(session, job, business_date,
                           f"already succeeded (attempt {succeeded.attempt}); use --force to run again")
    running = session.scalar(select(CronRun).where(CronRun.job == job, CronRun.business_date == business_date,
                                                   CronRun.status == "RUNNING").with_for_update())
    if running is not None:
        beat = running.heartbeat_at or running.started_at
        if (clock.now() - beat).total_seconds() < stale_after_seconds:
            return record_skip(session, job, business_date,
                               f"attempt {running.attempt} is still running on {running.worker}", forced=force)
        running.status, running.finished_at = "FAILED", clock.now()
        running.error = f"abandoned: no heartbeat since {beat.isoformat()} (worker {running.worker})"
        session.flush()
    run = CronRun(job=job, business_date=business_date, attempt=_next_attempt(session, job, business_date),
                  status="RUNNING", forced=force, started_at=clock.now(), heartbeat_at=clock.now(),
                  worker=worker_name(), summary=json.dumps({"transitions": {}}))
    try:
        with session.begin_nested():
            session.add(run)
            session.flush()
    except IntegrityError:  # another worker opened its attempt between our check and insert
        return record_skip(session, job, business_date, "another attempt started at the same moment", forced=force)
    return run


def fail_run(session: Session, run_id: int, reason: str) -> None:
    run = session.get(CronRun, run_id, with_for_update=True)
    if run is not None and run.status == "RUNNING":
        run.status, run.finished_at, run.error = "FAILED", clock.now(), reason[:2000]


def complete_run(session: Session, run_id: int, summary: dict) -> CronRun:
    """Mark a single-step job's run SUCCEEDED with its summary."""
    run = session.get(CronRun, run_id, with_for_update=True)
    run.status, run.finished_at, run.heartbeat_at = "SUCCEEDED", clock.now(), clock.now()
    run.summary = json.dumps(summary, sort_keys=True, default=str)
    return run


def last_succeeded_date(session: Session, job: str = JOB) -> date | None:
    return session.scalar(select(func.max(CronRun.business_date)).where(CronRun.job == job,
                                                                         CronRun.status == "SUCCEEDED"))


def dates_due(session: Session, today: date, max_days: int) -> list[date]:
    """Business dates to run, oldest first: every date after the last success up to yesterday."""
    yesterday = today - timedelta(days=1)
    last = last_succeeded_date(session)
    first = yesterday if last is None else max(last + timedelta(days=1), yesterday - timedelta(days=max_days - 1))
    return [first + timedelta(days=n) for n in range((yesterday - first).days + 1)]


# ---------------------------------------------------------------- batches

def batch_ranges(session: Session, size: int) -> list[tuple[int, int]]:
    low, high = session.execute(select(func.min(Loan.id), func.max(Loan.id))).one()
    if low is None:
        return []
    return [(start, min(start + size, high + 1)) for start in range(low, high + 1, size)]


def ensure_partition(session: Session, business_date: date) -> None:
    """PostgreSQL keeps one partition of dayend_positions per month; create this date's on first use."""
    if session.get_bind().dialect.name != "postgresql":
        return
    first = business_date.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    session.execute(text(
        f"CREATE TABLE IF NOT EXISTS dayend_positions_{first:%Y_%m} PARTITION OF dayend_positions "
        f"FOR VALUES FROM ('{first.isoformat()}') TO ('{following.isoformat()}')"))


def analyze_day(session: Session, business_date: date) -> None:
    """Refresh PostgreSQL's statistics of the month's partition once a day's rows are in it. Until then the
    planner believes the new date has no rows and joins it row by row (the first escalation run on a
    million loans took minutes instead of seconds)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"ANALYZE dayend_positions_{business_date:%Y_%m}"))


def _class_sql(dpd: str, overdue: str, prior: str) -> str:
    return (f"CASE WHEN {dpd} > 90 OR ({prior} = 'NPA' AND {overdue} > 0) THEN 'NPA' "
            f"WHEN {dpd} > 60 THEN 'SMA-2' WHEN {dpd} > 30 THEN 'SMA-1' WHEN {dpd} > 0 THEN 'SMA-0' "
            f"ELSE 'STANDARD' END")


def _bucket_sql(dpd: str, spec: str) -> str:
    arms = []
    for label, low, high in ledger.parse_buckets(spec):
        label_sql = "'" + label.replace("'", "''") + "'"
        arms.append(f"WHEN {dpd} >= {low}" + (f" AND {dpd} <= {high}" if high is not None else "") + f" THEN {label_sql}")
    return "CASE " + " ".join(arms) + " END"


def _paid_split_sql(order: tuple[str, ...], dialect: str, received: str, i: str) -> tuple[str, str]:
    """Interest and principal paid of instalment `i` (a table name or alias) that just fell due, from the
    loan's money `received` (an SQL expression) applied oldest first."""
    least = "LEAST" if dialect == "postgresql" else "MIN"
    before = f"{i}.cumulative_due_paise - {i}.principal_due_paise - {i}.interest_due_paise"  # due ahead of it
    applied = (f"CASE WHEN {received} >= {i}.cumulative_due_paise THEN {i}.principal_due_paise + {i}.interest_due_paise "
               f"WHEN {received} > {before} THEN {received} - ({before}) ELSE 0 END")
    first = [c for c in order if c != "charges"][0]
    if first == "interest":
        interest = f"{least}({applied}, {i}.interest_due_paise)"
        principal = f"({applied}) - {interest}"
    else:
        principal = f"{least}({applied}, {i}.principal_due_paise)"
        interest = f"({applied}) - {principal}"
    return interest, principal


WORK_TABLE = """
CREATE TEMPORARY TABLE IF NOT EXISTS dayend_work (
    loan_id INTEGER PRIMARY KEY, branch_id INTEGER, dpd INTEGER, asset_class VARCHAR(8), bucket VARCHAR(16),
    overdue_paise BIGINT, overdue_since DATE, class_since DATE, prior_class VARCHAR(8), existing_class VARCHAR(8),
    live_since DATE, live_class VARCHAR(8), live_bucket VARCHAR(16), live_overdue BIGINT, r_live BIGINT,
    falling_due INTEGER, live_outstanding BIGINT, seen_version VARCHAR(16)
)"""


# Every table a batch touches gets the batch's id range, so the planner reads each one by range instead of
# probing it once per loan; money and dues are aggregated by loan id alone, in index order, before the
# loan's own columns are joined (measured on a million loans: docs/performance.md).
def _compute_sql(dialect: str, buckets: str, order: tuple[str, ...]) -> str:
    d = "CAST(:d AS DATE)" if dialect == "postgresql" else ":d"
    _, principal_paid = _paid_split_sql(order, dialect, "COALESCE(r.r_live, 0)", "i")
    seen_version = "CAST(l.xmin AS TEXT)" if dialect == "postgresql" else "NULL"  # see the "loans" statement
    return f"""
INSERT INTO dayend_work
WITH received AS (
    -- Posted payments less their approved reversals (a reversal counts on its payment's value date). Each is
    -- summed by loan on its own: the payments straight from their index in loan order, the few partly
    -- reversed payments apart; subtracting per payment before grouping made PostgreSQL sort every payment.
    SELECT loan_id, SUM(r_day) AS r_day, SUM(r_live) AS r_live FROM (
        SELECT p.loan_id, SUM(CASE WHEN p.value_date <= :d THEN p.amount_paise ELSE 0 END) AS r_day,
               SUM(p.amount_paise) AS r_live
        FROM payments p
        WHERE p.status = 'POSTED' AND p.loan_id >= :lo AND p.loan_id < :hi
        GROUP BY p.loan_id
        UNION ALL
        SELECT p.loan_id, -SUM(CASE WHEN p.value_date <= :d THEN r.amount_paise ELSE 0 END), -SUM(r.amount_paise)
        FROM reversals r
        JOIN approvals a ON a.reversal_id = r.id AND a.status = 'APPROVED'
        JOIN payments p ON p.id = r.payment_id
        WHERE p.status = 'POSTED' AND p.loan_id >= :lo AND p.loan_id < :hi
        GROUP BY p.loan_id
    ) money
    GROUP BY loan_id
), dues AS (
    SELECT i.loan_id,
           COALESCE(MAX(CASE WHEN i.due_date <= :d THEN i.cumulative_due_paise END), 0) AS due_to_d,
           MAX(i.cumulative_due_paise) AS due_all,
           MIN(CASE WHEN i.due_date <= :d AND i.cumulative_due_paise > COALESCE(r.r_day, 0)
                    THEN i.due_date END) AS oldest_day,
           MIN(CASE WHEN i.due_date <= :d AND i.cumulative_due_paise > COALESCE(r.r_live, 0)
                    THEN i.due_date END) AS oldest_live,
           COALESCE(MAX(r.r_day), 0) AS r_day, COALESCE(MAX(r.r_live), 0) AS r_live,
           COUNT(CASE WHEN i.status = 'DUE' AND i.due_date <= :d THEN 1 END) AS falling_due,
           -- the principal that money held as advance pays as instalments fall due
           SUM(CASE WHEN i.status = 'DUE' AND i.due_date <= :d
                    THEN {principal_paid} END) AS principal_applied
    FROM instalments i
    LEFT JOIN received r ON r.loan_id = i.loan_id
    WHERE i.loan_id >= :lo AND i.loan_id < :hi
    GROUP BY i.loan_id
), pos AS (
    SELECT dues.loan_id, l.branch_id, oldest_day, r_live, falling_due,
           l.outstanding_principal_paise - COALESCE(principal_applied, 0) AS live_outstanding,
           {seen_version} AS seen_version,
           CASE WHEN l.position_date <= :d THEN l.asset_class END AS stored_class,
           {dpd_sql(d, 'oldest_day', dialect)} AS dpd,
           CASE WHEN due_to_d > r_day THEN due_to_d - r_day ELSE 0 END AS overdue,
           oldest_live, {dpd_sql(d, 'oldest_live', dialect)} AS live_dpd,
           CASE WHEN due_to_d > r_live THEN due_to_d - r_live ELSE 0 END AS live_overdue
    FROM dues
    JOIN loans l ON l.id = dues.loan_id AND l.id >= :lo AND l.id < :hi
    WHERE l.disbursed_on <= :d AND r_day < due_all
), classed AS (
    SELECT pos.*, COALESCE(prev.asset_class, pos.stored_class) AS prior_class, prev.class_since AS prior_since,
           cur.asset_class AS existing_class,
           {_class_sql('pos.dpd', 'pos.overdue', 'COALESCE(prev.asset_class, pos.stored_class)')} AS asset_class,
           {_class_sql('pos.live_dpd', 'pos.live_overdue', 'COALESCE(prev.asset_class, pos.stored_class)')} AS live_class
    FROM pos
    LEFT JOIN dayend_positions prev ON prev.business_date = :prev AND prev.loan_id = pos.loan_id
                                   AND prev.loan_id >= :lo AND prev.loan_id < :hi
    LEFT JOIN dayend_positions cur ON cur.business_date = :d AND cur.loan_id = pos.loan_id
                                  AND cur.loan_id >= :lo AND cur.loan_id < :hi
)
SELECT loan_id, branch_id, dpd, asset_class, {_bucket_sql('dpd', buckets)}, overdue, oldest_day,
       CASE WHEN prior_class = asset_class AND prior_since IS NOT NULL THEN prior_since ELSE {d} END,
       prior_class, existing_class,
       oldest_live, live_class, {_bucket_sql('live_dpd', buckets)}, live_overdue, r_live, falling_due, live_outstanding,
       seen_version
FROM classed
"""


def _statements(dialect: str) -> dict[str, str]:
    """The batch's SQL for this database and configuration (built once per run)."""
    config = current_app.config
    interest, principal = _paid_split_sql(config["ALLOCATION_ORDER"], dialect, "w.r_live", "instalments")
    return {
        "compute": _compute_sql(dialect, config["BUCKETS"], config["ALLOCATION_ORDER"]),
        "clear": "DELETE FROM dayend_positions WHERE business_date = :d AND loan_id >= :lo AND loan_id < :hi",
        "history": """
            INSERT INTO dayend_positions (business_date, loan_id, dpd, asset_class, bucket, overdue_paise,
                                          overdue_since, class_since)
            SELECT :d, loan_id, dpd, asset_class, bucket, overdue_paise, overdue_since, class_since FROM dayend_work""",
        # A loan whose row changed after "compute" read it (a payment booked meanwhile, which stored its own
        # newer position) keeps what it has: PostgreSQL re-checks this condition on the row's latest version.
        # SQLite needs no such check: a write after another connection's commit fails the batch instead.
        "loans": """
            UPDATE loans SET overdue_since = w.live_since, asset_class = w.live_class, bucket = w.live_bucket,
                   overdue_paise = w.live_overdue, outstanding_principal_paise = w.live_outstanding, position_date = :d
            FROM dayend_work w
            WHERE loans.id = w.loan_id AND loans.id >= :lo AND loans.id < :hi AND loans.status = 'ACTIVE'
              AND (loans.overdue_since {distinct} w.live_since OR loans.asset_class <> w.live_class
                   OR loans.bucket <> w.live_bucket OR loans.overdue_paise <> w.live_overdue
                   OR loans.outstanding_principal_paise <> w.live_outstanding){unchanged}""".format(
            distinct="IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT",
            unchanged=" AND CAST(loans.xmin AS TEXT) = w.seen_version" if dialect == "postgresql" else ""),
        "instalments": f"""
            UPDATE instalments SET
                status = CASE WHEN w.r_live >= instalments.cumulative_due_paise THEN 'PAID'
                              WHEN w.r_live > instalments.cumulative_due_paise - instalments.principal_due_paise
                                              - instalments.interest_due_paise THEN 'PARTIALLY_PAID'
                              ELSE 'OVERDUE' END,
                interest_paid_paise = {interest},
                principal_paid_paise = {principal}
            FROM dayend_work w
            WHERE instalments.loan_id = w.loan_id AND w.falling_due > 0
              AND instalments.loan_id >= :lo AND instalments.loan_id < :hi
              AND instalments.status = 'DUE' AND instalments.due_date <= :d""",
        "transitions": """
            SELECT loan_id, branch_id, COALESCE(prior_class, 'STANDARD'), asset_class, dpd, overdue_paise
            FROM dayend_work
            WHERE asset_class <> COALESCE(prior_class, 'STANDARD')
              AND (existing_class IS NULL OR existing_class <> asset_class)""",
        "promises": SETTLE_PROMISES,
        "count": "SELECT COUNT(*) FROM dayend_work",
        "done": "DELETE FROM dayend_work",
    }


@dataclass
class BatchResult:
    loans: int
    transitions: Counter


def process_batch(session: Session, business_date: date, low: int, high: int, statements: dict[str, str]) -> BatchResult:
    """Compute and store one id range's day-end; the caller commits."""
    compute_batch(session, business_date, low, high, statements)
    return store_batch(session, business_date, low, high, statements)


def _runner(session: Session, statements: dict[str, str], business_date: date, low: int, high: int):
    """run(name): execute one of the batch's statements with its date and id range."""
    params = {"d": business_date, "prev": business_date - timedelta(days=1), "lo": low, "hi": high}

    def run(name: str):
        statement = text(statements[name]).bindparams(
            *[bindparam(k, type_=Date) for k in ("d", "prev") if f":{k}" in statements[name]])
        return session.execute(statement, params)
    return run


def compute_batch(session: Session, business_date: date, low: int, high: int, statements: dict[str, str]) -> None:
    """Read the range's money and dues into the work table (nothing is written to the portfolio yet)."""
    run = _runner(session, statements, business_date, low, high)
    postgresql = session.get_bind().dialect.name == "postgresql"
    session.execute(text(WORK_TABLE))
    run("done")  # a previous batch in this connection may have left rows behind
    if postgresql:
        # JIT compiling this statement costs about a tenth of a batch and gains nothing back (docs/performance.md).
        session.execute(text("SET LOCAL jit = off"))
    run("compute")
    if postgresql:
        session.execute(text("ANALYZE dayend_work"))  # a temporary table has no statistics until analysed


def store_batch(session: Session, business_date: date, low: int, high: int, statements: dict[str, str]) -> BatchResult:
    """Write what compute_batch found: the history rows, the loans' live positions, instalments that fell
    due, promises settled, class changes audited."""
    run = _runner(session, statements, business_date, low, high)
    for name in ("clear", "history", "loans", "instalments", "promises"):
        run(name)
    changes = run("transitions").all()
    audit.record_many(session, SYSTEM, "dayend.class_changed", "loan", [
        (loan_id, {"asset_class": before}, {"asset_class": after, "dpd": dpd, "overdue": money.as_str(overdue),
                                             "business_date": business_date}, branch_id)
        for loan_id, branch_id, before, after, dpd, overdue in changes])
    processed = run("count").scalar()
    run("done")
    return BatchResult(processed, Counter(f"{before}->{after}" for _, _, before, after, _, _ in changes))


def statements_for(session: Session) -> dict[str, str]:
    return _statements(session.get_bind().dialect.name)


def heartbeat(session: Session, run_id: int, batch: BatchResult) -> None:
    run = session.get(CronRun, run_id, with_for_update=True)
    run.heartbeat_at = clock.now()
    run.batches_done += 1
    run.loans_processed += batch.loans
    summary = json.loads(run.summary or "{}")
    transitions = Counter(summary.get("transitions", {}))
    transitions.update(batch.transitions)
    run.summary = json.dumps({**summary, "transitions": dict(transitions)})


def finish_run(session: Session, run_id: int) -> CronRun:
    """Mark the run SUCCEEDED with counts per class and bucket, and audit the summary."""
    run = session.get(CronRun, run_id, with_for_update=True)
    rows = session.execute(
        select(DayendPosition.asset_class, DayendPosition.bucket, func.count(),
               func.coalesce(func.sum(DayendPosition.overdue_paise), 0))
        .where(DayendPosition.business_date == run.business_date)
        .group_by(DayendPosition.asset_class, DayendPosition.bucket)).all()
    classes, buckets, overdue = Counter(), Counter(), 0
    for asset_class, bucket, count, amount in rows:
        classes[asset_class] += count
        buckets[bucket] += count
        overdue += int(amount)
    summary = json.loads(run.summary or "{}")
    summary.update({"classes": dict(classes), "buckets": dict(buckets), "overdue": money.as_str(overdue),
                    "loans": sum(classes.values())})
    run.summary = json.dumps(summary, sort_keys=True)
    run.status, run.finished_at = "SUCCEEDED", clock.now()
    session.flush()
    audit.record(session, SYSTEM, "dayend.succeeded", "cron_run", run.id,
                 after={"business_date": run.business_date, "attempt": run.attempt, "forced": run.forced, **summary})
    return run


# ---------------------------------------------------------------- reading the history

def position_on(session: Session, loan_id: int, business_date: date | None = None) -> DayendPosition | None:
    """The official row for a date, or the latest one when no date is given."""
    query = select(DayendPosition).where(DayendPosition.loan_id == loan_id)
    if business_date is not None:
        return session.scalar(query.where(DayendPosition.business_date == business_date))
    return session.scalar(query.order_by(DayendPosition.business_date.desc()).limit(1))


def as_dict(row: DayendPosition | None) -> dict | None:
    if row is None:
        return None
    since = {name: (row.class_since.isoformat() if row.asset_class == cls and row.class_since else None)
             for name, cls in (("sma0_since", "SMA-0"), ("sma1_since", "SMA-1"), ("sma2_since", "SMA-2"),
                               ("npa_since", "NPA"))}
    return {"business_date": row.business_date.isoformat(), "dpd": row.dpd, "asset_class": row.asset_class,
            "bucket": row.bucket, "overdue_amount": money.as_str(row.overdue_paise),
            "overdue_since": row.overdue_since.isoformat() if row.overdue_since else None, **since}
