#!/usr/bin/env python
"""Day-end over a synthetic portfolio on PostgreSQL: how long, against what floor, with how much memory.

    .venv/bin/python bench/dayend.py [--loans N] [--seed S] [--database-url URL] [--keep]
                                     [--batch-size B] [--compare-batch-sizes B1,B2,...] [--explain FILE]
                                     [--json FILE]

1. Drops and creates the database (default kisht_bench on the test server; the name must contain
   "bench"), migrates it with Alembic like production, and generates N loans with their schedules,
   payments, reversals and approvals inside PostgreSQL (bench/_data.py), then checks what the disabled
   bulk-load triggers would have checked and replays a sample of loans through the ledger in Python.
2. Business date D = yesterday (IST). Runs day-end for D-1 first: that is the "previous day" whose rows
   every production run joins to, and a check of the generator (the stored live positions must already
   be what day-end computes: it should update no loan). Then the measured run for D through
   jobs.dayend.run_dayend, the raw single-statement DPD computation for D (the floor), and day-end for D
   again with force=True, whose rows must be identical.
3. Prints the figures (and writes them as JSON with --json), drops the database unless --keep.

Before each timed run the touched tables are vacuumed and analysed and a CHECKPOINT is taken, so no
run pays for the writes of the one before; the app's connection pool is emptied, as in a fresh worker.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from sqlalchemy import Date, bindparam, create_engine, event, make_url, text  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from bench._data import PROFILES, Generator  # noqa: E402

DEFAULT_SERVER = os.environ.get("KISHT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")

# The floor: DPD of every loan for D in one plain SELECT (money received by D net of approved reversals,
# the oldest instalment due by D whose cumulative due exceeds it), consumed server-side.
RAW_DPD = """
SELECT count(*) AS loans, count(*) FILTER (WHERE dpd > 0) AS overdue_loans, COALESCE(sum(dpd), 0) AS dpd_sum
FROM (
    SELECT i.loan_id,
           COALESCE(CAST(:d AS DATE) - MIN(i.due_date) FILTER (WHERE i.cumulative_due_paise > COALESCE(r.received, 0)) + 1, 0)
               AS dpd
    FROM instalments i
    LEFT JOIN (
        SELECT p.loan_id, SUM(p.amount_paise - COALESCE(rv.amount, 0)) AS received
        FROM payments p
        LEFT JOIN (SELECT r.payment_id, SUM(r.amount_paise) AS amount
                   FROM reversals r JOIN approvals a ON a.reversal_id = r.id AND a.status = 'APPROVED'
                   GROUP BY r.payment_id) rv ON rv.payment_id = p.id
        WHERE p.status = 'POSTED' AND p.value_date <= CAST(:d AS DATE)
        GROUP BY p.loan_id
    ) r ON r.loan_id = i.loan_id
    WHERE i.due_date <= CAST(:d AS DATE)
    GROUP BY i.loan_id
) per_loan
"""

DAY_ROWS = """
SELECT count(*), count(*) FILTER (WHERE dpd > 0), COALESCE(sum(dpd), 0), COALESCE(sum(overdue_paise), 0),
       md5(string_agg(concat_ws(',', loan_id, dpd, asset_class, bucket, overdue_paise, overdue_since, class_since),
                      ';' ORDER BY loan_id))
FROM dayend_positions WHERE business_date = :d
"""

# Which day-end statement a cursor execution is, by a fragment of its text.
STATEMENT_KINDS = (
    ("INSERT INTO dayend_work", "compute"), ("DELETE FROM dayend_positions", "clear"),
    ("INSERT INTO dayend_positions", "history"), ("UPDATE loans SET overdue_since", "loans"),
    ("UPDATE instalments SET", "instalments"), ("WHERE asset_class <> COALESCE(prior_class", "transitions"),
    ("INSERT INTO audit_log", "audit"), ("DELETE FROM dayend_work", "clear work table"),
    ("CREATE TEMPORARY TABLE IF NOT EXISTS dayend_work", "create work table"),
    ("SELECT COUNT(*) FROM dayend_work", "count"), ("UPDATE promises SET", "promises"),
)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def say(message: str = "") -> None:
    print(message, flush=True)


class StatementClock:
    """Time and rows per kind of statement, from SQLAlchemy's cursor events (the code under test is untouched)."""

    def __init__(self, engine):
        self.lock = threading.Lock()  # batches run on several connections at once
        self.seconds: dict[str, float] = defaultdict(float)
        self.rows: dict[str, int] = defaultdict(int)
        self.calls: Counter = Counter()
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def reset(self) -> None:
        self.seconds.clear()
        self.rows.clear()
        self.calls.clear()

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        elapsed = time.perf_counter() - conn.info["bench_started"].pop()
        kind = next((name for fragment, name in STATEMENT_KINDS if fragment in statement), "bookkeeping")
        with self.lock:
            self.seconds[kind] += elapsed
            self.calls[kind] += 1
            if cursor.rowcount and cursor.rowcount > 0 and kind in ("history", "loans", "instalments", "clear", "audit"):
                self.rows[kind] += cursor.rowcount


def fresh_database(url: str, markers: tuple[str, ...] = ("bench",)) -> None:
    """Drop and create the benchmark database, refusing any whose name contains none of `markers`."""
    target = make_url(url)
    if not any(marker in (target.database or "") for marker in markers):
        sys.exit(f"refusing to drop and recreate {target.database!r}: the name must contain "
                 + " or ".join(repr(m) for m in markers))
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def drop_database(url: str) -> None:
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    admin.dispose()


def psycopg_connect(url: str, **kwargs) -> psycopg.Connection:
    u = make_url(url)
    return psycopg.connect(host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username, password=u.password,
                           dbname=u.database, **kwargs)


REWIND_TABLES = ("bench_rewind_loans", "bench_rewind_instalments")


def snapshot_before(url: str, business_date) -> dict:
    """Keep what the run for `business_date` will change in the derived state (live positions, statuses).

    Re-runs of that date (force=True) start by putting it back (rewind), so that each does the same work as
    the measured run -- updating every loan whose live position moves and marking the instalments that fell
    due -- rather than finding everything already up to date. Two scratch tables, bench_*; nothing else.
    """
    with psycopg_connect(url, autocommit=True) as conn:
        for table in REWIND_TABLES:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute("CREATE TABLE bench_rewind_loans AS SELECT id, overdue_since, asset_class, bucket, overdue_paise, "
                     "outstanding_principal_paise, position_date FROM loans WHERE status = 'ACTIVE'")
        conn.execute("CREATE TABLE bench_rewind_instalments AS SELECT id, status, principal_paid_paise, "
                     "interest_paid_paise FROM instalments WHERE status = 'DUE' AND due_date <= %s", (business_date,))
        for table in REWIND_TABLES:
            conn.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (id)")
            conn.execute(f"ANALYZE {table}")
        return {"loans": conn.execute("SELECT count(*) FROM bench_rewind_loans").fetchone()[0],
                "instalments": conn.execute("SELECT count(*) FROM bench_rewind_instalments").fetchone()[0]}


def rewind(url: str) -> dict:
    """Put back the derived state kept by snapshot_before (derived columns only: the guards allow it)."""
    with psycopg_connect(url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('bench_rewind_loans')").fetchone()[0] is None:
            return {}
        loans = conn.execute("""
            UPDATE loans l SET overdue_since = r.overdue_since, asset_class = r.asset_class, bucket = r.bucket,
                   overdue_paise = r.overdue_paise, outstanding_principal_paise = r.outstanding_principal_paise,
                   position_date = r.position_date
            FROM bench_rewind_loans r
            WHERE l.id = r.id AND (l.overdue_since, l.asset_class, l.bucket, l.overdue_paise,
                                   l.outstanding_principal_paise, l.position_date)
                  IS DISTINCT FROM (r.overdue_since, r.asset_class, r.bucket, r.overdue_paise,
                                    r.outstanding_principal_paise, r.position_date)""").rowcount
        instalments = conn.execute("""
            UPDATE instalments i SET status = r.status, principal_paid_paise = r.principal_paid_paise,
                   interest_paid_paise = r.interest_paid_paise
            FROM bench_rewind_instalments r WHERE i.id = r.id AND i.status <> r.status""").rowcount
    return {"loans": loans, "instalments": instalments}


def drop_snapshot(url: str) -> None:
    with psycopg_connect(url, autocommit=True) as conn:
        for table in REWIND_TABLES:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def settle(url: str, tables=("dayend_positions", "loans", "instalments")) -> float:
    """VACUUM ANALYZE what the last step wrote, then CHECKPOINT: the next timed run starts clean."""
    started = time.perf_counter()
    with psycopg_connect(url, autocommit=True) as conn:
        for table in tables:
            conn.execute(f"VACUUM (ANALYZE) {table}")
        conn.execute("CHECKPOINT")
    return time.perf_counter() - started


# ---------------------------------------------------------------- checks of the generated data

def sample_check(app, business_date, seed: int, sample: int = 300) -> dict:
    """Replay a sample of loans through the application's own pure ledger and compare with the stored rows."""
    from webapp import db
    from webapp.services import ledger
    from webapp.services.schedule import ScheduledInstalment, build_schedule

    as_of = business_date - timedelta(days=1)
    problems, class_differences, checked = [], 0, 0
    with app.app_context():
        session = db.new_session()
        ids = session.execute(text("SELECT id FROM loans ORDER BY hashint8(id + :seed) LIMIT :n"),
                              {"seed": seed, "n": sample}).scalars().all()
        for loan_id in ids:
            loan = session.execute(text(
                "SELECT principal_paise, annual_rate_bps, tenure_months, first_due_on, overdue_since, overdue_paise, "
                "outstanding_principal_paise, asset_class, bucket, status FROM loans WHERE id = :id"),
                {"id": loan_id}).one()
            rows = session.execute(text(
                "SELECT seq, due_date, principal_due_paise, interest_due_paise, cumulative_due_paise, "
                "principal_paid_paise, interest_paid_paise, status FROM instalments WHERE loan_id = :id ORDER BY seq"),
                {"id": loan_id}).all()
            receipts = [ledger.Receipt(pid, value_date, net) for pid, value_date, net in session.execute(text(
                "SELECT p.id, p.value_date, p.amount_paise - COALESCE((SELECT SUM(r.amount_paise) FROM reversals r "
                "JOIN approvals a ON a.reversal_id = r.id AND a.status = 'APPROVED' WHERE r.payment_id = p.id), 0) "
                "FROM payments p WHERE p.loan_id = :id AND p.status = 'POSTED' ORDER BY p.id"), {"id": loan_id})
                if net > 0]
            expected = build_schedule(loan.principal_paise, loan.annual_rate_bps, loan.tenure_months, loan.first_due_on)
            stored = [(r.seq, r.due_date, r.principal_due_paise, r.interest_due_paise) for r in rows]
            if stored != [(s.seq, s.due_date, s.principal_paise, s.interest_paise) for s in expected]:
                problems.append(f"loan {loan_id}: schedule differs from build_schedule")
            running = 0
            for r in rows:
                running += r.principal_due_paise + r.interest_due_paise
                if r.cumulative_due_paise != running:
                    problems.append(f"loan {loan_id} seq {r.seq}: cumulative_due_paise is not the running sum")
            position = ledger.compute_position(
                [ScheduledInstalment(*s) for s in stored], receipts, as_of, receipts_until=business_date,
                order=app.config["ALLOCATION_ORDER"], buckets=app.config["BUCKETS"])
            for r, p in zip(rows, position.instalments):
                if (r.principal_paid_paise, r.interest_paid_paise, r.status) != (p.principal_paid, p.interest_paid, p.status):
                    problems.append(f"loan {loan_id} seq {r.seq}: stored {r.principal_paid_paise}/{r.interest_paid_paise}/"
                                    f"{r.status}, ledger {p.principal_paid}/{p.interest_paid}/{p.status}")
            got = (loan.overdue_since, loan.overdue_paise, loan.outstanding_principal_paise, loan.bucket, loan.status)
            want = (position.overdue_since, position.overdue_paise, position.outstanding_principal_paise, position.bucket,
                    "CLOSED" if position.closed else "ACTIVE")
            if got != want:
                problems.append(f"loan {loan_id}: stored position {got}, ledger {want}")
            if loan.asset_class != position.asset_class:
                # Expected only where the ledger keeps NPA from an earlier date (the generator stores the
                # class of the DPD): anything else is a problem.
                if position.asset_class == "NPA" and position.overdue_paise > 0 \
                        and loan.asset_class == ledger.class_for_dpd(ledger.dpd_on(as_of, loan.overdue_since)):
                    class_differences += 1
                else:
                    problems.append(f"loan {loan_id}: stored class {loan.asset_class}, ledger {position.asset_class}")
            checked += 1
        session.close()
    return {"loans": checked, "problems": problems, "class_differences_npa_stickiness": class_differences}


def portfolio_summary(url: str, business_date) -> dict:
    with psycopg_connect(url) as conn:
        def one(sql, *args):
            return conn.execute(sql, args).fetchone()
        loans, active, closed = one("SELECT count(*), count(*) FILTER (WHERE status = 'ACTIVE'), "
                                    "count(*) FILTER (WHERE status = 'CLOSED') FROM loans")
        summary = {
            "branches": one("SELECT count(*) FROM branches")[0],
            "users": one("SELECT count(*) FROM users")[0],
            "borrowers": one("SELECT count(*) FROM borrowers")[0],
            "loans": loans, "active": active, "closed": closed,
            "instalments": one("SELECT count(*) FROM instalments")[0],
            "payments": dict(conn.execute("SELECT status, count(*) FROM payments GROUP BY 1 ORDER BY 1").fetchall()),
            "payment_modes": dict(conn.execute("SELECT mode, count(*) FROM payments GROUP BY 1 ORDER BY 1").fetchall()),
            "reversals": dict(conn.execute("SELECT a.status || ' ' || r.reason, count(*) FROM reversals r "
                                           "JOIN approvals a ON a.reversal_id = r.id GROUP BY 1 ORDER BY 1").fetchall()),
            "stored_classes_active": dict(conn.execute(
                "SELECT asset_class, count(*) FROM loans WHERE status = 'ACTIVE' GROUP BY 1 ORDER BY 1").fetchall()),
            "stored_buckets_active": dict(conn.execute(
                "SELECT bucket, count(*) FROM loans WHERE status = 'ACTIVE' GROUP BY 1 ORDER BY 1").fetchall()),
            "disbursed": [str(x) for x in one("SELECT min(disbursed_on), max(disbursed_on) FROM loans")],
            "instalments_falling_due_on_d": one("SELECT count(*) FROM instalments WHERE due_date = %s",
                                                business_date)[0],
            "database_size": one("SELECT pg_size_pretty(pg_database_size(current_database()))")[0],
            "table_sizes": dict(conn.execute(
                "SELECT c, pg_size_pretty(pg_total_relation_size(c::regclass)) FROM unnest(ARRAY['loans', "
                "'instalments', 'payments', 'borrowers']) c").fetchall()),
        }
    return summary


# ---------------------------------------------------------------- the runs

def run_dayend_timed(app, clock_, business_date, *, force: bool, label: str) -> dict:
    from jobs.dayend import run_dayend
    from webapp import db

    app.extensions["kisht.engine"].dispose()  # a fresh pool, as in a fresh worker process
    # The time from one batch's end to the next one's: with batches in parallel, not how long each took.
    batch_end_gaps, last = [], [time.perf_counter()]

    def progress(done, total):
        now = time.perf_counter()
        batch_end_gaps.append(now - last[0])
        last[0] = now

    clock_.reset()
    load_before = os.getloadavg()[0]
    with app.app_context():
        started = time.perf_counter()
        last[0] = started
        run = run_dayend(business_date, force=force, progress=progress)
        wall = time.perf_counter() - started
        with db.new_session() as session:  # the CronRun as stored
            from webapp.models import CronRun
            run = session.get(CronRun, run.id)
            result = {
                "label": label, "business_date": str(business_date), "force": force, "status": run.status,
                "error": run.error, "wall_seconds": round(wall, 2), "loans_processed": run.loans_processed,
                "batches": run.batches_total, "batch_size": app.config["DAYEND_BATCH_SIZE"],
                "parallel_batches": app.config["DAYEND_PARALLEL_BATCHES"],
                "summary": json.loads(run.summary or "{}"),
                "batch_end_gaps_seconds": [round(t, 2) for t in batch_end_gaps],
                "statement_seconds": {k: round(v, 2) for k, v in sorted(clock_.seconds.items(), key=lambda kv: -kv[1])},
                "statement_rows": dict(clock_.rows),
                "peak_rss_mb_so_far": round(rss_mb(), 1),
                "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            }
    if result["parallel_batches"] == 1:
        other = wall - sum(clock_.seconds.values())
        result["statement_seconds"]["python, commits and the rest"] = round(other, 2)
    say(f"  {label}: {result['status']} in {wall:.1f} s, {result['loans_processed']:,} loans in "
        f"{result['batches']} batches of {result['batch_size']:,}, {result['parallel_batches']} at a time")
    say(f"    per statement (s, summed over the connections): "
        + ", ".join(f"{k} {v}" for k, v in result["statement_seconds"].items()))
    say(f"    rows: " + ", ".join(f"{k} {v:,}" for k, v in result["statement_rows"].items()))
    say(f"    seconds from one batch's end to the next: {result['batch_end_gaps_seconds']}")
    say(f"    load average (1 min) before/after: {result['load_average_1min']}")
    if result["status"] != "SUCCEEDED":
        say(f"    ERROR: {result['error']}")
    return result


def raw_statement(url: str, business_date) -> dict:
    """The raw statement as the server plans it, and again with parallel query off.

    With the default settings PostgreSQL 15 may plan it in parallel with every worker building the whole
    payments aggregate (see docs/performance.md), which is slower than one process: the floor is the faster.
    """
    engine = create_engine(url, poolclass=NullPool)
    out = {}
    for label, setting in (("as planned", None), ("serial", "SET max_parallel_workers_per_gather = 0")):
        load_before = os.getloadavg()[0]
        with engine.connect() as connection:
            if setting:
                connection.execute(text(setting))
            started = time.perf_counter()
            loans, overdue, dpd_sum = connection.execute(text(RAW_DPD), {"d": business_date}).one()
            seconds = time.perf_counter() - started
        out[label] = {"seconds": round(seconds, 2), "load_average_1min": [round(load_before, 2),
                                                                          round(os.getloadavg()[0], 2)]}
    engine.dispose()
    return {"seconds": min(v["seconds"] for v in out.values()), "loans": loans, "overdue_loans": overdue,
            "dpd_sum": int(dpd_sum), "variants": out}


def day_rows(url: str, business_date) -> dict:
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        rows, overdue, dpd_sum, overdue_paise, digest = connection.execute(text(DAY_ROWS), {"d": business_date}).one()
        per_class = dict(connection.execute(text(
            "SELECT asset_class, count(*) FROM dayend_positions WHERE business_date = :d GROUP BY 1 ORDER BY 1"),
            {"d": business_date}).all())
        per_bucket = dict(connection.execute(text(
            "SELECT bucket, count(*) FROM dayend_positions WHERE business_date = :d GROUP BY 1 ORDER BY 1"),
            {"d": business_date}).all())
    engine.dispose()
    return {"rows": rows, "overdue_loans": overdue, "dpd_sum": int(dpd_sum), "overdue_paise": int(overdue_paise),
            "md5": digest, "classes": per_class, "buckets": per_bucket}


def explain(app, url: str, business_date, path: str) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of one middle batch's statements and of the raw statement; rolled back."""
    from webapp import db
    from webapp.services import dayend

    out = [f"-- day-end statements for {business_date}, one middle batch, in a transaction rolled back afterwards\n"]
    with app.app_context():
        session = db.new_session()
        statements = dayend.statements_for(session)
        ranges = dayend.batch_ranges(session, app.config["DAYEND_BATCH_SIZE"])
        low, high = ranges[len(ranges) // 2]
        params = {"d": business_date, "prev": business_date - timedelta(days=1), "lo": low, "hi": high}
        session.execute(text(dayend.WORK_TABLE))
        for name in ("compute", "clear", "history", "loans", "instalments", "transitions"):
            sql = statements[name]
            statement = text("EXPLAIN (ANALYZE, BUFFERS, SETTINGS) " + sql).bindparams(
                *[bindparam(k, type_=Date) for k in ("d", "prev") if f":{k}" in sql])
            plan = "\n".join(row[0] for row in session.execute(statement, params))
            out.append(f"\n-- {name} (loan ids {low}..{high - 1})\n{sql.strip()}\n\n{plan}\n")
        session.rollback()
        session.close()
    app.extensions["kisht.engine"].dispose()
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        plan = "\n".join(row[0] for row in connection.execute(
            text("EXPLAIN (ANALYZE, BUFFERS, SETTINGS) " + RAW_DPD), {"d": business_date}))
        out.append(f"\n-- the raw statement\n{RAW_DPD.strip()}\n\n{plan}\n")
    engine.dispose()
    Path(path).write_text("".join(out))
    say(f"  plans written to {path}")


# ---------------------------------------------------------------- main

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loans", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default=f"{DEFAULT_SERVER}/kisht_bench")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="DAYEND_BATCH_SIZE for the measured runs (default: the app's)")
    parser.add_argument("--parallel", type=int, default=None,
                        help="DAYEND_PARALLEL_BATCHES for the measured runs (default: the app's)")
    parser.add_argument("--compare-batch-sizes", default="",
                        help="comma-separated SIZE or SIZExPARALLEL: re-run day-end for D (force) with each and time it")
    parser.add_argument("--explain", metavar="FILE", help="write EXPLAIN ANALYZE of one batch and of the raw statement")
    parser.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    args = parser.parse_args(argv)
    if args.loans < 1:
        parser.error("--loans must be at least 1")

    from argon2 import PasswordHasher

    from webapp import clock, create_app
    from webapp.cli import alembic_config

    url = args.database_url
    overrides = {"APP_ENV": "test", "DATABASE_URL": url, "REDIS_URL": "", "LOG_LEVEL": "WARNING"}
    if args.batch_size:
        overrides["DAYEND_BATCH_SIZE"] = args.batch_size
    if args.parallel:
        overrides["DAYEND_PARALLEL_BATCHES"] = args.parallel
    try:
        comparing = [batch_setting(spec) for spec in args.compare_batch_sizes.split(",") if spec.strip()]
    except ValueError as error:
        parser.error(str(error))
    business_date = clock.last_business_date()
    results: dict = {"loans": args.loans, "seed": args.seed, "business_date": str(business_date),
                     "database": make_url(url).render_as_string(hide_password=True), "machine": machine(),
                     "code": code_version()}
    say(f"day-end benchmark: {args.loans:,} loans, seed {args.seed}, business date {business_date} (yesterday, IST)")
    say(f"  machine: {results['machine']}; code: {results['code']}")
    with psycopg_connect(make_url(url).set(database="postgres").render_as_string(hide_password=False)) as conn:
        results["postgresql"] = {"version": conn.execute("SHOW server_version").fetchone()[0], **dict(conn.execute(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name IN ('shared_buffers', 'work_mem', "
            "'effective_cache_size', 'max_wal_size', 'max_parallel_workers_per_gather', 'jit', 'synchronous_commit', "
            "'temp_buffers', 'wal_buffers', 'random_page_cost') ORDER BY 1").fetchall())}
    say(f"  PostgreSQL: {results['postgresql']}")

    started = time.perf_counter()
    fresh_database(url)
    app = create_app(overrides)
    with app.app_context():
        from alembic import command
        command.upgrade(alembic_config(), "head")
    results["migrate_seconds"] = round(time.perf_counter() - started, 1)
    say(f"  database created and migrated in {results['migrate_seconds']} s")

    try:
        from webapp import db
        from webapp.services import dayend

        with app.app_context(), db.new_session() as session:  # the month partition of D-1, as day-end makes it
            dayend.ensure_partition(session, business_date - timedelta(days=1))
            session.commit()
        say("generating (inside PostgreSQL):")
        started = time.perf_counter()
        with psycopg_connect(url) as conn:
            generator = Generator(conn, loans=args.loans, seed=args.seed, business_date=business_date,
                                  buckets=app.config["BUCKETS"],
                                  password_hash=PasswordHasher().hash(secrets.token_urlsafe(24)), log=say)
            generator.run()
            generation = time.perf_counter() - started
            say(f"  generated in {generation:.1f} s; checking what the bulk load bypassed ...")
            started = time.perf_counter()
            problems = generator.verify()
            verification = time.perf_counter() - started
        results["generation"] = {"seconds": round(generation, 1), "steps": {k: round(v, 1) for k, v in generator.timings.items()},
                                 "verify_seconds": round(verification, 1), "verify_problems": problems,
                                 "branches": generator.branches}
        say(f"  integrity checks in {verification:.1f} s: {'all good' if not problems else problems}")
        if problems:
            return 2
        results["generation"]["vacuum_analyze_checkpoint_seconds"] = round(
            settle(url, ("branches", "users", "borrowers", "loans", "instalments", "payments", "reversals", "approvals",
                         "dayend_positions")), 1)
        say(f"  VACUUM ANALYZE + CHECKPOINT in {results['generation']['vacuum_analyze_checkpoint_seconds']} s")
        sample = sample_check(app, business_date, args.seed)
        results["ledger_sample"] = sample
        say(f"  ledger replay of {sample['loans']} sampled loans: "
            f"{'agrees' if not sample['problems'] else sample['problems'][:5]}; class differs only by NPA stickiness "
            f"for {sample['class_differences_npa_stickiness']}")
        if sample["problems"]:
            return 2
        results["portfolio"] = portfolio_summary(url, business_date)
        results["portfolio"]["profiles"] = dict(zip(PROFILES, ("70 %", "10 %", "7 %", "7 %", "3 %", "3 %")))
        say(f"  portfolio: {json.dumps(results['portfolio'])}")
        say(f"  peak RSS after generation: {rss_mb():.0f} MB")

        engine = app.extensions["kisht.engine"]
        statement_clock = StatementClock(engine)
        say("day-end:")
        previous = business_date - timedelta(days=1)
        results["run_previous_day"] = run_dayend_timed(app, statement_clock, previous, force=False,
                                                        label=f"D-1 = {previous} (writes the rows D joins to)")
        loans_changed = results["run_previous_day"]["statement_rows"].get("loans", 0)
        say(f"    loans whose stored position the D-1 run changed: {loans_changed} "
            f"({'the generator agrees with day-end' if loans_changed == 0 else 'the generator DISAGREES with day-end'})")
        results["rewind_snapshot"] = snapshot_before(url, business_date)
        settle(url)
        results["raw_first"] = raw_statement(url, business_date)
        say(f"  raw statement (first, cold-ish): {results['raw_first']}")
        if args.explain:
            explain(app, url, business_date, args.explain)
        settle(url)
        results["run"] = run_dayend_timed(app, statement_clock, business_date, force=False, label=f"D = {business_date}")
        results["rows_first"] = day_rows(url, business_date)
        results["raw"] = raw_statement(url, business_date)
        say(f"  raw statement (after the run): {results['raw']}")
        results["rewound"] = rewind(url)
        say(f"  derived state put back to before the run: {results['rewound']}")
        settle(url)
        results["run_forced"] = run_dayend_timed(app, statement_clock, business_date, force=True,
                                                 label=f"D = {business_date} again, force=True")
        results["rows_forced"] = day_rows(url, business_date)
        first, again = results["rows_first"], results["rows_forced"]
        results["identical"] = first == again and \
            {k: results["run"]["summary"].get(k) for k in ("classes", "buckets", "overdue", "loans")} == \
            {k: results["run_forced"]["summary"].get(k) for k in ("classes", "buckets", "overdue", "loans")}
        results["raw_agrees"] = (results["raw"]["overdue_loans"], results["raw"]["dpd_sum"]) == \
            (first["overdue_loans"], first["dpd_sum"])

        comparisons = []
        for size, parallel in comparing:
            app.config.update(DAYEND_BATCH_SIZE=size, DAYEND_PARALLEL_BATCHES=parallel or app.config["DAYEND_PARALLEL_BATCHES"])
            rewind(url)
            settle(url)
            timed = run_dayend_timed(app, statement_clock, business_date, force=True,
                                     label=f"force=True, batch {size:,} x {app.config['DAYEND_PARALLEL_BATCHES']}")
            timed["identical"] = day_rows(url, business_date) == first
            comparisons.append(timed)
        results["batch_size_comparison"] = comparisons

        best_raw = min(results["raw_first"]["seconds"], results["raw"]["seconds"])
        results["ratio"] = round(results["run"]["wall_seconds"] / best_raw, 2) if best_raw else None
        results["peak_rss_mb"] = round(rss_mb(), 1)
        report(results)
    finally:
        try:
            app.extensions["kisht.engine"].dispose()
        except Exception:  # noqa: BLE001
            pass
        if args.keep:
            say(f"kept database {make_url(url).database} (with bench_rewind_* for bench/dayend_whatif.py)")
        else:
            drop_database(url)
            say(f"dropped database {make_url(url).database}")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2, default=str))
            say(f"figures written to {args.json}")
    return 0 if results.get("identical") and results.get("raw_agrees") else 1


def code_version() -> str:
    """The commit measured, and whether the code the app runs (webapp/, jobs/, migrations/) differed from it."""
    import subprocess

    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    changed = git("status", "--porcelain", "--", "webapp", "jobs", "migrations").splitlines()
    return git("rev-parse", "--short", "HEAD") + (f" + {len(changed)} uncommitted change(s) to the code" if changed else "")


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, CPU yardstick {cpu_yardstick():.2f} s"


def cpu_yardstick() -> float:
    """Seconds one core takes to add up ten million integers in Python (best of three): "AMD EPYC" covers
    machines three times apart, and every figure here scales with this one."""
    best = float("inf")
    for _ in range(3):
        started, total = time.perf_counter(), 0
        for n in range(10_000_000):
            total += n
        best = min(best, time.perf_counter() - started)
    return best


def batch_setting(spec: str) -> tuple[int, int | None]:
    """"200000" or "200000x2": DAYEND_BATCH_SIZE and, optionally, DAYEND_PARALLEL_BATCHES."""
    size, _, parallel = spec.strip().replace("_", "").partition("x")
    if not size.isdigit() or int(size) < 1 or (parallel and (not parallel.isdigit() or int(parallel) < 1)):
        raise ValueError(f"bad batch setting {spec!r}: SIZE or SIZExPARALLEL, e.g. 200000x2")
    return int(size), int(parallel) if parallel else None


def report(r: dict) -> None:
    run, raw = r["run"], min(r["raw_first"], r["raw"], key=lambda x: x["seconds"])
    say()
    say("=" * 78)
    say(f"loans generated        {r['loans']:,} (seed {r['seed']}), business date {r['business_date']}")
    say(f"data generation        {r['generation']['seconds']} s (+ {r['generation']['verify_seconds']} s checks, "
        f"+ {r['generation']['vacuum_analyze_checkpoint_seconds']} s VACUUM ANALYZE)")
    say(f"day-end D-1 (first)    {r['run_previous_day']['wall_seconds']} s")
    say(f"day-end D (measured)   {run['wall_seconds']} s: {run['loans_processed']:,} loans, {run['batches']} batches "
        f"of {run['batch_size']:,}, {run['parallel_batches']} at a time, status {run['status']}")
    say(f"day-end D, force=True  {r['run_forced']['wall_seconds']} s, identical rows and summary: {r['identical']}")
    variants = ", ".join(f"{when} {label} {v['seconds']} s" for when, x in (("before,", r["raw_first"]), ("after,", r["raw"]))
                         for label, v in x["variants"].items())
    say(f"raw statement          {raw['seconds']} s, the fastest of: {variants}; agrees with day-end: {r['raw_agrees']}")
    say(f"ratio day-end / raw    {r['ratio']}")
    say(f"peak RSS (Python)      {r['peak_rss_mb']} MB")
    say(f"run summary            {json.dumps(run['summary'], sort_keys=True)}")
    for c in r["batch_size_comparison"]:
        say(f"batch {c['batch_size']:>9,} x {c['parallel_batches']}    {c['wall_seconds']} s (force=True), "
            f"identical: {c['identical']}")
    budget = [("1,000,000 loans in under 30 s" if r["loans"] == 1_000_000 else f"{r['loans']:,} loans in under 30 s",
               run["wall_seconds"] < 30),
              ("within 3x of the raw statement", r["ratio"] is not None and r["ratio"] <= 3),
              ("Python peak memory under 500 MB", r["peak_rss_mb"] < 500)]
    for name, ok in budget:
        say(f"budget: {name:<40} {'MET' if ok else 'MISSED'}")
    say("=" * 78)


if __name__ == "__main__":
    sys.exit(main())
