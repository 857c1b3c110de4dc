#!/usr/bin/env python
"""A gunicorn worker's memory under a mixed workload: RSS after 2,000 and after 20,000 requests.

    .venv/bin/python bench/memory.py [--database-url URL] [--clients 4] [--first 2000] [--last 20000]
                                     [--every 1000] [--threads T] [--bind HOST:PORT] [--password P] [--json FILE]

Starts gunicorn as bench/load.py does (bench/_http.py: gunicorn.conf.py, APP_ENV=production, the seeded
database) but with ONE worker and worker recycling off (GUNICORN_MAX_REQUESTS=0), so one process serves
every request. Signs in the clients' desks, then sends the load harness's mix (pages, API, payment posts,
/healthz) from --clients concurrent clients and reads the worker's RSS (and USS) with psutil every --every
requests the worker served (counted from the app's request log, sign-in included). Budget: RSS after
--last requests within 10 % of RSS after --first.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _http  # noqa: E402
from bench._http import say  # noqa: E402

BUDGET_RATIO = 1.10


class Served:
    """Requests the worker answered so far: the app writes one request line for each (read incrementally)."""

    def __init__(self, server: _http.Server):
        self.path, self.offset, self.count = server.app_log(), 0, 0

    def __call__(self) -> int:
        if self.path.exists():
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
            complete = data.rfind(b"\n") + 1
            self.count += data[:complete].count(b'"latency_ms"')
            self.offset += complete
        return self.count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _http.server_arguments(parser, bind="127.0.0.1:8766", seed=2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--first", type=int, default=2000)
    parser.add_argument("--last", type=int, default=20000)
    parser.add_argument("--every", type=int, default=1000, help="read the RSS every this many requests")
    parser.add_argument("--threads", type=int, default=None, help="threads of the worker (default: gunicorn.conf.py's)")
    args = parser.parse_args(argv)
    if not 0 < args.first < args.last or args.every < 1:
        parser.error("--first must be positive and below --last; --every positive")

    from bench.dayend import code_version, machine

    server = _http.Server(args.database_url, bind=args.bind, workers=1, threads=args.threads, max_requests=0,
                          redis_url=args.redis_url)
    results: dict = {"database": args.database_url.rsplit("@", 1)[-1], "machine": machine(), "code": code_version(),
                     "gunicorn": server.settings(), "clients": args.clients, "samples": []}
    say(f"memory: {results['database']}, gunicorn {results['gunicorn']}, {args.clients} clients")
    server.start()
    try:
        worker = server.workers()[0]
        results["worker_pid"] = worker.pid
        rss0 = worker.memory_info().rss
        say(f"  worker {worker.pid} started: RSS {rss0 / 2**20:.1f} MB")
        desks = _http.open_desks(server.base, args.database_url, args.clients, args.password)
        numbers, served = _http.Numbers(), Served(server)
        marks = sorted({*range(args.every, args.last + 1, args.every), args.first, args.last})
        started = time.perf_counter()
        errors, samples = 0, []
        for mark in marks:
            while (done := served()) < mark:
                # actions ≈ requests (a screen payment is two, a replay one more): top up in small steps
                recorder, _ = _http.drive(server.base, desks, numbers, actions=max(1, min(200, mark - done)),
                                          seed=args.seed + done)
                errors += sum(recorder.errors.values())
                if recorder.samples and errors <= 5:
                    say(f"  errors: {recorder.samples[:3]}")
            info = worker.memory_full_info()
            sample = {"requests": done, "rss_mb": round(info.rss / 2**20, 1), "uss_mb": round(info.uss / 2**20, 1),
                      "seconds": round(time.perf_counter() - started, 1)}
            samples.append(sample)
            say(f"  after {done:>6,} requests: RSS {sample['rss_mb']:7.1f} MB, USS {sample['uss_mb']:7.1f} MB "
                f"({sample['seconds']} s)")
        results["samples"], results["errors"] = samples, errors
        first = next(s for s in samples if s["requests"] >= args.first)
        last = samples[-1]
        ratio = last["rss_mb"] / first["rss_mb"]
        results.update(rss_first_mb=first["rss_mb"], rss_last_mb=last["rss_mb"], ratio=round(ratio, 3),
                       first=first["requests"], last=last["requests"], met=ratio <= BUDGET_RATIO and errors == 0)
        say()
        say(f"RSS after {first['requests']:,} requests {first['rss_mb']} MB, after {last['requests']:,} "
            f"{last['rss_mb']} MB: ratio {ratio:.3f}; errors {errors}")
        say(f"budget: within 10 % ({'MET' if ratio <= BUDGET_RATIO else 'MISSED'})")
    finally:
        server.stop()
        server.cleanup()
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2, default=str))
            say(f"figures written to {args.json}")
    return 0 if results.get("met") else 1


if __name__ == "__main__":
    sys.exit(main())
