#!/usr/bin/env python
"""HTTP load on gunicorn over a seeded database: latency per route at 1, 8 and 32 concurrent clients.

    .venv/bin/python bench/load.py [--database-url URL] [--clients 1,8,32] [--duration 60] [--warmup 10]
                                   [--workers W] [--threads T] [--bind HOST:PORT] [--redis-url URL]
                                   [--password P] [--no-rate-limits] [--keep-logs] [--json FILE]

1. Starts gunicorn with the repository's gunicorn.conf.py (workers, threads, timeouts as configured unless
   --workers/--threads) and APP_ENV=production against the database (default kisht_load, made by
   bench/seed.py; see bench/_http.py for the two settings that differ from a deployment).
2. Signs in one desk per client (a collector in the browser and in the API, the branch manager, finance;
   collectors spread over the branches), warms up, then for each concurrency runs the clients back to back
   for --duration seconds, each drawing actions from the mix in bench/_http.py: worklist, loan page,
   payment form and post (cash, one-time key), API payment (UPI, Idempotency-Key, a tenth replayed),
   approvals inbox, manager home, finance and reconciliation dashboards, API loan list and detail, /healthz.
   Every payment is a new one (unique receipt or UTR, value date today IST, ₹100-₹1,999.99 as a decimal
   string) on a loan of the collector's worklist.
3. Prints per route: requests, errors, p50/p95/p99/max as the client saw them, and p50/p95 inside the app
   (the latency_ms of the app's own request log line): the difference is queueing and the network path.
   Then throughput, the budgets' verdict at 8 clients (payment posts p95 < 100 ms, every page p95 < 150 ms,
   zero errors), and writes everything with --json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _http  # noqa: E402
from bench._http import PAYMENT_ROUTES, ROUTES, say, summary  # noqa: E402

BUDGET_CLIENTS = 8
BUDGET_PAYMENT_P95_MS = 100
BUDGET_PAGE_P95_MS = 150


def level(server: _http.Server, desks, numbers, clients: int, seconds: float, seed: int) -> dict:
    start = server.log_offset()
    load_before = os.getloadavg()[0]
    cpu_before = _http.cpu_seconds(server)
    recorder, wall = _http.drive(server.base, desks[:clients], numbers, seconds=seconds, seed=seed)
    cores = _http.cpu_share(cpu_before, _http.cpu_seconds(server), wall)
    time.sleep(0.5)  # the last log lines
    inside = server.server_latencies(start)
    routes = {}
    for route in ROUTES:
        values = recorder.latencies.get(route, [])
        if not values:
            continue
        figures = summary(values)
        figures["errors"] = recorder.errors.get(route, 0)
        figures["per_second"] = round(len(values) / wall, 1)
        rule = ROUTES[route][1]
        app = summary(inside.get(rule, [])) if rule else {"p50": None, "p95": None}
        if rule == "POST /api/v1/payments":  # the app's line does not tell a replay apart: the slowest are posts
            app = summary(sorted(inside.get(rule, []))[-len(values):])
        figures["app_p50"], figures["app_p95"] = app["p50"], app["p95"]
        routes[route] = figures
    for route, count in recorder.errors.items():
        if route not in routes:
            routes[route] = {"count": count, "errors": count}
    return {"clients": clients, "seconds": round(wall, 1), "requests": recorder.requests,
            "throughput_per_second": round(recorder.requests / wall, 1),
            "errors": sum(recorder.errors.values()), "error_samples": recorder.samples, "routes": routes,
            "cores_used": cores,
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def print_level(result: dict) -> None:
    say()
    say(f"{result['clients']} client(s), {result['seconds']} s: {result['requests']:,} requests, "
        f"{result['throughput_per_second']} per second, {result['errors']} errors; "
        f"load average {result['load_average_1min'][0]} → {result['load_average_1min'][1]}")
    say(f"  cores used on average: " + ", ".join(f"{k} {v}" for k, v in result["cores_used"].items()))
    say(f"  {'route':<38} {'n':>6} {'err':>4} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}   {'app p50':>7} {'app p95':>7}")
    for route, f in result["routes"].items():
        if "p50" not in f:
            say(f"  {route:<38} {f['count']:>6} {f['errors']:>4}")
            continue
        say(f"  {route:<38} {f['count']:>6} {f['errors']:>4} {f['p50']:>7} {f['p95']:>7} {f['p99']:>7} {f['max']:>7}"
            f"   {str(f['app_p50'] or '-'):>7} {str(f['app_p95'] or '-'):>7}")
    for sample in result["error_samples"][:5]:
        say(f"  error: {sample}")


def verdict(result: dict) -> list[tuple[str, bool, str]]:
    out = []
    for route, f in result["routes"].items():
        if "p95" not in f or route == "GET /healthz":
            continue
        if route in PAYMENT_ROUTES:
            out.append((f"{route} p95 < {BUDGET_PAYMENT_P95_MS} ms", f["p95"] < BUDGET_PAYMENT_P95_MS, f"{f['p95']} ms"))
        elif route.startswith("GET"):
            out.append((f"{route} p95 < {BUDGET_PAGE_P95_MS} ms", f["p95"] < BUDGET_PAGE_P95_MS, f"{f['p95']} ms"))
    out.append(("zero errors", result["errors"] == 0, str(result["errors"])))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _http.server_arguments(parser, bind="127.0.0.1:8765", seed=1)
    parser.add_argument("--clients", default="1,8,32", help="comma-separated concurrency levels")
    parser.add_argument("--duration", type=float, default=60, help="seconds per level")
    parser.add_argument("--warmup", type=float, default=10, help="seconds at the highest level before measuring")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: gunicorn.conf.py's)")
    parser.add_argument("--threads", type=int, default=None, help="threads per worker (default: gunicorn.conf.py's)")
    parser.add_argument("--worker-class", default=None, help="gunicorn worker class (default: gunicorn.conf.py's)")
    parser.add_argument("--read-niceness", type=int, default=None,
                        help="CPU niceness of reads while writes run (default: gunicorn.conf.py's; 0: reads and writes alike)")
    parser.add_argument("--no-rate-limits", action="store_true", help="switch the API rate limits off instead")
    parser.add_argument("--keep-logs", action="store_true", help="keep the server's log folder")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.clients.split(",") if x.strip()]
    if not levels or min(levels) < 1:
        parser.error("--clients takes positive whole numbers, e.g. 1,8,32")

    from bench.dayend import code_version, machine

    server = _http.Server(args.database_url, bind=args.bind, workers=args.workers, threads=args.threads,
                          worker_class=args.worker_class, read_niceness=args.read_niceness, max_requests=None,
                          redis_url=args.redis_url, rate_limits=not args.no_rate_limits)
    results: dict = {"database": args.database_url.rsplit("@", 1)[-1], "machine": machine(), "code": code_version(),
                     "gunicorn": server.settings(), "rate_limits": "off" if args.no_rate_limits else
                     f"on, raised to {_http.HIGH_LIMIT}", "duration": args.duration, "levels": []}
    say(f"load: {results['database']}, gunicorn {results['gunicorn']}, rate limits {results['rate_limits']}")
    say(f"  machine: {results['machine']}; code: {results['code']}")
    server.start()
    try:
        started = time.perf_counter()
        desks = _http.open_desks(server.base, args.database_url, max(levels), args.password)
        results["sign_in_seconds"] = round(time.perf_counter() - started, 1)
        say(f"  {len(desks)} desks signed in (browser and API) in {results['sign_in_seconds']} s; "
            f"loans per collector in the mix: {min(len(d.loans) for d in desks)}-{max(len(d.loans) for d in desks)}")
        numbers = _http.Numbers()
        if args.warmup:
            recorder, wall = _http.drive(server.base, desks, numbers, seconds=args.warmup, seed=args.seed + 1000)
            say(f"  warm-up: {recorder.requests:,} requests in {wall:.0f} s at {len(desks)} clients, "
                f"{sum(recorder.errors.values())} errors {recorder.samples[:3]}")
        for clients in levels:
            result = level(server, desks, numbers, clients, args.duration, args.seed)
            results["levels"].append(result)
            print_level(result)
            time.sleep(2)
        at_budget = next((r for r in results["levels"] if r["clients"] == BUDGET_CLIENTS), None)
        say()
        if at_budget is not None:
            checks = verdict(at_budget)
            results["budget_at_8_clients"] = [{"budget": n, "met": ok, "value": v} for n, ok, v in checks]
            for name, ok, value in checks:
                say(f"budget at {BUDGET_CLIENTS} clients: {name:<52} {'MET' if ok else 'MISSED'} ({value})")
        results["server_log_dir"] = str(server.dir) if args.keep_logs else None
    finally:
        server.stop()
        server.cleanup(keep=args.keep_logs)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2, default=str))
            say(f"figures written to {args.json}")
    return 0 if all(c["met"] for c in results.get("budget_at_8_clients", [])) else 1


if __name__ == "__main__":
    sys.exit(main())
