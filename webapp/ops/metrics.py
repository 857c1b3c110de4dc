"""Prometheus metrics at /metrics.

Two kinds, so that several gunicorn workers give one consistent answer:

* **Per request** (latency histogram, request and error counters, this process's DB pool): prometheus_client
  metrics. Under gunicorn, gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR before the app is imported, so
  each worker writes them to files there and the scrape adds up every worker's files (prometheus_client's
  multiprocess mode). Without that variable (`kisht demo up`, tests) they live in this process.
* **At scrape time** (payments booked today, day-end, queues, failed jobs, backups, database
  connections, CPU, memory, disk): read by `KishtCollector` from the database, Redis and the OS when
  Prometheus asks, so they do not depend on which worker answers.

Access: a client whose address is in METRICS_ALLOW (default: this machine only), or one sending
``Authorization: Bearer <METRICS_TOKEN>``. Anyone else gets 403.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import os

from flask import Blueprint, Response, current_app, jsonify, request

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # set but not created (an inherited variable): create it
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest, multiprocess)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily  # noqa: E402

from webapp import db
from webapp.permissions import public

bp = Blueprint("metrics", __name__)
log = logging.getLogger("kisht.metrics")

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
REQUEST_LATENCY = Histogram("kisht_http_request_duration_seconds", "Time to answer a request, per endpoint",
                            ["endpoint", "method"], buckets=LATENCY_BUCKETS)
REQUESTS = Counter("kisht_http_requests_total", "Requests answered, per endpoint and status",
                   ["endpoint", "method", "status"])
ERRORS = Counter("kisht_errors_total", "Log lines at ERROR or above, per logger", ["logger"])
POOL_CHECKED_OUT = Gauge("kisht_db_pool_checked_out", "Database connections in use by the app's pools",
                         multiprocess_mode="livesum")
POOL_SIZE = Gauge("kisht_db_pool_size", "Database connections the app's pools keep open (PostgreSQL)",
                  multiprocess_mode="livesum")


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def observe_request(endpoint: str, method: str, status: int, seconds: float) -> None:
    REQUEST_LATENCY.labels(endpoint, method).observe(seconds)
    REQUESTS.labels(endpoint, method, str(status)).inc()
    try:
        pool = db.engine().pool
        if hasattr(pool, "checkedout"):
            POOL_CHECKED_OUT.set(pool.checkedout())
        if hasattr(pool, "size"):
            POOL_SIZE.set(pool.size())
    except Exception:  # never let a gauge break a response
        pass


class _ErrorCounter(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)

    def emit(self, record: logging.LogRecord) -> None:
        ERRORS.labels(".".join(record.name.split(".")[:2]) or "root").inc()


def init_app(app) -> None:
    """Count ERROR lines of the whole process (the job logger does not propagate, so it gets its own)."""
    for name in ("", "kisht.jobs"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, _ErrorCounter) for h in logger.handlers):
            logger.addHandler(_ErrorCounter())


def _allowed() -> str | None:
    """None when the caller may read metrics, else why not."""
    token = current_app.config["METRICS_TOKEN"]
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), token):
        return None
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
        for network in current_app.config["METRICS_ALLOW"].split(","):
            if network.strip() and address in ipaddress.ip_network(network.strip(), strict=False):
                return None
    except ValueError:
        pass
    return "a bearer METRICS_TOKEN or an address in METRICS_ALLOW is required"


@bp.get("/metrics")
@public
def metrics():
    refusal = _allowed()
    if refusal:
        return jsonify({"success": False, "data": None, "meta": {},
                        "error": {"code": "forbidden", "message": refusal, "fields": {}}}), 403
    collector = KishtCollector(current_app._get_current_object())
    scraped = CollectorRegistry(auto_describe=False)
    scraped.register(collector)
    if multiprocess_mode():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry) + generate_latest(scraped)
    else:
        body = generate_latest(REGISTRY) + generate_latest(scraped)
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


def _gauge(name: str, documentation: str, value, labels: dict | None = None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labels) if labels else None)
    if value is not None:
        if labels:
            family.add_metric(list(labels.values()), float(value))
        else:
            family.add_metric([], float(value))
    return family


class KishtCollector:
    """Readings taken when Prometheus scrapes (see the module docstring)."""

    def __init__(self, app):
        self.app = app

    def describe(self):
        return []

    def collect(self):
        from webapp.services import backup, system

        config = self.app.config
        up = GaugeMetricFamily("kisht_dependency_up", "1 when the dependency answered this scrape", labels=["dependency"])

        host = system.host()
        yield _gauge("kisht_host_cpu_count", "CPUs of the host", host["cpu_count"])
        cpu = CounterMetricFamily("kisht_host_cpu_seconds", "Host CPU time by mode", labels=["mode"])
        for mode, seconds in host["cpu_seconds"].items():
            cpu.add_metric([mode], seconds)
        yield cpu
        yield _gauge("kisht_host_load1", "Host load average over one minute", host["load1"])
        yield _gauge("kisht_host_memory_total_bytes", "Host memory", host["memory_total"])
        yield _gauge("kisht_host_memory_available_bytes", "Host memory available", host["memory_available"])
        yield _gauge("kisht_app_resident_memory_bytes", "Resident memory of the app's processes", host["app_rss"])
        app_cpu = CounterMetricFamily("kisht_app_cpu_seconds", "CPU time of the app's processes")
        app_cpu.add_metric([], host["app_cpu_seconds"])
        yield app_cpu

        free = GaugeMetricFamily("kisht_disk_free_bytes", "Free bytes on the file system", labels=["path"])
        total = GaugeMetricFamily("kisht_disk_total_bytes", "Size of the file system", labels=["path"])
        for disk in system.disks(config):
            if disk["ok"]:
                free.add_metric([disk["role"]], disk["free"])
                total.add_metric([disk["role"]], disk["total"])
        yield free
        yield total

        with self.app.app_context():
            engine = db.engine()
            database = system.database(engine)
            up.add_metric(["database"], 1 if database["ok"] else 0)
            if database.get("connections") is not None:
                yield _gauge("kisht_db_connections", "Connections open on the PostgreSQL server",
                             database["connections"])
                yield _gauge("kisht_db_max_connections", "PostgreSQL max_connections", database["max_connections"])
                yield _gauge("kisht_db_size_bytes", "Size of the database", database["size_bytes"])
            if database["ok"]:
                yield from self._from_database()
            queues = system.queues(config["REDIS_URL"])
            up.add_metric(["redis"], 1 if queues["ok"] else 0)
            depth = GaugeMetricFamily("kisht_queue_depth", "Jobs waiting in the queue", labels=["queue"])
            failed = GaugeMetricFamily("kisht_queue_failed_jobs", "Jobs in the queue's failed registry",
                                       labels=["queue"])
            for row in queues["queues"]:
                depth.add_metric([row["name"]], row["queued"])
                failed.add_metric([row["name"]], row["failed"])
            yield depth
            yield failed
            yield _gauge("kisht_workers", "RQ workers registered in Redis", queues["workers"])

            backups = backup.status(config)
            yield _gauge("kisht_backups", "Backups in BACKUP_DIR", backups["count"])
            if backups["latest"]:
                latest = backups["latest"]
                yield _gauge("kisht_backup_last_success_timestamp_seconds", "When the newest backup was taken",
                             latest.created_at.timestamp())
                yield _gauge("kisht_backup_last_size_bytes", "Size of the newest backup", latest.size)
            if backups["last_verified"]:
                verified = backups["last_verified"]
                yield _gauge("kisht_backup_last_verify_timestamp_seconds", "When a backup was last verified",
                             verified.verified_at.timestamp())
                yield _gauge("kisht_backup_last_verify_ok", "1 when the last verification passed",
                             1 if verified.verified_ok else 0)
        yield up

    def _from_database(self):
        from webapp.services import system

        session = db.new_session()
        try:
            payments = system.payments_today(session)
            yield _gauge("kisht_payments_booked_today", "Payments posted today (IST)", payments["count"])
            yield _gauge("kisht_payments_booked_today_rupees", "Amount of the payments posted today (IST)",
                         payments["amount_paise"] / 100)
            runs = system.last_runs(session)
            succeeded = runs["succeeded"]
            if succeeded is not None:
                yield _gauge("kisht_dayend_last_success_timestamp_seconds", "When the last successful day-end finished",
                             (succeeded.finished_at or succeeded.started_at).timestamp())
                yield _gauge("kisht_dayend_last_success_business_date_seconds",
                             "Start (00:00 IST) of the business date of the last successful day-end",
                             system.business_date_start(succeeded.business_date).timestamp())
                yield _gauge("kisht_dayend_last_duration_seconds", "Duration of the last successful day-end",
                             succeeded.duration_seconds or 0)
                yield _gauge("kisht_dayend_last_loans_processed", "Loans in the last successful day-end",
                             succeeded.loans_processed)
            latest = runs["latest"]
            yield _gauge("kisht_dayend_last_run_failed", "1 when the latest day-end attempt failed",
                         1 if latest is not None and latest.status == "FAILED" else 0)
            from webapp.services import integrity

            check = integrity.latest(session)
            if check is not None:
                yield _gauge("kisht_integrity_last_run_ok", "1 when the latest integrity check passed",
                             1 if check.passed else 0)
                yield _gauge("kisht_integrity_last_run_timestamp_seconds", "When the latest integrity check finished",
                             check.finished_at.timestamp())
            failed = GaugeMetricFamily("kisht_job_runs_failed_24h", "Failed job runs started in the last 24 hours",
                                       labels=["job"])
            counts = system.failed_runs_since(session, 24)
            for job in sorted(set(counts) | {"dayend", "scoring", "escalation", "reminders"}):
                failed.add_metric([job], counts.get(job, 0))
            yield failed
        finally:
            session.close()
