"""Shared by the job tests: a Redis database of their own, and a scratch database other processes can see."""
from __future__ import annotations

import os
import signal

import pytest
import redis
from sqlalchemy import create_engine, text

from jobs import runtime
from tests import pg
from tests.conftest import PASSWORD, loan_row, migrate
from webapp import create_app, db
from webapp.permissions import SystemActor
from webapp.services import loans, org

REDIS_TEST_URL = "redis://127.0.0.1:6379/15"  # flushed by these tests; nothing else uses it


@pytest.fixture()
def redis_db():
    client = redis.Redis.from_url(REDIS_TEST_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture()
def keep_signals():
    """RQ's worker and scheduler install SIGINT/SIGTERM handlers; give pytest its own back."""
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


@pytest.fixture()
def fresh_runtime(monkeypatch):
    """No app left over from another test in jobs.runtime, and the job log as it was afterwards."""
    monkeypatch.setattr(runtime, "_app", None)
    monkeypatch.setattr(runtime, "_app_pid", None)
    handlers, propagate, level = list(runtime.log.handlers), runtime.log.propagate, runtime.log.level
    yield
    for handler in runtime.log.handlers:
        if handler not in handlers:
            handler.close()
    runtime.log.handlers[:], runtime.log.propagate, runtime.log.level = handlers, propagate, level


@pytest.fixture()
def scratch_url(backend, tmp_path):
    """A database of its own (the `db` fixture's transaction is invisible to a worker), dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'jobs.db'}"
        return
    name = f"kisht_jobs_{os.getpid()}"  # two test runs on one machine must not drop each other's
    yield pg.fresh_database(name)
    server = create_engine(f"{pg.SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    server.dispose()


def scratch_app(url: str, tmp_path, redis_url: str = REDIS_TEST_URL):
    app = create_app({"APP_ENV": "test", "DATABASE_URL": url, "REDIS_URL": redis_url,
                      "JOB_LOG_FILE": str(tmp_path / "logs" / "jobs.log")})
    migrate(app)
    return app


def seed(app, loan_count: int = 2) -> None:
    """A branch, a collector, an admin and a few loans, committed."""
    system = SystemActor("test")
    with app.app_context():
        session = db.new_session()
        org.create_branch(session, system, code="PUNE01", name="Pune Camp")
        org.create_user(session, system, username="col", role="collector", password=PASSWORD, name="COL",
                        branch_code="PUNE01")
        org.create_user(session, system, username="adm", role="admin", password=PASSWORD, name="ADM")
        for number in range(1, loan_count + 1):
            loans.create_loan(session, system, loan_row(loan_number=f"KL{number}"))
        session.commit()
        session.close()
