"""What the machine and its dependencies look like right now: read by /metrics and the admin system page.

Every reading is taken at the moment it is asked for (from the OS, the database and Redis), so it is the
same whichever gunicorn worker answers. Each function catches its own failures and reports them as
``{"ok": False, "detail": ...}``: a status page must render when a dependency is down.
"""
from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from pathlib import Path

import psutil
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from webapp import clock
from webapp.models import CronRun, Payment

log = logging.getLogger("kisht.system")
DAYEND_JOB = "dayend"


def _app_processes() -> list[psutil.Process]:
    """This process, or under gunicorn the master and all its workers."""
    me = psutil.Process()
    try:
        parent = me.parent()
        if parent is not None and "gunicorn" in " ".join(parent.cmdline()):
            return [parent, *parent.children()]
    except psutil.Error:
        pass
    return [me]


def host() -> dict:
    memory = psutil.virtual_memory()
    rss, cpu_seconds = 0, 0.0
    for process in _app_processes():
        try:
            rss += process.memory_info().rss
            times = process.cpu_times()
            cpu_seconds += times.user + times.system
        except psutil.Error:
            continue
    times = psutil.cpu_times()
    return {
        "cpu_count": psutil.cpu_count() or 1,
        "cpu_percent": psutil.cpu_percent(interval=0.1),
        "cpu_seconds": {"user": times.user, "system": times.system, "idle": times.idle,
                        "iowait": getattr(times, "iowait", 0.0)},
        "load1": os.getloadavg()[0],
        "memory_total": memory.total, "memory_available": memory.available, "memory_percent": memory.percent,
        "app_rss": rss, "app_cpu_seconds": cpu_seconds,
    }


def data_path(config) -> Path:
    url = config["DATABASE_URL"]
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).parent
    from webapp.config import INSTANCE_DIR

    return INSTANCE_DIR


def disks(config) -> list[dict]:
    """Free and total bytes of the file systems holding the data, backups, logs and evidence."""
    paths = {"data": data_path(config), "backups": Path(config["BACKUP_DIR"]), "logs": Path(config["LOG_DIR"]),
             "evidence": Path(config["EVIDENCE_DIR"])}
    result = []
    for role, path in paths.items():
        probe = path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent  # not created yet: the file system it will live on
        try:
            usage = psutil.disk_usage(str(probe))
            result.append({"role": role, "path": str(path), "ok": True, "free": usage.free, "total": usage.total,
                           "used_percent": usage.percent})
        except OSError as error:
            result.append({"role": role, "path": str(path), "ok": False, "detail": type(error).__name__})
    return result


def database(engine) -> dict:
    """Backend, connections in use against the server's limit (PostgreSQL), and this process's pool."""
    pool = engine.pool
    info: dict = {"ok": True, "backend": engine.dialect.name,
                  "pool_size": pool.size() if hasattr(pool, "size") else None,
                  "pool_checked_out": pool.checkedout() if hasattr(pool, "checkedout") else None}
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                info["connections"] = connection.scalar(text("SELECT count(*) FROM pg_stat_activity"))
                info["max_connections"] = int(connection.scalar(text("SHOW max_connections")))
                info["size_bytes"] = connection.scalar(text("SELECT pg_database_size(current_database())"))
            else:
                connection.execute(text("SELECT 1"))
    except Exception as error:  # unreachable: reported, not raised
        log.warning("system: database unreachable: %s", type(error).__name__)
        info.update(ok=False, detail="unreachable")
    return info


def queues(redis_url: str) -> dict:
    """Queued and failed jobs per queue, and the workers RQ knows (Redis mode only)."""
    if not redis_url:
        return {"ok": True, "mode": "embedded", "queues": [], "workers": 0}
    import redis
    from rq import Queue, Worker
    from rq.registry import FailedJobRegistry, StartedJobRegistry

    from jobs.queue import QUEUES

    try:
        connection = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=2)
        rows = []
        for name in QUEUES:
            queue = Queue(name, connection=connection)
            rows.append({"name": name, "queued": queue.count,
                         "started": StartedJobRegistry(queue=queue).count,
                         "failed": FailedJobRegistry(queue=queue).count})
        return {"ok": True, "mode": "redis", "queues": rows, "workers": Worker.count(connection=connection)}
    except redis.RedisError as error:
        log.warning("system: redis unreachable: %s", type(error).__name__)
        return {"ok": False, "mode": "redis", "queues": [], "workers": 0, "detail": "unreachable"}


def last_runs(session: Session, job: str = DAYEND_JOB) -> dict:
    """The latest succeeded run of `job`, the latest run whatever its outcome, and failures in 24 hours."""
    succeeded = session.scalars(select(CronRun).where(CronRun.job == job, CronRun.status == "SUCCEEDED")
                                .order_by(CronRun.business_date.desc(), CronRun.finished_at.desc()).limit(1)).first()
    latest = session.scalars(select(CronRun).where(CronRun.job == job)
                             .order_by(CronRun.started_at.desc(), CronRun.id.desc()).limit(1)).first()
    return {"succeeded": succeeded, "latest": latest}


def failed_runs_since(session: Session, hours: int = 24) -> dict[str, int]:
    since = clock.now() - timedelta(hours=hours)
    rows = session.execute(select(CronRun.job, func.count()).where(CronRun.status == "FAILED",
                                                                   CronRun.started_at >= since)
                           .group_by(CronRun.job)).all()
    return {job: count for job, count in rows}


def payments_today(session: Session) -> dict:
    """Payments booked (POSTED) with a creation time in today's IST date: count and amount in paise."""
    start = clock.start_of_ist_day(clock.today_ist())
    count, paise = session.execute(select(func.count(), func.coalesce(func.sum(Payment.amount_paise), 0))
                                   .where(Payment.created_at >= start, Payment.status == "POSTED")).one()
    return {"count": int(count), "amount_paise": int(paise)}


def business_date_start(day) -> datetime:
    return clock.start_of_ist_day(day)
