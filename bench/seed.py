#!/usr/bin/env python
"""A realistic PostgreSQL data set for the load harness (bench/load.py) and for trying the screens at scale.

    .venv/bin/python bench/seed.py [--loans N] [--seed S] [--database-url URL] [--branches B]
                                   [--collectors C] [--password P] [--no-month-history] [--json FILE]

1. Drops and creates the database (default kisht_load on the test server; the name must contain "load" or
   "bench"), migrates it with Alembic like production.
2. Generates the portfolio inside PostgreSQL with bench/_data.py (the day-end benchmark's generator):
   N loans (default 1,000,000) over B branches (50) and C collectors (1,000: C/B per branch), a manager per
   branch, three finance users, legal and admin, 24 instalments a loan, payment histories that give every
   class and bucket, bounced cheques and reversals (approved, pending, rejected), the day-end history of the
   month so far. Every user can sign in with one password (printed; hashed once with the app's hasher at
   the production cost and the hash reused).
3. Adds, set-based and with the database's triggers on (so their guards check these rows):
   backdated payments waiting for a manager, approved (posted, the loan replayed by the app's ledger) and
   rejected; disputes in every state; bank statements of the last ten days for two banks with their lines
   (credits matched and confirmed, suggested, mismatched, unmatched; debits) and the payments they
   reconcile; calls and visits, promises to pay (open, and older ones the day-end settles).
4. VACUUM ANALYZE, then day-end for D-1 (D = yesterday, IST) through jobs.dayend.run_dayend, then the
   follow-up jobs (priority scores, escalations) for D-1, as the nightly chain runs them. Day-end for D is
   left to run: `kisht dayend run` (or the scheduler) does it on this database.

Prints timings per step and row counts (and writes them with --json). Repeatable: the same seed gives the
same rows, except the references of new payments booked later and the moment-dependent timestamps.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import make_url  # noqa: E402

from bench._data import FINANCE_USERS, IST, Generator, reference_sql  # noqa: E402
from bench.dayend import code_version, fresh_database, machine, psycopg_connect, sample_check, settle  # noqa: E402

DEFAULT_SERVER = os.environ.get("KISHT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
DEFAULT_PASSWORD = "Kisht-load-2026"
FINANCE = "bench.finance1"  # who imports statements and decides matches (user id 2)
TABLES = ("branches", "users", "borrowers", "loans", "instalments", "payments", "reversals", "approvals",
          "allocations", "disputes", "bank_statements", "statement_lines", "reconciliation_matches",
          "reconciliation_match_payments", "contacts", "promises", "loan_scores", "escalations",
          "dayend_positions", "cron_runs", "audit_log")


def say(message: str = "") -> None:
    print(message, flush=True)


class Extras:
    """What _data.py does not make: the inbox, disputes, statements, collections work. Triggers stay on."""

    MASK = 1125899906842623  # 2^50 - 1

    def __init__(self, conn, generator: Generator, log=say):
        self.conn, self.g, self.log = conn, generator, log
        self.n, self.d, self.seed = generator.n, generator.d, generator.seed
        self.timings: dict[str, float] = {}

    def u(self, key: str, salt: int) -> str:
        return self.g.u(key, 500 + salt)

    step = Generator.step  # timed statements, one commit, a line of log: as the portfolio's steps

    def sample(self, where: str, count: int, salt: int, alias: str = "l") -> str:
        """`count` loans meeting `where`, drawn by hash (the same for the same seed)."""
        return (f"SELECT {alias}.* FROM loans {alias} WHERE {where} "
                f"ORDER BY hashint8extended({alias}.id::int8, {self.seed * 1000 + 600 + salt}), {alias}.id LIMIT {count}")

    def run(self) -> dict[str, float]:
        self.backdated()
        self.disputes()
        self.statements()
        self.collections()
        return self.timings

    # ------------------------------------------------------------ backdated payments

    def backdated(self) -> None:
        """Payments with a value date 8-27 days back: PENDING (waiting), APPROVED (posted) or REJECTED."""
        d, u = self.d, self.u
        pending, approved, rejected = max(20, self.n // 1000), max(10, self.n // 2000), max(5, self.n // 4000)
        manager = self.g.manager_id("l.branch_id")
        status = (f"CASE WHEN rn <= {pending} THEN 'PENDING' WHEN rn <= {pending + approved} THEN 'APPROVED' "
                  f"ELSE 'REJECTED' END")
        self.step(
            "backdated payments and their approvals",
            f"""CREATE TEMP TABLE seed_backdated AS
                SELECT nextval(pg_get_serial_sequence('payments', 'id'))::int AS id, s.* FROM (
                    SELECT l.id AS loan_id, l.branch_id, l.borrower_id, l.collector_id, {manager} AS manager_id,
                           LEAST(l.emi_paise, l.outstanding_principal_paise + l.overdue_paise) AS amount,
                           DATE '{d}' - 8 - floor({u('l.id', 1)} * 20)::int AS value_date,
                           now() - interval '1 hour' - {u('l.id', 2)} * interval '6 days' AS created_at,
                           {status} AS status
                    FROM (SELECT l.*, row_number() OVER () AS rn FROM ({self.sample(
                        f"l.status = 'ACTIVE' AND l.collector_id IS NOT NULL AND l.disbursed_on < DATE '{d}' - 60 "
                        f"AND l.outstanding_principal_paise > l.emi_paise", pending + approved + rejected, 1)}) l) l
                ) s""",
            f"""INSERT INTO payments (id, reference, loan_id, branch_id, borrower_id, amount_paise, mode, utr,
                                      value_date, status, created_at, recorded_by_id)
                SELECT id, 'KP' || {reference_sql(f'((id::int8 * 25214903917) & {self.MASK})')}, loan_id, branch_id,
                       borrower_id, amount, 'UPI', '7' || lpad(id::text, 11, '0'), value_date,
                       CASE status WHEN 'PENDING' THEN 'PENDING_APPROVAL' WHEN 'APPROVED' THEN 'POSTED'
                                   ELSE 'REJECTED' END,
                       created_at, collector_id
                FROM seed_backdated ORDER BY id""",
            f"""INSERT INTO approvals (kind, payment_id, branch_id, status, maker_id, checker_id, decision_reason,
                                       created_at, decided_at)
                SELECT 'BACKDATED_PAYMENT', id, branch_id, status, collector_id,
                       CASE WHEN status <> 'PENDING' THEN manager_id END,
                       CASE status WHEN 'APPROVED' THEN 'collected in the field; receipt book checked'
                                   WHEN 'REJECTED' THEN 'no matching credit in the bank statement' END,
                       created_at, CASE WHEN status <> 'PENDING' THEN LEAST(now(), created_at + interval '2 hours') END
                FROM seed_backdated ORDER BY id""",
        )

    def approved_loans(self) -> list[int]:
        with self.conn.cursor() as cur:
            cur.execute("SELECT loan_id FROM seed_backdated WHERE status = 'APPROVED' ORDER BY loan_id")
            return [row[0] for row in cur.fetchall()]

    # ------------------------------------------------------------ disputes

    def disputes(self) -> None:
        u, count = self.u, max(20, self.n // 200)
        manager = self.g.manager_id("l.branch_id")
        status = (f"CASE WHEN {u('l.id', 11)} < 0.5 THEN 'OPEN' WHEN {u('l.id', 11)} < 0.75 THEN 'UNDER_REVIEW' "
                  f"WHEN {u('l.id', 11)} < 0.9 THEN 'RESOLVED_REJECTED' ELSE 'RESOLVED_UPHELD' END")
        self.step(
            "disputes (open, under review, resolved)",
            f"""CREATE TEMP TABLE seed_disputes AS
                SELECT row_number() OVER (ORDER BY l.id)::int8 AS k, l.id AS loan_id, l.branch_id,
                       l.collector_id AS raiser, {manager} AS reviewer, {status} AS status,
                       CASE WHEN {u('l.id', 12)} < 0.6 THEN (SELECT max(p.id) FROM payments p
                            WHERE p.loan_id = l.id AND p.status = 'POSTED') END AS payment_id,
                       now() - interval '4 days' - {u('l.id', 13)} * interval '40 days' AS created_at
                FROM ({self.sample("l.collector_id IS NOT NULL", count, 2)}) l""",
            f"""INSERT INTO disputes (reference, loan_id, payment_id, branch_id, category, description, status,
                                      raised_by_id, created_at, reviewer_id, review_started_at, resolved_by_id,
                                      resolved_at, resolution_note)
                SELECT 'KD' || {reference_sql(f'(((k + 7919) * 25214903917) & {self.MASK})')}, loan_id, payment_id,
                       branch_id,
                       CASE WHEN payment_id IS NOT NULL THEN
                                CASE WHEN k % 3 = 0 THEN 'WRONG_AMOUNT' ELSE 'PAYMENT_NOT_CREDITED' END
                            ELSE CASE WHEN k % 2 = 0 THEN 'CHARGES' ELSE 'OTHER' END END,
                       CASE WHEN payment_id IS NOT NULL THEN 'Borrower says the payment shows a different amount or date'
                            ELSE 'Borrower questions the charges on the last statement' END,
                       status, raiser, created_at,
                       CASE WHEN status <> 'OPEN' THEN reviewer END,
                       CASE WHEN status <> 'OPEN' THEN created_at + interval '1 day' END,
                       CASE WHEN status LIKE 'RESOLVED%' THEN reviewer END,
                       CASE WHEN status LIKE 'RESOLVED%' THEN created_at + interval '3 days' END,
                       CASE status WHEN 'RESOLVED_UPHELD' THEN 'Borrower is right; corrected with the bank'
                                   WHEN 'RESOLVED_REJECTED' THEN 'Statement and receipt agree with the ledger' END
                FROM seed_disputes ORDER BY created_at, k""",
        )

    # ------------------------------------------------------------ bank statements and reconciliation

    def statements(self) -> None:
        """Two banks, the last ten days (D-9..D): one statement per bank and day, credits for a fifth of the
        day's electronic payments (60 % confirmed, 15 % suggested, 10 % left unmatched, 5 % a mismatch),
        credits nobody booked, and debits (charges)."""
        d, u = self.d, self.u
        days, banks = 10, ("HDFC", "SBI")
        kind = (f"CASE WHEN {u('p.id', 21)} < 0.60 THEN 'CONFIRMED' WHEN {u('p.id', 21)} < 0.75 THEN 'SUGGESTED' "
                f"WHEN {u('p.id', 21)} < 0.85 THEN 'NONE' WHEN {u('p.id', 21)} < 0.90 THEN 'MISMATCH' "
                f"ELSE 'SKIP' END")
        bank_case = f"CASE WHEN p.id % 2 = 0 THEN '{banks[0]}' ELSE '{banks[1]}' END"
        narration = ("p.mode || '/' || p.utr || '/' || upper(left(b.name, 20)) || '/KISHT FINANCE COLLECTIONS'")
        self.step(
            "statement lines: credits for booked payments",
            f"""CREATE TEMP TABLE seed_lines AS
                SELECT {bank_case} AS bank, p.value_date AS day, p.id AS payment_id, p.mode, p.utr,
                       CASE WHEN k.kind = 'MISMATCH' THEN p.amount_paise + 10000 ELSE p.amount_paise END AS amount,
                       'CREDIT' AS direction, k.kind, {narration} AS narration, p.id::int8 AS sort_key
                FROM payments p JOIN borrowers b ON b.id = p.borrower_id
                CROSS JOIN LATERAL (SELECT {kind} AS kind) k
                WHERE p.value_date > DATE '{d}' - {days} AND p.value_date <= DATE '{d}'
                  AND p.mode IN ('UPI', 'NEFT', 'IMPS', 'RTGS') AND p.status = 'POSTED' AND p.reconciled_at IS NULL
                  AND {u('p.id', 20)} < 0.2 AND k.kind <> 'SKIP'
                  AND NOT EXISTS (SELECT 1 FROM reversals r WHERE r.payment_id = p.id)""",
            f"""INSERT INTO seed_lines
                SELECT CASE WHEN g % 2 = 0 THEN '{banks[0]}' ELSE '{banks[1]}' END,
                       DATE '{d}' - (g % {days})::int, NULL, 'UPI', '6' || lpad(g::text, 11, '0'),
                       (50000 + floor({u('g', 22)} * 2000000))::bigint, 'CREDIT', 'UNBOOKED',
                       'UPI/6' || lpad(g::text, 11, '0') || '/UNKNOWN REMITTER', 2000000000 + g
                FROM generate_series(1, (SELECT count(*) / 18 FROM seed_lines)) g""",
            f"""INSERT INTO seed_lines
                SELECT CASE WHEN g % 2 = 0 THEN '{banks[0]}' ELSE '{banks[1]}' END,
                       DATE '{d}' - (g % {days})::int, NULL, 'OTHER', NULL,
                       (1000 + floor({u('g', 23)} * 50000))::bigint, 'DEBIT', 'DEBIT',
                       'BANK CHARGES ' || g, 3000000000 + g
                FROM generate_series(1, (SELECT count(*) / 18 FROM seed_lines)) g""",
            "ANALYZE seed_lines",
        )
        finance = 2  # bench.finance1
        self.step(
            "bank statements and their lines",
            f"""CREATE TEMP TABLE seed_statements AS
                SELECT row_number() OVER (ORDER BY day, bank)::int8 AS k, bank, day, count(*) AS lines,
                       count(*) FILTER (WHERE direction = 'CREDIT') AS credits,
                       COALESCE(sum(amount) FILTER (WHERE direction = 'CREDIT'), 0) AS credit_total,
                       COALESCE(sum(amount) FILTER (WHERE direction = 'DEBIT'), 0) AS debit_total
                FROM seed_lines GROUP BY bank, day""",
            f"""INSERT INTO bank_statements (reference, bank, account_number, filename, file_format, sha256,
                                             size_bytes, period_from, period_to, line_count, credit_count,
                                             debit_count, credit_total_paise, debit_total_paise, skipped_duplicates,
                                             imported_by_id, created_at)
                SELECT 'BS' || {reference_sql(f'(((k + 104729) * 25214903917) & {self.MASK})')}, bank,
                       CASE bank WHEN 'HDFC' THEN '50200012345678' ELSE '30987654321' END,
                       lower(bank) || '-collections-' || to_char(day, 'YYYY-MM-DD') || '.csv', 'CSV',
                       encode(sha256(convert_to('seed {self.seed} statement ' || bank || day, 'UTF8')), 'hex'),
                       lines * 120, day, day, lines, credits, lines - credits, credit_total, debit_total, 0, {finance},
                       LEAST(now() - interval '1 hour', (day + 1 + time '09:15') AT TIME ZONE '{IST}')
                FROM seed_statements ORDER BY k""",
            f"""INSERT INTO statement_lines (statement_id, row_number, txn_date, value_date, narration, bank_reference,
                                             utr, utr_source, mode, direction, amount_paise, fingerprint, status,
                                             created_at)
                SELECT bs.id, 1 + row_number() OVER (PARTITION BY bs.id ORDER BY l.sort_key)::int, l.day, l.day,
                       l.narration, l.utr, l.utr, CASE WHEN l.utr IS NOT NULL THEN 'REFERENCE' END,
                       CASE WHEN l.mode IN ('NEFT', 'RTGS', 'IMPS', 'UPI') THEN l.mode ELSE 'OTHER' END,
                       l.direction, l.amount,
                       encode(sha256(convert_to('seed {self.seed} line ' || l.bank || l.day || l.sort_key, 'UTF8')), 'hex'),
                       CASE l.kind WHEN 'CONFIRMED' THEN 'MATCHED' WHEN 'MISMATCH' THEN 'MISMATCH'
                                   WHEN 'DEBIT' THEN 'DEBIT' ELSE 'UNMATCHED' END,
                       bs.created_at
                FROM seed_lines l JOIN seed_statements s ON s.bank = l.bank AND s.day = l.day
                JOIN bank_statements bs ON bs.bank = l.bank AND bs.period_from = l.day
                ORDER BY bs.id, l.sort_key""",
        )
        self.step(
            "matches: confirmed, suggested, mismatched",
            f"""CREATE TEMP TABLE seed_matches AS
                SELECT nextval(pg_get_serial_sequence('reconciliation_matches', 'id'))::int AS id, sl.id AS line_id,
                       l.payment_id, l.kind, p.amount_paise, sl.created_at
                FROM seed_lines l JOIN bank_statements bs ON bs.bank = l.bank AND bs.period_from = l.day
                JOIN statement_lines sl ON sl.statement_id = bs.id AND sl.utr = l.utr
                JOIN payments p ON p.id = l.payment_id
                WHERE l.kind IN ('CONFIRMED', 'SUGGESTED', 'MISMATCH')""",
            f"""INSERT INTO reconciliation_matches (id, line_id, kind, status, amount_paise, note, created_by_id, created_at)
                SELECT id, line_id, 'UTR', CASE WHEN kind = 'MISMATCH' THEN 'MISMATCH' ELSE 'SUGGESTED' END,
                       amount_paise, CASE WHEN kind = 'MISMATCH' THEN 'same UTR, the bank credited ₹100.00 more' END,
                       {finance}, created_at
                FROM seed_matches ORDER BY id""",
            """INSERT INTO reconciliation_match_payments (match_id, payment_id)
               SELECT id, payment_id FROM seed_matches ORDER BY id""",
            f"""UPDATE reconciliation_matches m SET status = 'CONFIRMED', decided_by_id = {finance + 1},
                       decided_at = LEAST(now(), s.created_at + interval '3 hours')
                FROM seed_matches s WHERE s.id = m.id AND s.kind = 'CONFIRMED'""",
            """UPDATE payments p SET reconciled_at = LEAST(now(), s.created_at + interval '3 hours')
               FROM seed_matches s WHERE s.payment_id = p.id AND s.kind = 'CONFIRMED'""",
        )

    # ------------------------------------------------------------ calls, visits, promises

    def collections(self) -> None:
        d, u = self.d, self.u
        count = max(40, self.n // 20)
        manager = self.g.manager_id("l.branch_id")
        # A quarter are recent promises (due after D), a quarter older ones the day-end of D-1 settles,
        # half other outcomes.
        kind = (f"CASE WHEN {u('l.id', 31)} < 0.25 THEN 'PROMISE' WHEN {u('l.id', 31)} < 0.5 THEN 'OLD_PROMISE' "
                f"ELSE 'OTHER' END")
        back = f"CASE WHEN k.kind = 'OLD_PROMISE' THEN 15 + floor({u('l.id', 32)} * 20)::int ELSE floor({u('l.id', 32)} * 6)::int END"
        self.step(
            "calls, visits and promises to pay",
            f"""CREATE TEMP TABLE seed_contacts AS
                SELECT nextval(pg_get_serial_sequence('contacts', 'id'))::int AS id, s.* FROM (
                    SELECT l.id AS loan_id, COALESCE(l.collector_id, {manager}) AS made_by, k.kind,
                           CASE WHEN {u('l.id', 33)} < 0.7 THEN 'CALL' ELSE 'VISIT' END AS channel,
                           CASE WHEN k.kind <> 'OTHER' THEN 'PROMISE_TO_PAY'
                                ELSE {self.g_pick(['NOT_REACHABLE', 'REFUSED', 'WRONG_NUMBER', 'OTHER', 'PAID'], u('l.id', 34))}
                           END AS outcome,
                           LEAST(now() - interval '5 minutes',
                                 (DATE '{d}' + 1 - {back} + time '10:00' + {u('l.id', 35)} * interval '8 hours')
                                 AT TIME ZONE '{IST}') AS contacted_at,
                           LEAST(l.overdue_paise, l.emi_paise) AS promise_amount,
                           {back} AS back, floor({u('l.id', 36)} * 10)::int AS ahead
                    FROM ({self.sample("l.status = 'ACTIVE' AND l.overdue_paise > 0", count, 3)}) l
                    CROSS JOIN LATERAL (SELECT {kind} AS kind) k
                    ORDER BY contacted_at
                ) s""",
            """INSERT INTO contacts (id, loan_id, made_by_id, channel, outcome, note, contacted_at, created_at)
               SELECT id, loan_id, made_by, channel, outcome,
                      CASE outcome WHEN 'PROMISE_TO_PAY' THEN 'Borrower agreed to pay the overdue amount'
                                   WHEN 'NOT_REACHABLE' THEN 'Phone switched off' WHEN 'REFUSED' THEN 'Asked to call later'
                                   ELSE '' END,
                      contacted_at, contacted_at
               FROM seed_contacts ORDER BY id""",
            f"""INSERT INTO promises (loan_id, branch_id, contact_id, amount_paise, made_on, promised_for, status)
                SELECT loan_id, (SELECT l.branch_id FROM loans l WHERE l.id = seed_contacts.loan_id), id,
                       promise_amount, (contacted_at AT TIME ZONE '{IST}')::date,
                       CASE WHEN kind = 'PROMISE' THEN DATE '{d}' + 1 + ahead
                            ELSE (contacted_at AT TIME ZONE '{IST}')::date + 3 + ahead END, 'OPEN'
                FROM seed_contacts WHERE kind <> 'OTHER' AND promise_amount > 0 ORDER BY id""",
        )

    def g_pick(self, values: list[str], uniform: str) -> str:
        from bench._data import pick

        return pick(values, uniform)


def replay_loans(app, loan_ids: list[int]) -> None:
    """The app's own ledger replay for loans whose money the extras changed (approved backdated payments)."""
    from sqlalchemy import select

    from webapp import db
    from webapp.models import Loan
    from webapp.services import replay

    with app.app_context():
        session = db.new_session()
        for loan_id in loan_ids:
            replay.replay(session, session.scalar(select(Loan).where(Loan.id == loan_id)))
        session.commit()
        session.close()


# Rows per group, as "label": (grouping expression, table, condition).
BREAKDOWNS = {
    "users by role": ("role", "users", "true"),
    "loans by class (active)": ("asset_class", "loans", "status = 'ACTIVE'"),
    "loans by bucket (active)": ("bucket", "loans", "status = 'ACTIVE'"),
    "loans by status": ("status", "loans", "true"),
    "payments by status": ("status", "payments", "true"),
    "approvals": ("kind || ' ' || status", "approvals", "true"),
    "disputes": ("status", "disputes", "true"),
    "statement lines": ("status", "statement_lines", "true"),
    "matches": ("status", "reconciliation_matches", "true"),
    "promises": ("status", "promises", "true"),
    "escalations": ("level || ' ' || status", "escalations", "true"),
}


def counts(url: str) -> dict:
    with psycopg_connect(url) as conn:
        out = {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES}
        for label, (group, table, condition) in BREAKDOWNS.items():
            out[label] = dict(conn.execute(
                f"SELECT {group}, count(*) FROM {table} WHERE {condition} GROUP BY 1 ORDER BY 1").fetchall())
        out["reconciled payments"] = conn.execute(
            "SELECT count(*) FROM payments WHERE reconciled_at IS NOT NULL").fetchone()[0]
        out["database size"] = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loans", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default=f"{DEFAULT_SERVER}/kisht_load")
    parser.add_argument("--branches", type=int, default=50)
    parser.add_argument("--collectors", type=int, default=1000, help="in all (a whole number per branch)")
    parser.add_argument("--password", default=DEFAULT_PASSWORD, help="every user's password")
    parser.add_argument("--no-month-history", action="store_true",
                        help="skip the approximate day-end rows of the earlier days of D-1's month")
    parser.add_argument("--json", metavar="FILE", help="write timings and counts as JSON")
    args = parser.parse_args(argv)
    if args.loans < 100:
        parser.error("--loans must be at least 100")
    if args.branches < 1 or args.collectors < args.branches or args.collectors % args.branches:
        parser.error("--collectors must be a whole multiple of --branches")

    from jobs.collections import run_after_dayend
    from jobs.dayend import run_dayend
    from webapp import clock, create_app, db
    from webapp.cli import alembic_config
    from webapp.services import dayend, org

    url = args.database_url
    # The production password cost, so that signing in costs what it costs in production.
    app = create_app({"APP_ENV": "test", "DATABASE_URL": url, "REDIS_URL": "", "LOG_LEVEL": "WARNING",
                      "ARGON2_TIME_COST": 3, "ARGON2_MEMORY_KIB": 65536})
    business_date = clock.last_business_date()
    previous = business_date - timedelta(days=1)
    timings: dict[str, float] = {}
    results: dict = {"loans": args.loans, "seed": args.seed, "business_date": str(business_date),
                     "database": make_url(url).render_as_string(hide_password=True), "machine": machine(),
                     "code": code_version(), "password": args.password, "timings": timings}
    say(f"seeding {results['database']}: {args.loans:,} loans, {args.branches} branches, {args.collectors:,} "
        f"collectors, seed {args.seed}, D = {business_date} (yesterday, IST)")

    def timed(name: str, started: float) -> None:
        timings[name] = round(time.perf_counter() - started, 1)
        say(f"{name}: {timings[name]} s")

    started = time.perf_counter()
    fresh_database(url, markers=("load", "bench"))
    with app.app_context():
        from alembic import command
        command.upgrade(alembic_config(), "head")
        with db.new_session() as session:
            dayend.ensure_partition(session, previous)
            session.commit()
        password_hash = org._hasher().hash(args.password)  # once; every user gets the same hash
    timed("create and migrate", started)

    say("portfolio (bench/_data.py, inside PostgreSQL):")
    started = time.perf_counter()
    with psycopg_connect(url) as conn:
        generator = Generator(conn, loans=args.loans, seed=args.seed, business_date=business_date,
                              buckets=app.config["BUCKETS"], password_hash=password_hash, log=say,
                              branches=args.branches, collectors_per_branch=args.collectors // args.branches,
                              month_history=not args.no_month_history)
        generator.run()
        results["generator_steps"] = {k: round(v, 1) for k, v in generator.timings.items()}
        timed("portfolio", started)
        started = time.perf_counter()
        problems = generator.verify()
        timed("integrity checks of the bulk load", started)
        if problems:
            say(f"PROBLEMS: {problems}")
            return 2
        with conn.cursor() as cur:  # the extras go through the triggers
            cur.execute("SET session_replication_role = origin")
            cur.execute("SET work_mem = '256MB'")
        conn.commit()
        say("inbox, disputes, statements, collections (triggers on):")
        started = time.perf_counter()
        extras = Extras(conn, generator)
        extras.run()
        results["extras_steps"] = {k: round(v, 1) for k, v in extras.timings.items()}
        approved = extras.approved_loans()
        timed("extras", started)

    started = time.perf_counter()
    settle(url, TABLES)  # statistics first: the replay below plans its statements like production
    timed("VACUUM ANALYZE + CHECKPOINT", started)
    started = time.perf_counter()
    replay_loans(app, approved)
    timed(f"ledger replay of the {len(approved)} loans with an approved backdated payment", started)
    started = time.perf_counter()
    sample = sample_check(app, business_date, args.seed, sample=200)
    results["ledger_sample"] = {k: v if k != "problems" else v[:10] for k, v in sample.items()}
    timed(f"ledger replay of {sample['loans']} sampled loans: "
          f"{'agrees' if not sample['problems'] else sample['problems'][:5]}", started)
    if sample["problems"]:
        return 2

    with app.app_context():
        started = time.perf_counter()
        run = run_dayend(previous)
        timed(f"day-end for D-1 = {previous}: {run.status}, {run.loans_processed:,} loans", started)
        results["dayend_previous"] = {"status": run.status, "loans": run.loans_processed, "error": run.error}
        if run.status != "SUCCEEDED":
            say(f"day-end failed: {run.error}")
            return 1
        for job in ("scoring", "escalation"):
            started = time.perf_counter()
            follow = run_after_dayend(job, previous)
            timed(f"{job} for D-1: {follow.status} {follow.summary or ''}", started)
            results[job] = {"status": follow.status, "summary": follow.summary}
    app.extensions["kisht.engine"].dispose()
    started = time.perf_counter()
    settle(url, ("loans", "instalments", "dayend_positions", "promises", "loan_scores", "escalations", "audit_log"))
    timed("VACUUM ANALYZE + CHECKPOINT after the jobs", started)

    results["counts"] = counts(url)
    say()
    say("=" * 78)
    for name, value in results["counts"].items():
        say(f"{name:<28} {value:,}" if isinstance(value, int) else f"{name:<28} {value}")
    say(f"total                        {sum(timings.values()):.0f} s")
    say(f"sign in as (password {args.password!r}): bench.admin, bench.finance1..{FINANCE_USERS}, bench.legal, "
        f"<branch>.manager, <branch>.collector1..{args.collectors // args.branches} "
        f"(branches: {', '.join(branch_codes(url)[:4])}, ...)")
    say("=" * 78)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
        say(f"written to {args.json}")
    return 0


def branch_codes(url: str) -> list[str]:
    with psycopg_connect(url) as conn:
        return [row[0].lower() for row in conn.execute("SELECT code FROM branches ORDER BY id").fetchall()]


if __name__ == "__main__":
    sys.exit(main())
