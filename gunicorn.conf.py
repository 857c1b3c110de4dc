"""gunicorn settings for Kisht: `gunicorn -c gunicorn.conf.py wsgi:app` (deploy/kisht-web.service).

Every value can be overridden from the environment (names below) or on the command line.
Graceful shutdown: on SIGTERM the master stops accepting, each worker finishes the request it is serving
(up to GUNICORN_GRACEFUL_TIMEOUT seconds) and exits; tests/ops/test_deploy.py shows no request lost.
Metrics: PROMETHEUS_MULTIPROC_DIR is set here, before any worker imports the app, so every worker writes
its request metrics there and /metrics adds them up (webapp/ops/metrics.py). The folder is emptied when
gunicorn starts and a dead worker's live gauges are dropped.
"""
import gc
import multiprocessing
import os
import resource
import shutil
import tempfile
import threading

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# One request per process (sync workers behind the buffering HTTPS proxy). A thread per request would share its
# process's interpreter lock with the other requests of that process, so a payment would wait for pages however
# its CPU priority is set (see "Writes ahead of reads" below). A sync worker is busy while its request waits for
# PostgreSQL too, so there are more workers than cores, but only twice as many: more processes than that take
# turns on the cores and refill their caches each time, and every request costs more CPU (at 8 busy clients on
# 2 cores, 12 workers served 103-117 requests a second and 4 served 123-151: docs/performance.md, ninth machine).
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = int(os.environ.get("GUNICORN_THREADS", 1))  # more than 1 makes gunicorn use gthread workers
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 60))  # a worker silent this long is killed and replaced
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 30))  # SIGTERM: time to finish requests
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", 5))  # gthread only: a sync worker closes after each response
# Recycle workers as a guard against slow leaks. RSS is flat over 20,000 requests (docs/performance.md), and
# starting a worker costs about a second of CPU (imports, create_app), so not much more often than that.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 10000))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", 1000))
accesslog = None  # Kisht writes its own JSON request line (webapp/ops/__init__.py)
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
proc_name = "kisht-web"

_metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR",
    os.path.join(os.environ.get("RUNTIME_DIRECTORY", tempfile.gettempdir()), f"kisht-metrics-{os.getuid()}"))


def on_starting(server):
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)


def post_worker_init(worker):
    # The app's own objects (modules, routes, templates, mappers: about 160,000) live as long as the worker.
    # Frozen, the collector no longer walks them: a full collection, about one request in 250 of the load mix,
    # takes some 15 ms instead of 75 (docs/performance.md, the eighth machine).
    gc.collect()
    gc.freeze()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


# Writes ahead of reads: while a request only reads (GET, HEAD), its thread runs at a lower CPU priority, so
# a payment being booked is not queued behind pages and dashboards when the cores are busy (docs/performance.md).
# With sync workers the thread is the worker's only one, so the whole request runs at that priority.
# Giving the priority back after the request needs root or RLIMIT_NICE (LimitNICE=+0 in
# deploy/kisht-web.service); without either, every request keeps the normal priority.
read_niceness = int(os.environ.get("GUNICORN_READ_NICENESS", 10))
_base_niceness = os.getpriority(os.PRIO_PROCESS, 0)


def priority_restorable(euid: int, nice_limit: int, base_niceness: int) -> bool:
    """Whether a thread may go back to `base_niceness` after lowering its priority (see setpriority(2))."""
    return euid == 0 or 20 - nice_limit <= base_niceness


_may_restore = priority_restorable(os.geteuid(), resource.getrlimit(resource.RLIMIT_NICE)[0], _base_niceness)


def when_ready(server):
    if read_niceness and not _may_restore:
        server.log.warning("GUNICORN_READ_NICENESS=%s is not applied: RLIMIT_NICE does not allow giving the "
                           "priority back after a read (LimitNICE=+0 on the service)", read_niceness)


def pre_request(worker, req):
    if read_niceness and _may_restore and req.method in ("GET", "HEAD"):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _base_niceness + read_niceness)
        req.niced = True


def post_request(worker, req, environ, resp):
    if getattr(req, "niced", False):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _base_niceness)
