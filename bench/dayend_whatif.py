#!/usr/bin/env python
"""What-if: the real day-end job, re-run (force=True) on a database kept by bench/dayend.py --keep, with the
changes docs/performance.md suggests applied in this process only.

    .venv/bin/python bench/dayend_whatif.py [--database-url URL] [--date YYYY-MM-DD] VARIANT@BATCH ...

VARIANT is "baseline" or a "+"-joined set of:

* ranges  -- the batch's loan-id range also on the tables the statements join to or update: loans and the
             previous/current dayend_positions rows in "compute", loans in "loans", instalments in
             "instalments" (the SQL text is changed in memory; webapp/ is not touched);
* indexes -- two indexes created for the run and dropped afterwards: payments (loan_id) INCLUDE (id,
             value_date, amount_paise) WHERE status = 'POSTED' (an index-only scan for "received") and
             instalments (loan_id, due_date) WHERE status = 'DUE';
* workmem -- work_mem = 64MB on the job's connections.

Before each run the derived state (loans' live positions, instalment statuses) is put back to what it was
before the measured run (the bench_rewind_* tables that bench/dayend.py leaves with --keep), so each run
does that run's work. Example: baseline@50000 ranges@50000 ranges+indexes@50000 ranges+indexes@200000.
Every run must give the same rows for the date (the md5 printed); the figures go to docs/performance.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event, make_url  # noqa: E402

from bench.dayend import (DEFAULT_SERVER, StatementClock, day_rows, psycopg_connect, rewind, run_dayend_timed,  # noqa: E402
                          say, settle)

INDEXES = {
    "whatif_payments_posted": "CREATE INDEX whatif_payments_posted ON payments (loan_id) "
                              "INCLUDE (id, value_date, amount_paise) WHERE status = 'POSTED'",
    "whatif_instalments_due": "CREATE INDEX whatif_instalments_due ON instalments (loan_id, due_date) "
                              "WHERE status = 'DUE'",
}


def with_ranges(statements: dict[str, str]) -> dict[str, str]:
    changed = dict(statements)

    def replace(name: str, old: str, new: str) -> None:
        if old not in changed[name]:
            sys.exit(f"the day-end SQL changed ({name!r} no longer contains {old!r}): update this what-if")
        changed[name] = changed[name].replace(old, new)

    for alias in ("prev", "cur"):
        replace("compute", f"{alias}.loan_id = pos.loan_id",
                f"{alias}.loan_id = pos.loan_id AND {alias}.loan_id >= :lo AND {alias}.loan_id < :hi")
    replace("compute", "JOIN loans l ON l.id = i.loan_id", "JOIN loans l ON l.id = i.loan_id AND l.id >= :lo AND l.id < :hi")
    replace("loans", "WHERE loans.id = w.loan_id", "WHERE loans.id = w.loan_id AND loans.id >= :lo AND loans.id < :hi")
    replace("instalments", "WHERE instalments.loan_id = w.loan_id",
            "WHERE instalments.loan_id = w.loan_id AND instalments.loan_id >= :lo AND instalments.loan_id < :hi")
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=f"{DEFAULT_SERVER}/kisht_bench")
    parser.add_argument("--date", help="business date already run (default: yesterday, IST)")
    parser.add_argument("runs", nargs="+", metavar="VARIANT@BATCH")
    args = parser.parse_args(argv)

    from webapp import clock, create_app
    from webapp.services import dayend

    business_date = date.fromisoformat(args.date) if args.date else clock.last_business_date()
    url = args.database_url
    if "bench" not in (make_url(url).database or ""):
        sys.exit("this changes indexes: point it at a benchmark database (its name contains 'bench')")
    original = dayend._statements
    results = []
    try:
        for spec in args.runs:
            variant, _, size = spec.partition("@")
            parts = set() if variant == "baseline" else set(variant.split("+"))
            unknown = parts - {"ranges", "indexes", "workmem"}
            if unknown or not size.replace("_", "").isdigit():
                parser.error(f"bad run {spec!r}")
            dayend._statements = (lambda dialect: with_ranges(original(dialect))) if "ranges" in parts else original
            with psycopg_connect(url, autocommit=True) as conn:
                for name, ddl in INDEXES.items():
                    conn.execute(f"DROP INDEX IF EXISTS {name}")
                    if "indexes" in parts:
                        started = time.perf_counter()
                        conn.execute(ddl)
                        say(f"  {name} built in {time.perf_counter() - started:.1f} s")
            app = create_app({"APP_ENV": "test", "DATABASE_URL": url, "REDIS_URL": "", "LOG_LEVEL": "WARNING",
                              "DAYEND_BATCH_SIZE": int(size.replace("_", ""))})
            engine = app.extensions["kisht.engine"]
            if "workmem" in parts:
                event.listen(engine, "connect", lambda dbapi, _record: dbapi.execute("SET work_mem = '64MB'"))
            statement_clock = StatementClock(engine)
            say(f"  derived state put back to before the run of {business_date}: {rewind(url)}")
            settle(url, ("dayend_positions", "loans", "instalments", "payments"))
            result = run_dayend_timed(app, statement_clock, business_date, force=True, label=spec)
            result["md5"] = day_rows(url, business_date)["md5"]
            say(f"    rows of {business_date}: md5 {result['md5']}")
            results.append(result)
            engine.dispose()
    finally:
        dayend._statements = original
        with psycopg_connect(url, autocommit=True) as conn:
            for name in INDEXES:
                conn.execute(f"DROP INDEX IF EXISTS {name}")
    say()
    for r in results:
        say(f"{r['label']:<32} {r['wall_seconds']:7.1f} s   compute {r['statement_seconds'].get('compute', 0):6.1f} s, "
            f"loans {r['statement_seconds'].get('loans', 0):5.1f} s, instalments "
            f"{r['statement_seconds'].get('instalments', 0):5.1f} s   md5 {r['md5']}")
    return 0 if len({r["md5"] for r in results}) <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
