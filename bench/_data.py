"""Synthetic portfolio for the day-end benchmark, generated inside PostgreSQL (INSERT ... SELECT).

Nothing here goes through the ORM and no row passes through Python except the EMI schedules, which are
built by the application's own `build_schedule` for every (principal, rate) pair the generator can draw and
copied in (about 5,000 schedules). Everything else is set-based SQL over generate_series, so memory on the
Python side does not grow with the number of loans.

Randomness is a hash of (seed, key, salt) -- `hashint8extended` -- never random(): the same seed gives the
same rows whatever the plan, the order of evaluation or the number of loans already generated.

The shape of the data (see docs/performance.md for the figures):

* branches in 20 cities (one per 2,000 loans unless given), a manager and four collectors per branch (unless
  given), three finance users, legal, admin;
* one borrower per loan; loans of 24 monthly instalments, ₹25,000-₹5,00,000 at 10-36 %, disbursed over
  the last 760 days in disbursal order (loan ids follow disbursal dates, as they do in production); the
  first instalment is due a month after disbursal, on the same day of the month (clamped to the month's
  end), so every calendar day has about 1/30 of the instalments falling due and the figures do not depend
  on the day the benchmark runs (a lender with fixed cycle dates, say the 5th, has a heavier day-end
  on those dates: see docs/performance.md);
* payment behaviour per loan: on time (70 %), late by 5-45 days (10 %), partial payers (7 %), stopped
  paying (7 %), paying quarterly lumps (3 %), foreclosed (3 %). Payments are POSTED, inserted in
  creation order (as production writes them, so one loan's payments are scattered over the table), with
  modes CASH/UPI/NEFT/IMPS/CHEQUE/RTGS, unique UTRs and receipt numbers;
* 5 % of cheques bounce (reversal approved, payment REVERSED, a UPI replacement a few days later); a few
  other payments have a partial reversal approved, a reversal pending or a reversal rejected;
* derived columns (instalment paid amounts and statuses, the loan's live position) are what the ledger
  stores after the day-end of D-1 with every payment received so far: compute_position(as_of=D-1,
  receipts_until=D). The one simplification: the stored class ignores NPA stickiness from earlier dates
  (it is the class of the DPD). The day-end builds stickiness from its own history.

Bulk loading: triggers (the immutability guards, the schedule guard and the foreign-key checks) are
disabled for the loading session only (session_replication_role = replica, what pg_restore
--disable-triggers does), secondary indexes and unique constraints of the big tables are dropped and
rebuilt from their exact definitions afterwards. `verify()` then checks every foreign key and the
schedule guard set-based, and that the indexes are back exactly as migrated.
"""
from __future__ import annotations

import io
import time
from datetime import date, timedelta
from itertools import accumulate

from webapp.services.ledger import parse_buckets
from webapp.services.schedule import build_schedule

IST = "Asia/Kolkata"
TENURE = 24
PRINCIPAL_STEPS = 191  # ₹25,000 + ₹2,500·k, k = 0..190 → up to ₹5,00,000
RATE_STEPS = 27  # 10.00 % + 1 %·j, j = 0..26 → up to 36 %
DISBURSAL_SPREAD_DAYS = 760  # a little over 24 months: the oldest loans have every instalment due
COLLECTORS_PER_BRANCH = 4
FINANCE_USERS = 3
CHEQUE_LOAN_LIMIT = 1_249_950  # 30 banks × 6-digit cheque numbers: beyond this loan id, cheques become UPI
PROFILES = ("on time", "late", "partial", "stopped", "quarterly", "foreclosed")
CITIES = [  # (code prefix, name, language)
    ("PUNE", "Pune", "mr"), ("NSK", "Nashik", "mr"), ("MUM", "Mumbai", "mr"), ("NGP", "Nagpur", "mr"),
    ("AMD", "Ahmedabad", "gu"), ("SRT", "Surat", "gu"), ("BLR", "Bengaluru", "kn"), ("MYS", "Mysuru", "kn"),
    ("CHN", "Chennai", "ta"), ("CBE", "Coimbatore", "ta"), ("HYD", "Hyderabad", "te"), ("VJA", "Vijayawada", "te"),
    ("KOL", "Kolkata", "bn"), ("DGP", "Durgapur", "bn"), ("LKO", "Lucknow", "hi"), ("JPR", "Jaipur", "hi"),
    ("IND", "Indore", "hi"), ("PAT", "Patna", "hi"), ("BPL", "Bhopal", "hi"), ("KNP", "Kanpur", "hi"),
]
FIRST_NAMES = ["Aarav", "Aditi", "Amit", "Anita", "Anjali", "Arjun", "Deepak", "Divya", "Ganesh", "Geeta",
               "Harish", "Jyoti", "Kavita", "Kiran", "Lakshmi", "Mahesh", "Manoj", "Meena", "Mohan", "Neha",
               "Nitin", "Pooja", "Prakash", "Priya", "Rahul", "Rajesh", "Ramesh", "Ravi", "Rekha", "Sachin",
               "Sandeep", "Sanjay", "Santosh", "Sarita", "Sneha", "Sunil", "Sunita", "Suresh", "Swati", "Vijay"]
LAST_NAMES = ["Patil", "Deshmukh", "Jadhav", "Pawar", "Shinde", "Kulkarni", "Joshi", "Sharma", "Verma", "Gupta",
              "Singh", "Yadav", "Reddy", "Naidu", "Iyer", "Nair", "Menon", "Das", "Ghosh", "Banerjee",
              "Mukherjee", "Shah", "Patel", "Mehta", "Desai", "Kumar", "Rao", "Pillai", "Chauhan", "Thakur"]
BANKS = ["SBIN", "HDFC", "ICIC", "UTIB", "PUNB", "BARB", "CNRB", "UBIN", "BKID", "IOBA", "IDIB", "KKBK", "YESB",
         "INDB", "FDRL", "MAHB", "CBIN", "UCBA", "PSIB", "KARB", "SIBL", "CIUB", "DCBL", "RATN", "IDFB", "AUBL",
         "ESFB", "UJVN", "JAKA", "TMBL"]
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # payments.reference alphabet (webapp/services/payments.py)
BIG_TABLES = ("borrowers", "loans", "instalments", "payments")


def sql_array(values) -> str:
    """A text array literal, parenthesised so that it can be subscripted."""
    return "(ARRAY[" + ", ".join("'" + str(v).replace("'", "''") + "'" for v in values) + "])"


def pick(values, u: str) -> str:
    """One element of a literal array, chosen by a uniform [0, 1) expression."""
    return f"{sql_array(values)}[1 + floor(({u}) * {len(values)})::int]"


def reference_sql(x: str) -> str:
    """Ten Crockford characters from the low 50 bits of `x`; with x = (id * 25214903917) mod 2^50 (an odd
    multiplier, so a bijection) every payment id gets its own reference."""
    return " || ".join(f"substr('{CROCKFORD}', ((({x} >> {5 * j}) & 31) + 1)::int, 1)" for j in range(9, -1, -1))


def class_sql(dpd: str) -> str:
    return (f"CASE WHEN {dpd} > 90 THEN 'NPA' WHEN {dpd} > 60 THEN 'SMA-2' WHEN {dpd} > 30 THEN 'SMA-1' "
            f"WHEN {dpd} > 0 THEN 'SMA-0' ELSE 'STANDARD' END")


def bucket_sql(dpd: str, spec: str) -> str:
    arms = []
    for label, low, high in parse_buckets(spec):
        arms.append(f"WHEN {dpd} >= {low}" + (f" AND {dpd} <= {high}" if high is not None else "") + f" THEN '{label}'")
    return "CASE " + " ".join(arms) + " END"


class Generator:
    def __init__(self, conn, *, loans: int, seed: int, business_date: date, buckets: str, password_hash: str,
                 log=print, branches: int | None = None, collectors_per_branch: int = COLLECTORS_PER_BRANCH,
                 month_history: bool = True):
        """`branches` default: one per 2,000 loans (10 to 500); `month_history`: write the approximate
        day-end rows of the earlier days of D-1's month (see month_history())."""
        self.conn, self.n, self.seed, self.d = conn, loans, seed, business_date
        self.s = business_date - timedelta(days=1)  # the stored positions are as of the day-end of D-1
        self.buckets, self.password_hash, self.log = buckets, password_hash, log
        self.branches = branches or max(10, min(500, loans // 2000))
        self.collectors_per_branch = collectors_per_branch
        self.with_month_history = month_history
        self.timings: dict[str, float] = {}
        self.saved_indexes: dict[str, list[tuple[str, str, str]]] = {}

    # ------------------------------------------------------------ helpers

    def u(self, key: str, salt: int) -> str:
        """A uniform [0, 1) number from (seed, key, salt): the same for the same inputs, whatever the plan."""
        return (f"((hashint8extended(({key})::int8, {self.seed * 1000 + salt}::int8) & 2147483647)::float8 "
                f"/ 2147483648.0)")

    def step(self, name: str, *statements: str) -> None:
        started = time.perf_counter()
        with self.conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
        self.conn.commit()
        self.timings[name] = time.perf_counter() - started
        self.log(f"  {name:<44} {self.timings[name]:7.1f} s")

    def scalar(self, statement: str):
        with self.conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchone()[0]

    def manager_id(self, branch: str) -> str:
        return f"(10 + ({branch} - 1) * {self.collectors_per_branch + 1})"

    # ------------------------------------------------------------ the run

    def run(self) -> dict[str, float]:
        with self.conn.cursor() as cur:
            # This session only: no trigger (FK checks included) fires for its rows; verify() checks after.
            cur.execute("SET session_replication_role = replica")
            cur.execute("SET synchronous_commit = off")
            cur.execute("SET work_mem = '1GB'")
            cur.execute("SET maintenance_work_mem = '2GB'")
            cur.execute("SET temp_buffers = '3GB'")
            cur.execute("SET max_parallel_maintenance_workers = 2")
        self.conn.commit()
        self.drop_indexes()
        self.org()
        self.templates()
        self.plan()
        self.payments()
        self.reversals()
        self.instalments_and_loans()
        self.borrowers()
        self.sequences()
        self.rebuild_indexes()
        if self.with_month_history:
            self.month_history()
        return self.timings

    # ------------------------------------------------------------ indexes

    def drop_indexes(self) -> None:
        """Secondary indexes and unique constraints of the big tables go now and come back after the load.

        They come back from pg_get_indexdef, except partial indexes: PostgreSQL does not deparse their
        predicate back to the same text, so those are recreated from the models' DDL (which the migration
        test keeps equal to the migrations). indexes_as_migrated() checks the result either way.
        """
        from sqlalchemy.dialects import postgresql
        from sqlalchemy.schema import CreateIndex

        from webapp.db import Base

        model_ddl = {index.name: str(CreateIndex(index).compile(dialect=postgresql.dialect()))
                     for table in Base.metadata.tables.values() for index in table.indexes
                     if index.dialect_options["postgresql"].get("where") is not None}
        statements = []
        with self.conn.cursor() as cur:
            for table in BIG_TABLES:
                cur.execute("""
                    SELECT c.relname, pg_get_indexdef(i.indexrelid), con.contype, pg_get_constraintdef(con.oid)
                    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                    LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
                    WHERE i.indrelid = %s::regclass AND NOT i.indisprimary ORDER BY c.relname""", (table,))
                saved = []
                for name, indexdef, contype, condef in cur.fetchall():
                    if contype == "u":
                        saved.append((name, indexdef, f"ALTER TABLE {table} ADD CONSTRAINT {name} {condef}"))
                        statements.append(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
                    else:
                        assert contype is None, (table, name, contype)
                        saved.append((name, indexdef, model_ddl.get(name, indexdef)))
                        statements.append(f"DROP INDEX {name}")
                self.saved_indexes[table] = saved
        self.step("drop secondary indexes of the big tables", *statements)

    def rebuild_indexes(self) -> None:
        for table in BIG_TABLES:
            self.step(f"rebuild {len(self.saved_indexes[table])} indexes of {table}",
                      *[create for _, _, create in self.saved_indexes[table]])

    def indexes_as_migrated(self) -> list[str]:
        """Problems, if any: every dropped index is back with the same definition."""
        problems = []
        with self.conn.cursor() as cur:
            for table, saved in self.saved_indexes.items():
                cur.execute("""SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i
                               JOIN pg_class c ON c.oid = i.indexrelid
                               WHERE i.indrelid = %s::regclass AND NOT i.indisprimary AND i.indisvalid""", (table,))
                now = dict(cur.fetchall())
                for name, indexdef, _ in saved:
                    if now.get(name) != indexdef:
                        problems.append(f"{table}: index {name} is {now.get(name)!r}, expected {indexdef!r}")
        return problems

    # ------------------------------------------------------------ organisation

    def org(self) -> None:
        b, c, d = self.branches, self.collectors_per_branch, self.d
        city = "((b - 1) % 20 + 1)"
        codes, names = sql_array([x[0] for x in CITIES]), sql_array([x[1] for x in CITIES])
        created = f"(DATE '{d - timedelta(days=900)}' + time '10:00') AT TIME ZONE '{IST}'"
        hash_ = self.password_hash.replace("'", "''")
        users = [
            f"(1, 'bench.admin', 'Bench Admin', 'admin', NULL::int)",
            *[f"({1 + k}, 'bench.finance{k}', 'Finance {k}', 'finance', NULL)" for k in range(1, FINANCE_USERS + 1)],
            f"({FINANCE_USERS + 2}, 'bench.legal', 'Legal', 'legal', NULL)",
        ]
        self.step(
            "branches and users",
            f"""INSERT INTO branches (id, code, name, created_at)
                SELECT b, {codes}[{city}] || lpad(((b - 1) / 20 + 1)::text, 2, '0'),
                       {names}[{city}] || ' branch ' || ((b - 1) / 20 + 1), {created}
                FROM generate_series(1, {b}) b""",
            f"""INSERT INTO users (id, username, name, role, branch_id, password_hash, active, is_demo,
                                   failed_logins, created_at)
                SELECT id, username, name, role, branch_id, '{hash_}', true, false, 0, {created}
                FROM (VALUES {", ".join(users)}) v(id, username, name, role, branch_id)""",
            f"""INSERT INTO users (id, username, name, role, branch_id, password_hash, active, is_demo,
                                   failed_logins, created_at)
                SELECT {self.manager_id('b')} + k, lower(br.code) || CASE WHEN k = 0 THEN '.manager' ELSE '.collector' || k END,
                       br.name || CASE WHEN k = 0 THEN ' manager' ELSE ' collector ' || k END,
                       CASE WHEN k = 0 THEN 'manager' ELSE 'collector' END, b, '{hash_}', true, false, 0, {created}
                FROM generate_series(1, {b}) b JOIN branches br ON br.id = b CROSS JOIN generate_series(0, {c}) k""",
        )

    # ------------------------------------------------------------ schedules

    def templates(self) -> None:
        """Every schedule the generator can draw, built by the application's own build_schedule."""
        started = time.perf_counter()
        buffer = io.StringIO()
        first_due = date(2025, 1, 5)  # amounts do not depend on dates
        for k in range(PRINCIPAL_STEPS):
            principal = (25_000 + 2_500 * k) * 100
            for j in range(RATE_STEPS):
                rate = 1000 + 100 * j
                rows = build_schedule(principal, rate, TENURE, first_due)
                totals = [r.total_paise for r in rows]
                cumulative = list(accumulate(totals))
                principal_paid_before = list(accumulate([0] + [r.principal_paise for r in rows]))
                for index, row in enumerate(rows):
                    sum3 = cumulative[index] - (cumulative[index - 3] if index >= 3 else 0)
                    buffer.write(f"{principal}\t{rate}\t{row.seq}\t{row.principal_paise}\t{row.interest_paise}\t"
                                 f"{totals[index]}\t{cumulative[index]}\t{cumulative[-1]}\t{sum3}\t"
                                 f"{principal_paid_before[index]}\t{rows[0].total_paise}\n")
        with self.conn.cursor() as cur:
            cur.execute("""CREATE TEMP TABLE bench_tmpl (principal_paise bigint, rate_bps int, seq int,
                               principal_due bigint, interest_due bigint, total bigint, cum bigint, cum_last bigint,
                               sum3 bigint, principal_before bigint, emi bigint)""")
            with cur.copy("COPY bench_tmpl FROM STDIN") as copy:
                copy.write(buffer.getvalue())
            cur.execute("CREATE INDEX ON bench_tmpl (principal_paise, rate_bps, seq)")
            cur.execute("ANALYZE bench_tmpl")
        self.conn.commit()
        self.timings["EMI schedules (build_schedule, COPY)"] = time.perf_counter() - started
        self.log(f"  {'EMI schedules (build_schedule, COPY)':<44} {self.timings['EMI schedules (build_schedule, COPY)']:7.1f} s")

    # ------------------------------------------------------------ loans' terms and behaviour

    def plan(self) -> None:
        u, d = self.u, self.d
        profile = (f"CASE WHEN {u('g', 9)} < 0.70 THEN 0 WHEN {u('g', 9)} < 0.80 THEN 1 WHEN {u('g', 9)} < 0.87 THEN 2 "
                   f"WHEN {u('g', 9)} < 0.94 THEN 3 WHEN {u('g', 9)} < 0.97 THEN 4 ELSE 5 END")
        self.step(
            "plan: terms and behaviour of every loan",
            f"""CREATE TEMP TABLE bench_plan AS
            WITH base AS (
                SELECT g AS k,
                       (DATE '{d}' - floor({u('g', 6)} * {DISBURSAL_SPREAD_DAYS})::int) AS disbursed_on,
                       1 + floor({u('g', 1)} * {self.branches})::int AS branch_id,
                       {u('g', 2)} AS u_collector, {u('g', 3)} AS u_collector_pick,
                       (25000 + 2500 * floor(power({u('g', 4)}, 2) * {PRINCIPAL_STEPS})::int)::bigint * 100 AS principal_paise,
                       1000 + 100 * floor({u('g', 5)} * {RATE_STEPS})::int AS rate_bps,
                       {profile} AS profile,
                       5 + floor({u('g', 10)} * 41)::int AS lag,
                       0.5 + 0.45 * {u('g', 11)} AS frac,
                       {u('g', 12)} AS u_stop
                FROM generate_series(1, {self.n}) g
            ), dated AS (
                SELECT base.*, (disbursed_on + interval '1 month')::date AS first_due_on FROM base
            ), counted AS (
                SELECT dated.*, LEAST({TENURE}, GREATEST(0,
                           (extract(year FROM DATE '{d}') * 12 + extract(month FROM DATE '{d}')
                            - extract(year FROM first_due_on) * 12 - extract(month FROM first_due_on))::int
                           + CASE WHEN extract(day FROM DATE '{d}') >= LEAST(extract(day FROM first_due_on),
                                      extract(day FROM (date_trunc('month', DATE '{d}') + interval '1 month - 1 day')))
                                  THEN 1 ELSE 0 END)) AS n_due
                FROM dated
            )
            SELECT row_number() OVER (ORDER BY disbursed_on, k)::int AS loan_id, k, branch_id,
                   CASE WHEN u_collector < 0.03 THEN NULL
                        ELSE {self.manager_id('branch_id')} + 1 + floor(u_collector_pick * {self.collectors_per_branch})::int
                   END AS collector_id,
                   principal_paise, rate_bps, disbursed_on, first_due_on, n_due, profile, lag, frac,
                   CASE WHEN profile = 5 THEN 1 + floor(u_stop * GREATEST(n_due, 1))::int
                        ELSE floor(u_stop * n_due)::int END AS stop_at
            FROM counted""",
            "ALTER TABLE bench_plan ADD PRIMARY KEY (loan_id)",
            "ANALYZE bench_plan",
        )

    # ------------------------------------------------------------ payments

    def payments(self) -> None:
        u, d = self.u, self.d
        kk = "(p.k::int8 * 64 + t.seq)"
        due = "(p.first_due_on + make_interval(months => t.seq - 1))::date"
        value_date = f"""CASE p.profile
                WHEN 0 THEN y.due + floor({u(kk, 20)} * 9)::int - 5
                WHEN 1 THEN y.due + p.lag + floor({u(kk, 20)} * 6)::int
                WHEN 2 THEN y.due + floor({u(kk, 20)} * 5)::int - 2
                WHEN 3 THEN y.due + floor({u(kk, 20)} * 5)::int - 3
                WHEN 4 THEN y.due + floor({u(kk, 20)} * 8)::int
                ELSE y.due + floor({u(kk, 20)} * 9)::int - 5 END"""
        amount = "CASE p.profile WHEN 2 THEN GREATEST(10000, round(t.total * p.frac / 10000) * 10000)::bigint " \
                 "WHEN 4 THEN t.sum3 ELSE t.total END"
        paid = "CASE p.profile WHEN 3 THEN t.seq <= p.stop_at WHEN 5 THEN t.seq <= p.stop_at " \
               "WHEN 4 THEN t.seq % 3 = 0 ELSE true END"
        mode = (f"CASE WHEN {u(kk, 30)} < 0.18 THEN 'CASH' WHEN {u(kk, 30)} < 0.58 THEN 'UPI' "
                f"WHEN {u(kk, 30)} < 0.70 THEN 'NEFT' WHEN {u(kk, 30)} < 0.82 THEN 'IMPS' "
                f"WHEN p.loan_id < {CHEQUE_LOAN_LIMIT} THEN 'CHEQUE' ELSE 'UPI' END")
        at = lambda day, salt: (f"(({day}) + time '09:30' + {u(kk, salt)} * interval '9 hours') "  # noqa: E731
                                f"AT TIME ZONE '{IST}'")
        regular = f"""
            SELECT p.loan_id, p.branch_id, p.collector_id, t.seq, t.seq AS slot, x.value_date, {amount} AS amount,
                   {mode} AS mode, {u(kk, 31)} AS u_bounce, {u(kk, 32)} AS u_reversal, {u(kk, 33)} AS u_part,
                   {at('x.value_date', 34)} AS created_at,
                   x.value_date + 3 + floor({u(kk, 35)} * 10)::int AS replaced_on, {at('x.value_date + 3', 36)} AS replaced_at
            FROM bench_plan p JOIN bench_tmpl t USING (principal_paise, rate_bps)
            CROSS JOIN LATERAL (SELECT {due} AS due) y
            CROSS JOIN LATERAL (SELECT {value_date} AS value_date) x
            WHERE {paid} AND x.value_date <= DATE '{d}'"""
        foreclosure = f"""
            SELECT p.loan_id, p.branch_id, p.collector_id, t.seq, 25, x.value_date, t.cum_last - t.cum,
                   CASE WHEN t.cum_last - t.cum >= 20000000 THEN 'RTGS' ELSE 'NEFT' END, 1.0, 1.0, 0.0,
                   {at('x.value_date', 37)}, NULL::date, NULL::timestamptz
            FROM bench_plan p JOIN bench_tmpl t USING (principal_paise, rate_bps)
            CROSS JOIN LATERAL (SELECT ({due} + 10 + floor({u(kk, 38)} * 20)::int) AS value_date) x
            WHERE p.profile = 5 AND t.seq = p.stop_at AND t.cum_last > t.cum AND x.value_date <= DATE '{d}'"""
        self.step(
            "payments: plan (sorted by creation time)",
            f"""CREATE TEMP TABLE bench_pay AS
            WITH regular AS ({regular}),
            flagged AS (
                SELECT r.*, (mode = 'CHEQUE' AND u_bounce < 0.05) AS bounced,
                       CASE WHEN mode = 'CHEQUE' AND u_bounce < 0.05 THEN 'BOUNCE'
                            WHEN u_reversal < 0.002 THEN 'PARTIAL' WHEN u_reversal < 0.0025 THEN 'PENDING'
                            WHEN u_reversal < 0.003 THEN 'REJECTED' END AS reversal
                FROM regular r
            ), everything AS (
                SELECT loan_id, branch_id, collector_id, seq, slot, value_date, amount, mode, bounced, reversal,
                       u_part, created_at FROM flagged
                UNION ALL  -- a bounced cheque is paid again by UPI a few days later
                SELECT loan_id, branch_id, collector_id, seq, 32 + seq, replaced_on, amount, 'UPI', false, NULL,
                       0.0, replaced_at + (replaced_on - value_date - 3) * interval '1 day'
                FROM flagged WHERE bounced AND replaced_on <= DATE '{d}'
                UNION ALL
                SELECT loan_id, branch_id, collector_id, seq, slot, value_date, amount, mode, false, NULL, 0.0,
                       created_at
                FROM ({foreclosure}) f(loan_id, branch_id, collector_id, seq, slot, value_date, amount, mode,
                                       u_bounce, u_reversal, u_part, created_at, replaced_on, replaced_at)
            )
            SELECT row_number() OVER (ORDER BY created_at, loan_id, slot)::int AS id, everything.*
            FROM everything""",
            "ANALYZE bench_pay",
        )
        reference = reference_sql("x")
        digits11 = "lpad(((id::int8 * 7919 + 104729) % 100000000000)::text, 11, '0')"
        bank_of_id = f"{sql_array(BANKS)}[1 + id % {len(BANKS)}]"
        loan_bank = f"{sql_array(BANKS)}[1 + loan_id % {len(BANKS)}]"
        self.step(
            "payments: insert",
            f"""INSERT INTO payments (id, reference, loan_id, branch_id, borrower_id, amount_paise, mode, utr,
                                      cheque_bank, receipt_number, value_date, status, created_at, recorded_by_id)
            SELECT id, 'KP' || {reference}, loan_id, branch_id, loan_id, amount, mode,
                   CASE mode WHEN 'CASH' THEN NULL
                             WHEN 'UPI' THEN '5' || {digits11}
                             WHEN 'IMPS' THEN '4' || {digits11}
                             WHEN 'NEFT' THEN {bank_of_id} || 'N' || {digits11}
                             WHEN 'RTGS' THEN {bank_of_id} || 'RC' || to_char(value_date, 'YYYYMMDD')
                                              || lpad((id % 100000000)::text, 8, '0')
                             ELSE {loan_bank} || '-' || lpad(((loan_id / {len(BANKS)}) * {TENURE} + seq - 1)::text, 6, '0')
                   END,
                   CASE WHEN mode = 'CHEQUE' THEN {loan_bank} END,
                   CASE WHEN mode = 'CASH' THEN 'R' || to_char(value_date, 'YYMM') || '-' || id END,
                   value_date, CASE WHEN bounced THEN 'REVERSED' ELSE 'POSTED' END, created_at,
                   CASE WHEN mode = 'CASH' AND collector_id IS NOT NULL THEN collector_id
                        WHEN mode = 'CASH' OR mode = 'CHEQUE' THEN {self.manager_id('branch_id')}
                        ELSE 2 + id % {FINANCE_USERS} END
            FROM bench_pay CROSS JOIN LATERAL (SELECT (id::int8 * 25214903917) & 1125899906842623 AS x) s""",
        )

    def reversals(self) -> None:
        notes = {"BOUNCE": ("CHEQUE_BOUNCE", "cheque returned unpaid: funds insufficient", "APPROVED"),
                 "PARTIAL": ("OTHER", "amount keyed in excess of the bank credit", "APPROVED"),
                 "PENDING": ("WRONG_LOAN", "borrower paid against a relative's loan", "PENDING"),
                 "REJECTED": ("DUPLICATE", "looked like a duplicate of the previous credit", "REJECTED")}
        case = lambda i: "CASE reversal " + " ".join(  # noqa: E731
            f"WHEN '{k}' THEN '{v[i].replace(chr(39), chr(39) * 2)}'" for k, v in notes.items()) + " END"
        self.step(
            "reversals and their approvals",
            f"""CREATE TEMP TABLE bench_rev AS
                SELECT row_number() OVER (ORDER BY opened_at, id)::int AS rid, s.* FROM (
                    SELECT id AS payment_id, loan_id, branch_id, reversal, {case(0)} AS reason, {case(1)} AS note,
                           {case(2)} AS status,
                           CASE WHEN reversal = 'PARTIAL'
                                THEN GREATEST(100, round(amount * (0.1 + 0.4 * u_part) / 100) * 100)::bigint
                                ELSE amount END AS amount,
                           LEAST(created_at + interval '2 days', now() - interval '2 hours') AS opened_at, id
                    FROM bench_pay WHERE reversal IS NOT NULL) s""",
            f"""INSERT INTO reversals (id, payment_id, amount_paise, reason, note, requested_by_id, created_at)
                SELECT rid, payment_id, amount, reason, note, {self.manager_id('branch_id')}, opened_at FROM bench_rev""",
            f"""INSERT INTO approvals (id, kind, payment_id, reversal_id, branch_id, status, maker_id, checker_id,
                                       decision_reason, created_at, decided_at)
                SELECT rid, 'REVERSAL', payment_id, rid, branch_id, status, {self.manager_id('branch_id')},
                       CASE WHEN status <> 'PENDING' THEN 2 + rid % {FINANCE_USERS} END,
                       CASE status WHEN 'APPROVED' THEN 'confirmed with the bank statement'
                                   WHEN 'REJECTED' THEN 'not a duplicate: two instalments were paid' END,
                       opened_at, CASE WHEN status <> 'PENDING' THEN opened_at + interval '1 hour' END
                FROM bench_rev""",
        )

    # ------------------------------------------------------------ schedules and positions

    def instalments_and_loans(self) -> None:
        s, d = self.s, self.d
        due = "(p.first_due_on + make_interval(months => t.seq - 1))::date"
        self.step(
            "money received per loan (net of approved reversals)",
            f"""CREATE TEMP TABLE bench_recv AS
                SELECT p.loan_id, SUM(p.amount - COALESCE(r.amount, 0))::bigint AS received
                FROM bench_pay p LEFT JOIN bench_rev r ON r.payment_id = p.id AND r.status = 'APPROVED'
                WHERE NOT p.bounced GROUP BY p.loan_id""",
            "ALTER TABLE bench_recv ADD PRIMARY KEY (loan_id)",
            "ANALYZE bench_recv",
        )
        applied = (f"CASE WHEN r.received >= t.cum_last OR y.due <= DATE '{s}' "
                   f"THEN GREATEST(0, LEAST(t.total, r.received - (t.cum - t.total))) ELSE 0 END")
        self.step(
            "instalments (24 per loan, paid as of D-1)",
            f"""INSERT INTO instalments (id, loan_id, seq, due_date, principal_due_paise, interest_due_paise,
                                         cumulative_due_paise, principal_paid_paise, interest_paid_paise, status)
                SELECT (p.loan_id - 1)::int8 * {TENURE} + t.seq, p.loan_id, t.seq, y.due, t.principal_due, t.interest_due,
                       t.cum, a.applied - LEAST(a.applied, t.interest_due), LEAST(a.applied, t.interest_due),
                       CASE WHEN a.applied = t.total THEN 'PAID' WHEN y.due > DATE '{s}' THEN 'DUE'
                            WHEN a.applied > 0 THEN 'PARTIALLY_PAID' ELSE 'OVERDUE' END
                FROM bench_plan p
                CROSS JOIN LATERAL (SELECT * FROM bench_tmpl t WHERE t.principal_paise = p.principal_paise
                                    AND t.rate_bps = p.rate_bps ORDER BY t.seq) t
                LEFT JOIN bench_recv r0 ON r0.loan_id = p.loan_id
                CROSS JOIN LATERAL (SELECT COALESCE(r0.received, 0) AS received) r
                CROSS JOIN LATERAL (SELECT {due} AS due) y
                CROSS JOIN LATERAL (SELECT {applied} AS applied) a""",
        )
        self.step(
            "positions per loan (from the instalments)",
            f"""CREATE TEMP TABLE bench_pos AS
                SELECT loan_id,
                       MIN(due_date) FILTER (WHERE due_date <= DATE '{s}' AND status <> 'PAID') AS oldest,
                       COALESCE(SUM(principal_due_paise + interest_due_paise - principal_paid_paise - interest_paid_paise)
                                FILTER (WHERE due_date <= DATE '{s}'), 0) AS overdue,
                       SUM(principal_due_paise - principal_paid_paise) AS outstanding,
                       bool_and(status = 'PAID') AS closed
                FROM instalments GROUP BY loan_id""",
            "ALTER TABLE bench_pos ADD PRIMARY KEY (loan_id)",
        )
        dpd = f"(CASE WHEN q.oldest IS NULL THEN 0 ELSE DATE '{s}' - q.oldest + 1 END)"
        self.step(
            "loans (with the stored live position)",
            f"""INSERT INTO loans (id, loan_number, borrower_id, branch_id, collector_id, principal_paise,
                                   annual_rate_bps, tenure_months, emi_paise, disbursed_on, first_due_on, created_at,
                                   created_by_id, status, outstanding_principal_paise, overdue_paise, overdue_since,
                                   asset_class, bucket, position_date)
                SELECT p.loan_id, 'KL' || lpad(p.loan_id::text, 8, '0'), p.loan_id, p.branch_id, p.collector_id,
                       p.principal_paise, p.rate_bps, {TENURE}, t.emi, p.disbursed_on, p.first_due_on,
                       (p.disbursed_on + time '11:00') AT TIME ZONE '{IST}', {self.manager_id('p.branch_id')},
                       CASE WHEN q.closed THEN 'CLOSED' ELSE 'ACTIVE' END, q.outstanding, q.overdue, q.oldest,
                       {class_sql(dpd)}, {bucket_sql(dpd, self.buckets)}, DATE '{s}'
                FROM bench_plan p JOIN bench_tmpl t ON t.principal_paise = p.principal_paise
                     AND t.rate_bps = p.rate_bps AND t.seq = 1
                JOIN bench_pos q ON q.loan_id = p.loan_id
                ORDER BY p.loan_id""",
        )

    def borrowers(self) -> None:
        u = self.u
        city_language = f"{sql_array([x[2] for x in CITIES])}[(p.branch_id - 1) % 20 + 1]"
        first, last = pick(FIRST_NAMES, u("p.k", 40)), pick(LAST_NAMES, u("p.k", 41))
        self.step(
            "borrowers",
            f"""INSERT INTO borrowers (id, name, phone, preferred_language, email, created_at)
                SELECT p.loan_id, {first} || ' ' || {last},
                       (6 + floor({u('p.k', 42)} * 4)::int)::text
                           || lpad(((p.k::int8 * 104729 + 7) % 1000000000)::text, 9, '0'),
                       CASE WHEN {u('p.k', 43)} < 0.60 THEN {city_language} WHEN {u('p.k', 43)} < 0.85 THEN 'hi' ELSE 'en' END,
                       CASE WHEN {u('p.k', 44)} < 0.4
                            THEN lower({first}) || '.' || lower({last}) || p.loan_id || '@example.in' END,
                       (p.disbursed_on + time '10:30') AT TIME ZONE '{IST}'
                FROM bench_plan p ORDER BY p.loan_id""",
        )

    def sequences(self) -> None:
        tables = ("branches", "users", "borrowers", "loans", "instalments", "payments", "reversals", "approvals")
        self.step("sequences past the generated ids", *[
            f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), GREATEST(1, (SELECT COALESCE(MAX(id), 0) FROM {t})))"
            for t in tables])

    # ------------------------------------------------------------ day-end history of the month so far

    def month_history(self) -> None:
        """dayend_positions rows for the earlier days of D-1's month (the partition must exist already).

        On the day the benchmark runs, production would hold one row per active loan for every earlier
        business date of the month in the same partition; what matters to the measured run is that
        volume (plans, index depth, the scans it causes). The content is an approximation derived from
        the stored position (DPD counted back from the oldest unpaid due date, class and bucket of that
        DPD); the run for D-1 reads the row of D-2 as its previous day, which is consistent with the
        stored classes. The real day-end writes the rows of D-1 and D.
        """
        first = self.s.replace(day=1)
        if first >= self.s:
            self.timings["day-end history of the month so far (none: D-1 is the 1st)"] = 0.0
            return
        oldest = "l.overdue_since"
        statements, day = [], first
        while day < self.s:
            dpd = f"(CASE WHEN DATE '{day}' >= {oldest} THEN DATE '{day}' - {oldest} + 1 ELSE 0 END)"
            statements.append(f"""
                INSERT INTO dayend_positions (business_date, loan_id, dpd, asset_class, bucket, overdue_paise,
                                              overdue_since, class_since)
                SELECT DATE '{day}', l.id, {dpd}, {class_sql(dpd)}, {bucket_sql(dpd, self.buckets)},
                       CASE WHEN {dpd} > 0 THEN l.overdue_paise ELSE 0 END, CASE WHEN {dpd} > 0 THEN {oldest} END, NULL
                FROM loans l WHERE l.status = 'ACTIVE' AND l.disbursed_on <= DATE '{day}' ORDER BY l.id""")
            day += timedelta(days=1)
        self.step(f"day-end history {first}..{self.s - timedelta(days=1)} (approximate)", *statements)

    # ------------------------------------------------------------ checks

    def verify(self) -> list[str]:
        """What the disabled triggers would have refused, checked set-based; plus the indexes. [] = all good."""
        checks = {
            "instalments without their loan":
                "SELECT count(*) FROM instalments i WHERE NOT EXISTS (SELECT 1 FROM loans l WHERE l.id = i.loan_id)",
            "instalments beyond the tenure (schedule guard)":
                "SELECT count(*) FROM instalments i JOIN loans l ON l.id = i.loan_id WHERE i.seq > l.tenure_months",
            "loans without their borrower, branch, collector or maker": """
                SELECT count(*) FROM loans l WHERE NOT EXISTS (SELECT 1 FROM borrowers b WHERE b.id = l.borrower_id)
                    OR NOT EXISTS (SELECT 1 FROM branches b WHERE b.id = l.branch_id)
                    OR (l.collector_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = l.collector_id))
                    OR (l.created_by_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = l.created_by_id))""",
            "collectors assigned outside their branch": """
                SELECT count(*) FROM loans l JOIN users u ON u.id = l.collector_id
                WHERE u.role <> 'collector' OR u.branch_id <> l.branch_id""",
            "payments without their loan, borrower, branch or recorder": """
                SELECT count(*) FROM payments p LEFT JOIN loans l ON l.id = p.loan_id
                WHERE l.id IS NULL OR l.borrower_id <> p.borrower_id OR l.branch_id <> p.branch_id
                   OR (p.recorded_by_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = p.recorded_by_id))""",
            "reversals or approvals with a dangling reference": """
                SELECT (SELECT count(*) FROM reversals r WHERE NOT EXISTS (SELECT 1 FROM payments p WHERE p.id = r.payment_id)
                           OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = r.requested_by_id))
                     + (SELECT count(*) FROM approvals a WHERE NOT EXISTS (SELECT 1 FROM payments p WHERE p.id = a.payment_id)
                           OR NOT EXISTS (SELECT 1 FROM reversals r WHERE r.id = a.reversal_id AND r.payment_id = a.payment_id)
                           OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = a.maker_id))""",
            "reversals exceeding their payment": """
                SELECT count(*) FROM (SELECT r.payment_id, SUM(r.amount_paise) AS amount FROM reversals r
                                      GROUP BY r.payment_id) r JOIN payments p ON p.id = r.payment_id
                WHERE r.amount > p.amount_paise""",
            "payments with a value date after D or before disbursal": f"""
                SELECT count(*) FROM payments p JOIN loans l ON l.id = p.loan_id
                WHERE p.value_date > DATE '{self.d}' OR p.value_date < l.disbursed_on""",
            "cash from one borrower on one day reaching ₹2,00,000": """
                SELECT count(*) FROM (SELECT borrower_id, value_date FROM payments
                                      WHERE mode = 'CASH' AND status NOT IN ('REJECTED', 'REVERSED')
                                      GROUP BY 1, 2 HAVING SUM(amount_paise) >= 20000000) x""",
            "schedules whose principal does not sum to the loan or whose cumulative due is not the running sum": """
                SELECT count(*) FROM (
                    SELECT i.loan_id FROM instalments i JOIN loans l ON l.id = i.loan_id
                    GROUP BY i.loan_id, l.principal_paise
                    HAVING SUM(i.principal_due_paise) <> l.principal_paise
                        OR MAX(i.cumulative_due_paise) <> SUM(i.principal_due_paise + i.interest_due_paise)) x""",
        }
        problems = []
        with self.conn.cursor() as cur:
            for name, statement in checks.items():
                cur.execute(statement)
                count = cur.fetchone()[0]
                if count:
                    problems.append(f"{name}: {count}")
        self.conn.commit()
        return problems + self.indexes_as_migrated()
