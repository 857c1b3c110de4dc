"""RQ queues, the job decorator, and `enqueue`, which works with Redis and without it.

With REDIS_URL set, `enqueue(func, *args)` puts the call on the function's queue for `kisht worker`.
Without it (embedded mode, development only) the call runs here and now, in this process.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import wraps
from typing import Any, Callable

import redis
from flask import current_app, g, has_request_context
from rq import Queue

from jobs import runtime

QUEUES = ("dayend", "default")  # a worker listens to these, in this order, unless told otherwise
DEFAULT_TIMEOUT = 30 * 60
DEFAULT_RESULT_TTL = 7 * 24 * 3600  # keep outcomes a week, for `rq info` and the logs


def connection(url: str | None = None) -> redis.Redis:
    url = url or current_app.config["REDIS_URL"]
    if not url:
        raise RuntimeError("REDIS_URL is not set (embedded mode has no queues)")
    return redis.Redis.from_url(url)


def get_queue(name: str, conn: redis.Redis | None = None) -> Queue:
    if name not in QUEUES:
        raise ValueError(f"unknown queue {name!r}; the queues are {', '.join(QUEUES)}")
    return Queue(name, connection=conn or connection())


def job(queue: str = "default", *, timeout: int = DEFAULT_TIMEOUT, result_ttl: int = DEFAULT_RESULT_TTL):
    """Declare a job: which queue it goes to, how long it may run, how long its outcome is kept.

    The function runs inside an app context: the caller's when there is one, else the process's app.
    """
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}")

    def decorate(func: Callable) -> Callable:
        @wraps(func)
        def run(*args, **kwargs):
            with runtime.app_context():
                return func(*args, **kwargs)

        run.queue_name, run.timeout, run.result_ttl = queue, timeout, result_ttl
        run.path = f"{func.__module__}.{func.__qualname__}"
        return run

    return decorate


@dataclass(frozen=True)
class Enqueued:
    job_id: str | None  # the RQ job, when queued
    queue: str
    result: Any = None  # the outcome, when it ran in-process

    @property
    def ran_inline(self) -> bool:
        return self.job_id is None


def enqueue(func: Callable, *args, **kwargs) -> Enqueued:
    """Queue a declared job on Redis, or, in embedded mode, run it now and return its outcome."""
    if not current_app.config["REDIS_URL"]:
        if has_request_context() and "db_session" in g:
            # The job opens its own sessions and should see the database as a worker would: end this
            # request's transaction first (on SQLite a writing request also holds the write lock,
            # which the job would otherwise wait on until it times out).
            g.db_session.commit()
        return Enqueued(None, func.queue_name, func(*args, **kwargs))
    queued = get_queue(func.queue_name).enqueue(func, *args, job_timeout=func.timeout, result_ttl=func.result_ttl,
                                                **kwargs)
    return Enqueued(queued.id, func.queue_name)
