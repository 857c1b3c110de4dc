#!/usr/bin/env python
"""The plans of the hot queries, as the app sends them, on a seeded PostgreSQL database.

    .venv/bin/python bench/explain.py [--database-url URL] [--large ROWS] [--timeout SECONDS]
                                      [--only LABEL] [--quiet] [--markdown FILE]

1. Opens one connection and one transaction on the database (default kisht_bench, made by bench/seed.py).
2. Serves the hot requests through the app's test client inside that transaction, with a listener that
   records every statement the app sends and its parameters: the collector's worklist, the loan page,
   the manager's home and approvals inbox, finance's home and the reconciliation dashboard, legal's NPA
   queue, the API loan list with each of its filters, a loan's API detail, and a payment posted through
   the API (its lookups: the loan by number under lock, the duplicate UTR, the Idempotency-Key).
   Users are taken from the data: the collector of the newest loan, its branch's manager, a finance user.
3. Runs EXPLAIN (ANALYZE, BUFFERS) of every SELECT recorded, with its parameters, prints each plan and
   flags every Seq Scan on a table of more than --large rows (pg_class.reltuples: the estimate of the
   last ANALYZE; a table never analysed counts as empty).
4. Rolls the transaction back: the payment, its audit entry, the sign-ins and API token leave nothing
   behind. ANALYZE runs each SELECT a second time, so the figures are those of a warm cache.

Ends with a table (request, statement, indexes, rows, time) to paste into docs/query-plans.md.
"""
from __future__ import annotations

import argparse
import re
import secrets
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/kisht_load"
SELECTS = re.compile(r"^\s*(SELECT|WITH)\b", re.IGNORECASE)
SEQ_SCAN = re.compile(r"Seq Scan on (\w+)")
INDEX = re.compile(r"(?:Index (?:Only )?Scan(?: Backward)? using (\w+)|Bitmap Index Scan on (\w+))")
TOP_ROWS = re.compile(r"actual time=[\d.]+\.\.[\d.]+ rows=(\d+)")
EXECUTION = re.compile(r"Execution Time: ([\d.]+) ms")


@dataclass
class Captured:
    label: str
    statement: str
    parameters: object


@dataclass
class Plan:
    captured: Captured
    lines: list[str]
    seq_scans: list[str] = field(default_factory=list)
    large_seq_scans: list[str] = field(default_factory=list)

    @property
    def indexes(self) -> list[str]:
        found = []
        for line in self.lines:
            for match in INDEX.finditer(line):
                name = match.group(1) or match.group(2)
                if name not in found:
                    found.append(name)
        return found

    @property
    def rows(self) -> str:
        match = TOP_ROWS.search(self.lines[0]) if self.lines else None
        return match.group(1) if match else "?"

    @property
    def milliseconds(self) -> str:
        for line in self.lines:
            match = EXECUTION.search(line)
            if match:
                return match.group(1)
        return "?"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--large", type=int, default=10_000,
                        help="flag a Seq Scan on a table holding more rows than this (default 10,000)")
    parser.add_argument("--timeout", type=int, default=60, help="statement timeout in seconds (default 60)")
    parser.add_argument("--only", default="", help="explain only the requests whose label contains this")
    parser.add_argument("--quiet", action="store_true", help="print the summary only, not every plan")
    parser.add_argument("--markdown", default="", help="also write the summary table to this file")
    return parser.parse_args(argv)


def short(statement: str, width: int = 110) -> str:
    text = " ".join(statement.split())
    text = re.sub(r"^SELECT .*? FROM ", "SELECT … FROM ", text)
    return text if len(text) <= width else text[:width - 1] + "…"


def main(argv=None) -> int:
    args = parse_args(argv)
    from sqlalchemy import event, select
    from sqlalchemy.orm import sessionmaker

    from webapp import clock, create_app
    from webapp import db as kisht_db
    from webapp.api import tokens
    from webapp.models import ApiTokenFamily, Loan, User

    if not args.database_url.startswith(("postgresql", "postgres")):
        print("explain.py reads PostgreSQL plans: give a postgresql:// URL", file=sys.stderr)
        return 2
    app = create_app({"APP_ENV": "test", "DATABASE_URL": args.database_url, "REDIS_URL": "",
                      "WTF_CSRF_ENABLED": False, "API_RATE_LIMITS_ENABLED": False})
    engine = app.extensions["kisht.engine"]
    connection = engine.connect()
    outer = connection.begin()
    connection.exec_driver_sql(f"SET LOCAL statement_timeout = '{int(args.timeout)}s'")
    app.extensions["kisht.sessionmaker"] = sessionmaker(bind=connection, join_transaction_mode="create_savepoint",
                                                        expire_on_commit=False)
    captured: list[Captured] = []
    label = {"now": ""}

    def record(_conn, _cursor, statement, parameters, _context, executemany):
        if label["now"] and not executemany and SELECTS.match(statement):
            captured.append(Captured(label["now"], statement, parameters))

    try:
        with app.app_context():
            session = kisht_db.session()
            loan = session.scalar(select(Loan).where(Loan.collector_id.is_not(None), Loan.status == "ACTIVE")
                                  .order_by(Loan.id.desc()).limit(1))
            if loan is None:
                print("no active loan with a collector: seed the database first (bench/seed.py)", file=sys.stderr)
                return 2
            collector = session.get(User, loan.collector_id)
            manager = session.scalar(select(User).where(User.role == "manager", User.branch_id == loan.branch_id,
                                                        User.active.is_(True)).order_by(User.id).limit(1))
            finance = session.scalar(select(User).where(User.role == "finance", User.active.is_(True))
                                     .order_by(User.id).limit(1))
            legal = session.scalar(select(User).where(User.role == "legal", User.active.is_(True))
                                   .order_by(User.id).limit(1))
            family = ApiTokenFamily(family_id=secrets.token_hex(16), user_id=collector.id, created_at=clock.now(),
                                    expires_at=clock.now())
            session.add(family)
            session.flush()
            access = tokens._issue(session, collector, family).access_token  # rolled back with the rest
            fin_family = ApiTokenFamily(family_id=secrets.token_hex(16), user_id=finance.id, created_at=clock.now(),
                                        expires_at=clock.now())
            session.add(fin_family)
            session.flush()
            fin_access = tokens._issue(session, finance, fin_family).access_token
            session.commit()  # releases the savepoint; the outer transaction still holds it all
            number, branch_code, phone = loan.loan_number, loan.branch.code, loan.borrower.phone
            people = {"collector": collector, "manager": manager, "finance": finance, "legal": legal}
        print(f"database: {engine.url.render_as_string(hide_password=True)}")
        print(f"loan {number} (branch {branch_code}); " + ", ".join(
            f"{role} {user.username}" for role, user in people.items() if user is not None))

        clients = {}
        for role, user in people.items():
            if user is None:
                continue
            client = app.test_client()
            with client.session_transaction() as browser:
                browser["_user_id"] = str(user.id)
                browser["_fresh"] = True
                browser["last_seen"] = clock.now().timestamp()
            clients[role] = client
        bearer = {"Authorization": f"Bearer {access}"}
        fin_bearer = {"Authorization": f"Bearer {fin_access}"}
        utr = f"{secrets.randbelow(9 * 10**11) + 10**11}"
        key = uuid.uuid4().hex
        payment = {"loan_number": number, "amount": "1.00", "mode": "UPI", "utr": utr}
        requests = [
            ("worklist", "collector", "GET", "/collector/", {}, None),
            ("loan page", "collector", "GET", f"/loans/{number}", {}, None),
            ("manager home", "manager", "GET", "/manager/", {}, None),
            ("approvals inbox", "manager", "GET", "/approvals/", {}, None),
            ("approvals inbox (finance)", "finance", "GET", "/approvals/", {}, None),
            ("finance home", "finance", "GET", "/finance/", {}, None),
            ("reconciliation dashboard", "finance", "GET", "/reconciliation/", {}, None),
            ("legal NPA queue", "legal", "GET", "/legal/", {}, None),
            ("API loans", None, "GET", "/api/v1/loans", fin_bearer, None),
            ("API loans ?asset_class", None, "GET", "/api/v1/loans?asset_class=NPA", fin_bearer, None),
            ("API loans ?branch", None, "GET", f"/api/v1/loans?branch={branch_code}", fin_bearer, None),
            ("API loans ?bucket", None, "GET", "/api/v1/loans?bucket=31-60", fin_bearer, None),
            ("API loans ?status", None, "GET", "/api/v1/loans?status=CLOSED", fin_bearer, None),
            ("API loans ?dpd_min&dpd_max", None, "GET", "/api/v1/loans?dpd_min=30&dpd_max=60", fin_bearer, None),
            ("API loans ?disbursed_from&to", None, "GET",
             "/api/v1/loans?disbursed_from=2025-01-01&disbursed_to=2025-01-31", fin_bearer, None),
            ("API loans ?q=number", None, "GET", f"/api/v1/loans?q={number}", fin_bearer, None),
            ("API loans ?q=phone", None, "GET", f"/api/v1/loans?q={phone}", fin_bearer, None),
            ("API loans ?sort=overdue", None, "GET", "/api/v1/loans?sort=overdue", fin_bearer, None),
            ("API loans ?sort=priority", None, "GET", "/api/v1/loans?sort=priority", fin_bearer, None),
            ("API loans (collector)", None, "GET", "/api/v1/loans", bearer, None),
            ("API loan", None, "GET", f"/api/v1/loans/{number}", bearer, None),
            ("API payment post", None, "POST", "/api/v1/payments", {**bearer, "Idempotency-Key": key}, payment),
            # The same key again: answered from the stored response, found by its Idempotency-Key.
            ("API payment replay", None, "POST", "/api/v1/payments", {**bearer, "Idempotency-Key": key}, payment),
        ]
        event.listen(engine, "before_cursor_execute", record)
        try:
            for name, role, method, path, headers, body in requests:
                if args.only and args.only.lower() not in name.lower():
                    continue
                client = clients.get(role) if role else app.test_client()
                if client is None:
                    print(f"skipped {name}: no {role} in the data")
                    continue
                label["now"] = name
                response = client.open(path, method=method, headers=headers, json=body)
                label["now"] = ""
                if response.status_code >= 400:
                    print(f"{name}: {method} {path} answered {response.status_code}: "
                          f"{response.get_data(as_text=True)[:300]}")
        finally:
            event.remove(engine, "before_cursor_execute", record)

        sizes = dict(connection.exec_driver_sql(
            "SELECT c.relname, GREATEST(c.reltuples, 0)::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')").all())
        plans: list[Plan] = []
        seen: set[tuple[str, str]] = set()
        for item in captured:
            key = (item.label, item.statement)
            if key in seen:
                continue
            seen.add(key)
            connection.exec_driver_sql("SAVEPOINT explain")
            try:
                rows = connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + item.statement,
                                                  item.parameters).all()
                connection.exec_driver_sql("RELEASE SAVEPOINT explain")
            except Exception as error:  # noqa: BLE001  (a statement that cannot be explained is reported)
                connection.exec_driver_sql("ROLLBACK TO SAVEPOINT explain")
                print(f"\n[{item.label}] could not explain: {type(error).__name__}: {str(error).splitlines()[0]}")
                continue
            plan = Plan(item, [row[0] for row in rows])
            plan.seq_scans = [m.group(1) for line in plan.lines for m in SEQ_SCAN.finditer(line)]
            plan.large_seq_scans = [t for t in plan.seq_scans if sizes.get(t, 0) > args.large]
            plans.append(plan)
            if not args.quiet:
                print(f"\n[{item.label}] {short(item.statement, 400)}")
                if item.parameters:
                    print(f"  parameters: {item.parameters}")
                for line in plan.lines:
                    print("  " + line)
                for table in plan.large_seq_scans:
                    print(f"  !! Seq Scan on {table} ({sizes[table]:,} rows)")
    finally:
        outer.rollback()
        connection.close()
        engine.dispose()

    flagged = [p for p in plans if p.large_seq_scans]
    table = ["| Request | Statement | Index used | Rows | Time (ms) | Seq Scan on a large table |",
             "|---|---|---|---:|---:|---|"]
    for plan in plans:
        table.append(f"| {plan.captured.label} | `{short(plan.captured.statement, 90).replace('|', '/')}` | "
                     f"{', '.join(plan.indexes) or '—'} | {plan.rows} | {plan.milliseconds} | "
                     f"{', '.join(sorted(set(plan.large_seq_scans))) or ''} |")
    print("\n" + "\n".join(table))
    print(f"\n{len(plans)} statements explained; {len(flagged)} with a Seq Scan on a table of more than "
          f"{args.large:,} rows" + (":" if flagged else "."))
    for plan in flagged:
        print(f"  [{plan.captured.label}] {', '.join(sorted(set(plan.large_seq_scans)))}: "
              f"{short(plan.captured.statement)}")
    if args.markdown:
        Path(args.markdown).write_text("\n".join(table) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
