"""CPU per action of the load mix: the work itself, without the queueing of a loaded machine.

    .venv/bin/python bench/cpu.py [--repeat 40] [--json FILE]

gunicorn as in bench/load.py but with one worker and one thread (recycling off), one desk, and each action of
bench/load.py's mix performed --repeat times in turn, one request at a time. Around each action it reads the
CPU time of the gunicorn worker and of the PostgreSQL backends connected to the benchmark database, so the
figures hold even while other work shares the machine. The last line is the mix's average CPU per request,
and the throughput two cores could give if nothing else ran: the ceiling bench/load.py meets at 8 clients.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _http  # noqa: E402
from bench._http import MIX, say  # noqa: E402


def _cpu(process: psutil.Process) -> float:
    """Seconds on a CPU of all the process's threads, to the nanosecond (Linux's schedstat; cpu_times counts
    in 10 ms ticks)."""
    total = 0
    for task in Path(f"/proc/{process.pid}/task").glob("*/schedstat"):
        try:
            total += int(task.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended
    return total / 1e9


def backends(database: str) -> list[psutil.Process]:
    """PostgreSQL's backend processes serving `database` (their titles name it)."""
    found = []
    for p in psutil.process_iter(["name", "cmdline"]):
        title = " ".join(p.info["cmdline"] or [])
        if (p.info["name"] or "").startswith("postgres") and f" {database} " in f"{title} ":
            found.append(p)
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _http.server_arguments(parser, bind="127.0.0.1:8766", seed=1)
    parser.add_argument("--repeat", type=int, default=40, help="times each action is performed")
    parser.add_argument("--desk", type=int, default=0,
                        help="which collector's desk (0, 1, ...): each run books payments on its desk's loans, so "
                             "their payments cost a little more in the next run; take a fresh desk to compare")
    args = parser.parse_args(argv)

    from bench.dayend import code_version, machine

    database = args.database_url.rsplit("/", 1)[-1]
    server = _http.Server(args.database_url, bind=args.bind, workers=1, threads=1, max_requests=0,
                          redis_url=args.redis_url)
    results = {"database": database, "machine": machine(), "code": code_version(), "repeat": args.repeat,
               "actions": {}}
    say(f"cpu: {database}, one gunicorn worker with one thread; machine: {results['machine']}; "
        f"code: {results['code']}")
    server.start()
    try:
        desk = _http.open_desks(server.base, args.database_url, args.desk + 1, args.password)[args.desk]
        worker_process = server.workers()[0]
        client = _http.Worker(server.base, desk, _http.Numbers(), args.seed)
        for action in MIX:  # once each first: connections, caches and templates warm
            getattr(client, "do_" + action.replace(" ", "_"))(_http.Recorder())
        say(f"  {'action':<28} {'requests':>8} {'app ms':>8} {'pg ms':>7} {'p50 app':>8}   CPU per action")
        for action, weight in MIX.items():
            recorder, app, pg = _http.Recorder(), [], []
            perform = getattr(client, "do_" + action.replace(" ", "_"))
            for _ in range(args.repeat):
                pgs = backends(database)
                before = (_cpu(worker_process), sum(_cpu(p) for p in pgs))
                perform(recorder)
                time.sleep(0.005)  # the worker finishes its request log line after the response
                app.append((_cpu(worker_process) - before[0]) * 1000)
                pg.append((sum(_cpu(p) for p in pgs) - before[1]) * 1000)
            requests_each = recorder.requests / args.repeat
            errors = sum(recorder.errors.values())
            results["actions"][action] = {
                "weight": weight, "requests_per_action": requests_each, "errors": errors,
                "app_ms": round(statistics.fmean(app), 2), "pg_ms": round(statistics.fmean(pg), 2),
                "app_p50_ms": round(statistics.median(app), 2)}
            r = results["actions"][action]
            say(f"  {action:<28} {requests_each:>8.2f} {r['app_ms']:>8.1f} {r['pg_ms']:>7.1f} {r['app_p50_ms']:>8.1f}"
                + (f"   {errors} errors {recorder.samples[:1]}" if errors else ""))
        total_weight = sum(MIX.values())
        per_action = {k: sum(v[k] * v["weight"] for v in results["actions"].values()) / total_weight
                      for k in ("app_ms", "pg_ms", "requests_per_action")}
        app_ms, pg_ms = (per_action[k] / per_action["requests_per_action"] for k in ("app_ms", "pg_ms"))
        cores = psutil.cpu_count()
        results["mix"] = {"app_ms_per_request": round(app_ms, 2), "pg_ms_per_request": round(pg_ms, 2),
                          "ceiling_requests_per_second": round(cores * 1000 / (app_ms + pg_ms), 1)}
        say(f"  the mix: {app_ms:.1f} ms gunicorn + {pg_ms:.1f} ms PostgreSQL CPU a request; {cores} cores "
            f"give at most {results['mix']['ceiling_requests_per_second']} requests a second")
    finally:
        server.stop()
        server.cleanup()
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
