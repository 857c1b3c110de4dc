#!/usr/bin/env python
"""What-if: the real day-end job, re-run (force=True) on a database kept by bench/dayend.py --keep, with a
setting or an index change applied for the run only.

    .venv/bin/python bench/dayend_whatif.py [--database-url URL] [--date YYYY-MM-DD] VARIANT@SIZE[xPARALLEL] ...

SIZE is DAYEND_BATCH_SIZE and PARALLEL DAYEND_PARALLEL_BATCHES (default: the app's). VARIANT is
"baseline" (the code and migrations as they are) or a "+"-joined set of:

* no-payidx  -- without migration 0008's ix_payments_posted_by_loan (dropped for the run, rebuilt after);
* workmem    -- work_mem = 64MB on the job's connections (the server's default is 4MB).

Before each run the derived state (loans' live positions, instalment statuses) is put back to what it was
before the measured run (the bench_rewind_* tables that bench/dayend.py leaves with --keep), so each run
does that run's work: the same loans and instalments updated, the same rows written. Every run must give
the same rows for the date (the md5 printed). Example:
--raw baseline@200000x2 baseline@100000x2 baseline@100000x1 no-payidx@200000x2
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event, make_url  # noqa: E402

from bench.dayend import (DEFAULT_SERVER, StatementClock, batch_setting, code_version, day_rows,  # noqa: E402
                          psycopg_connect, raw_statement, rewind, rss_mb, run_dayend_timed, say, settle)

# Migration 0008's indexes, as it creates them.
INDEXES = {
    "no-payidx": ("ix_payments_posted_by_loan", "CREATE INDEX ix_payments_posted_by_loan ON payments (loan_id) "
                                                "INCLUDE (id, value_date, amount_paise) WHERE status = 'POSTED'"),
}
OPTIONS = set(INDEXES) | {"workmem"}


def ensure_indexes(url: str, dropped: set[str]) -> None:
    with psycopg_connect(url, autocommit=True) as conn:
        for option, (name, ddl) in INDEXES.items():
            exists = conn.execute("SELECT 1 FROM pg_class WHERE relname = %s", (name,)).fetchone()
            if option in dropped and exists:
                conn.execute(f"DROP INDEX {name}")
            elif option not in dropped and not exists:
                started = time.perf_counter()
                conn.execute(ddl)
                say(f"  {name} rebuilt in {time.perf_counter() - started:.1f} s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=f"{DEFAULT_SERVER}/kisht_bench")
    parser.add_argument("--date", help="business date already run (default: yesterday, IST)")
    parser.add_argument("--raw", action="store_true",
                        help="also time the raw statement (the floor) first and print each run's ratio to it")
    parser.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    parser.add_argument("runs", nargs="+", metavar="VARIANT@SIZE[xPARALLEL]")
    args = parser.parse_args(argv)

    from webapp import clock, create_app

    business_date = date.fromisoformat(args.date) if args.date else clock.last_business_date()
    url = args.database_url
    if "bench" not in (make_url(url).database or ""):
        sys.exit("this drops and rebuilds indexes: point it at a benchmark database (its name contains 'bench')")
    plan = []
    for spec in args.runs:
        variant, _, setting = spec.partition("@")
        parts = set() if variant == "baseline" else set(variant.split("+"))
        try:
            size, parallel = batch_setting(setting)
        except ValueError as error:
            parser.error(str(error))
        if parts - OPTIONS:
            parser.error(f"bad run {spec!r}: VARIANT is baseline or a +-joined set of {sorted(OPTIONS)}")
        plan.append((spec, parts, size, parallel))
    say(f"what-if on {make_url(url).database}, date {business_date}, code {code_version()}")
    results = []
    raw = None
    if args.raw:
        settle(url, ("dayend_positions", "loans", "instalments", "payments"))
        raw = raw_statement(url, business_date)
        say(f"  raw statement: {raw['seconds']} s (fastest of {raw['variants']})")
    try:
        for spec, parts, size, parallel in plan:
            ensure_indexes(url, parts)
            overrides = {"APP_ENV": "test", "DATABASE_URL": url, "REDIS_URL": "", "LOG_LEVEL": "WARNING",
                         "DAYEND_BATCH_SIZE": size}
            if parallel:
                overrides["DAYEND_PARALLEL_BATCHES"] = parallel
            app = create_app(overrides)
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
        ensure_indexes(url, set())
    say()
    if raw:
        say(f"{'raw statement (the floor)':<36} {raw['seconds']:7.1f} s")
    for r in results:
        s = r["statement_seconds"]
        ratio = f"   {r['wall_seconds'] / raw['seconds']:.2f}x the raw" if raw else ""
        say(f"{r['label']:<36} {r['wall_seconds']:7.1f} s   compute {s.get('compute', 0):6.1f} s, loans "
            f"{s.get('loans', 0):5.1f} s, instalments {s.get('instalments', 0):5.1f} s   md5 {r['md5']}{ratio}")
    say(f"peak RSS of this process (Python): {rss_mb():.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps({"date": str(business_date), "code": code_version(), "raw": raw,
                                               "runs": results, "peak_rss_mb": round(rss_mb(), 1)},
                                              indent=2, default=str))
    return 0 if len({r["md5"] for r in results}) <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
