#!/usr/bin/env python
"""Day-end while the desks work: the load of bench/load.py and, in the middle of it, day-end for a date.

    .venv/bin/python bench/dayend_under_load.py [--database-url URL] [--date YYYY-MM-DD] [--force]
                                                [--clients 8] [--duration 60] [--dayend-after 10] [--json FILE]

On a database made by bench/seed.py (which runs day-end for the day before yesterday, so yesterday's is a
real first run): starts gunicorn and signs the desks in as bench/load.py does, runs one level of
--clients for --duration seconds, starts day-end (jobs.dayend.run_dayend, in this process, with the app's
batch size and parallel batches) --dayend-after seconds into it, and prints the day-end's time beside
the level's latencies (which include the requests served while day-end ran). Run bench/load.py at the
same number of clients for the same routes without day-end to compare. With --force, a date that already
succeeded is run again (that run finds the loans up to date: less work than the first).
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _http  # noqa: E402
from bench.dayend import StatementClock, code_version, machine, run_dayend_timed  # noqa: E402
from bench.load import level, print_level  # noqa: E402

DAYEND_BUDGET_SECONDS = 30


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _http.server_arguments(parser, bind="127.0.0.1:8767", seed=3)
    parser.add_argument("--date", help="business date (default: yesterday, IST)")
    parser.add_argument("--force", action="store_true", help="run again a date that already succeeded")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=60, help="seconds of load")
    parser.add_argument("--dayend-after", type=float, default=10, help="seconds into the load when day-end starts")
    args = parser.parse_args(argv)

    from webapp import clock, create_app

    business_date = date.fromisoformat(args.date) if args.date else clock.last_business_date()
    server = _http.Server(args.database_url, bind=args.bind, workers=None, threads=None, max_requests=None,
                          redis_url=args.redis_url, rate_limits=True)
    app = create_app({"APP_ENV": "test", "DATABASE_URL": args.database_url, "REDIS_URL": "", "LOG_LEVEL": "WARNING"})
    statement_clock = StatementClock(app.extensions["kisht.engine"])
    results: dict = {"database": args.database_url.rsplit("@", 1)[-1], "machine": machine(), "code": code_version(),
                     "gunicorn": server.settings(), "business_date": str(business_date)}
    _http.say(f"day-end {business_date} under {args.clients} clients: {results['database']}, "
              f"gunicorn {results['gunicorn']}; code {results['code']}")
    server.start()
    try:
        desks = _http.open_desks(server.base, args.database_url, args.clients, args.password)
        load: dict = {}
        driver = threading.Thread(target=lambda: load.update(
            level(server, desks, _http.Numbers(), args.clients, args.duration, args.seed)))
        driver.start()
        time.sleep(args.dayend_after)
        results["dayend"] = run_dayend_timed(app, statement_clock, business_date, force=args.force,
                                             label=f"day-end {business_date} under load")
        results["dayend"]["started_after_seconds"] = args.dayend_after
        driver.join()
        results["load"] = load
        print_level(load)
    finally:
        server.stop()
        server.cleanup()
    dayend = results["dayend"]
    ok = dayend["status"] == "SUCCEEDED" and dayend["wall_seconds"] < DAYEND_BUDGET_SECONDS
    overlap = dayend["wall_seconds"] <= args.duration - args.dayend_after
    _http.say()
    _http.say(f"day-end {business_date}: {dayend['status']} in {dayend['wall_seconds']} s "
              f"({dayend['loans_processed']:,} loans) while {args.clients} clients worked"
              f"{'' if overlap else ' (the load ended before day-end did: raise --duration)'}")
    _http.say(f"budget: day-end under {DAYEND_BUDGET_SECONDS} s under load  {'MET' if ok else 'MISSED'}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
        _http.say(f"figures written to {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
