"""Two real worker processes contend for one day-end: the Redis lock (or, without Redis, the database
guard) lets one run; the refusal is recorded; a killed worker's lock expires and its run is taken over."""
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
import redis
from sqlalchemy import create_engine, select, text

from tests import pg
from tests.conftest import loan_row, migrate
from webapp import clock, create_app
from webapp import db as kisht_db
from webapp.config import ROOT
from jobs import dayend as job
from webapp.models import CronRun, DayendPosition, Loan, User
from webapp.permissions import SystemActor
from webapp.services import dayend, flags, loans, org, payments, replay

REDIS_URL = "redis://127.0.0.1:6379/14"
LOANS = 200


@pytest.fixture(scope="module")
def database():
    url = pg.fresh_database("kisht_dayend_processes")
    app = create_app({"APP_ENV": "test", "DATABASE_URL": url, "REDIS_URL": ""})
    migrate(app)
    with app.app_context():
        with kisht_db.new_session() as session:
            system = SystemActor("test")
            org.create_branch(session, system, code="PUNE01", name="Pune Camp")
            org.create_user(session, system, username="col", role="collector", password="long-password-1",
                            branch_code="PUNE01")
            for n in range(LOANS):
                loans.create_loan(session, system, loan_row(loan_number=f"KLX{n:04d}"))
            session.commit()
    yield app, url
    app.extensions["kisht.engine"].dispose()


@pytest.fixture()
def fresh_redis():
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()


def start(url: str, day, redis_url: str = REDIS_URL, lock_ttl: int = 3) -> subprocess.Popen:
    # One loan per batch, one batch at a time: a run long enough for a second worker to meet it.
    env = {**os.environ, "APP_ENV": "test", "DATABASE_URL": url, "REDIS_URL": redis_url, "DAYEND_BATCH_SIZE": "1",
           "DAYEND_PARALLEL_BATCHES": "1", "JOB_LOCK_TTL_SECONDS": str(lock_ttl)}
    return subprocess.Popen([sys.executable, "-c", "from webapp.cli import main; main()", "dayend", "run", "--date",
                             day.isoformat(), "--force"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def runs(app, day):
    with app.app_context():
        with kisht_db.new_session() as session:
            return session.scalars(select(CronRun).where(CronRun.business_date == day).order_by(CronRun.attempt)).all()


def wait_running(app, day, timeout=60, batches_done=1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        current = [r for r in runs(app, day) if r.status == "RUNNING" and r.batches_done >= batches_done]
        if current:
            return current[0]
        time.sleep(0.05)
    raise AssertionError("the first worker never started its batches")


@contextmanager
def loans_held(url: str):
    """Hold a lock that a day-end batch's update of loans waits for (its run already opened and committed):
    the first worker keeps its job lock, renewed, for as long as this lasts, however fast the run is."""
    engine = create_engine(url)
    with engine.connect() as connection:
        with connection.begin():
            connection.execute(text("LOCK TABLE loans IN SHARE MODE"))
            yield
    engine.dispose()


def wait_for_job_lock(client, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if client.exists("kisht:lock:dayend"):
            return
        time.sleep(0.05)
    raise AssertionError("the first worker never took the job lock")


def test_second_worker_is_refused_while_the_first_holds_the_lock(database, fresh_redis):
    app, url = database
    day = clock.today_ist() - timedelta(days=1)
    with loans_held(url):
        first = start(url, day)
        wait_for_job_lock(fresh_redis)
        second = start(url, day)
        second_out = second.communicate(timeout=120)[0]
    first_out = first.communicate(timeout=120)[0]
    assert second.returncode == 1 and "lock is held by" in second_out, second_out
    assert first.returncode == 0 and "SUCCEEDED" in first_out, first_out
    statuses = {r.status for r in runs(app, day)}
    assert "SUCCEEDED" in statuses and "SKIPPED" in statuses
    assert fresh_redis.exists("kisht:lock:dayend") == 0  # released by its owner


def test_a_killed_workers_lock_expires_and_its_run_is_taken_over(database, fresh_redis):
    app, url = database
    day = clock.today_ist() - timedelta(days=2)
    victim = start(url, day)
    abandoned = wait_running(app, day)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert fresh_redis.exists("kisht:lock:dayend") == 1  # nobody released it: it lives until its TTL
    blocked = start(url, day)
    blocked_out = blocked.communicate(timeout=120)[0]
    # Refused by the lock, or, when this process took longer than the 3 s TTL to start (a loaded machine),
    # by the dead run's fresh heartbeat: either way no second run starts.
    assert blocked.returncode == 1 and ("lock is held by" in blocked_out or "still running" in blocked_out), blocked_out
    time.sleep(6.5)  # the 3 s lock expires; the run's heartbeat is older than twice that
    assert fresh_redis.exists("kisht:lock:dayend") == 0
    successor = start(url, day)
    output = successor.communicate(timeout=120)[0]
    assert successor.returncode == 0 and "SUCCEEDED" in output, output
    by_id = {r.id: r for r in runs(app, day)}
    assert by_id[abandoned.id].status == "FAILED" and "abandoned" in by_id[abandoned.id].error


def test_without_redis_the_database_guard_refuses_a_second_run(database):
    app, url = database
    day = clock.today_ist() - timedelta(days=3)
    with loans_held(url):  # the first run stays RUNNING, its heartbeat fresh for the 120 s of a 60 s TTL
        first = start(url, day, redis_url="", lock_ttl=60)
        wait_running(app, day, batches_done=0)
        second = start(url, day, redis_url="", lock_ttl=60)
        second_out = second.communicate(timeout=120)[0]
    first.communicate(timeout=120)
    assert second.returncode == 1 and "still running" in second_out, second_out
    assert first.returncode == 0


def day_rows(app, day):
    with app.app_context():
        with kisht_db.new_session() as session:
            return session.execute(select(DayendPosition.loan_id, DayendPosition.dpd, DayendPosition.asset_class,
                                          DayendPosition.bucket, DayendPosition.overdue_paise,
                                          DayendPosition.overdue_since, DayendPosition.class_since)
                                   .where(DayendPosition.business_date == day)
                                   .order_by(DayendPosition.loan_id)).all()


def run_inline(app, day, *, parallel: int, force: bool = False, progress=None):
    app.config.update(DAYEND_BATCH_SIZE=7, DAYEND_PARALLEL_BATCHES=parallel)
    with app.app_context():
        return job.run_dayend(day, force=force, progress=progress)


def test_parallel_batches_give_the_rows_of_one_at_a_time(database):
    app, _ = database
    day = clock.today_ist() - timedelta(days=4)
    parallel = run_inline(app, day, parallel=2)
    assert parallel.status == "SUCCEEDED" and parallel.loans_processed == LOANS and parallel.batches_done == 29
    together = day_rows(app, day)
    serial = run_inline(app, day, parallel=1, force=True)
    assert serial.status == "SUCCEEDED" and day_rows(app, day) == together and len(together) == LOANS
    assert {r.asset_class for r in together} != {"STANDARD"}  # the loans are overdue: real work was compared


def test_a_kill_switch_flipped_during_parallel_batches_stops_them_cleanly(database):
    app, _ = database
    day = clock.today_ist() - timedelta(days=5)

    def switch_off_after_three(done, _total):
        if done == 3:
            with kisht_db.new_session() as session:
                flags.set_flag(session, SystemActor("test"), "CRON_ENABLED", False, reason="test: stop mid-run")
                session.commit()

    try:
        run = run_inline(app, day, parallel=2, progress=switch_off_after_three)
    finally:
        with app.app_context():
            with kisht_db.new_session() as session:
                flags.set_flag(session, SystemActor("test"), "CRON_ENABLED", True, reason="test: back on")
                session.commit()
    assert run.status == "FAILED" and "CRON_ENABLED was switched off" in run.error
    # The batch running beside the third may finish; none starts after the switch is seen.
    assert 3 <= run.batches_done <= 4 and len(day_rows(app, day)) == run.loans_processed < LOANS
    again = run_inline(app, day, parallel=2)
    assert again.status == "SUCCEEDED" and len(day_rows(app, day)) == LOANS


def test_a_batch_failing_in_parallel_fails_the_run_and_a_rerun_completes(database, monkeypatch):
    app, _ = database
    day = clock.today_ist() - timedelta(days=6)
    real = dayend.process_batch

    def fail_third(session, business_date, low, high, statements):
        if low == 15:  # the third range of seven loans from id 1
            raise RuntimeError("connection lost")
        return real(session, business_date, low, high, statements)

    monkeypatch.setattr(dayend, "process_batch", fail_third)
    failed = run_inline(app, day, parallel=2)
    assert failed.status == "FAILED" and "connection lost" in failed.error and failed.batches_done < 29
    monkeypatch.setattr(dayend, "process_batch", real)
    rerun = run_inline(app, day, parallel=2)
    assert rerun.status == "SUCCEEDED" and rerun.attempt == 2 and len(day_rows(app, day)) == LOANS


def test_a_payment_booked_while_its_batch_runs_keeps_the_position_it_stored(database):
    """Day-end reads a batch, then writes it: a payment committed in between has already stored the loan's
    newer position (its own replay), which the batch must not overwrite with what it read before."""
    app, _ = database
    day = clock.last_business_date()
    with app.app_context():
        with kisht_db.new_session() as batch, kisht_db.new_session() as desk:
            loan = desk.scalar(select(Loan).where(Loan.loan_number == "KLX0199"))
            statements = dayend.statements_for(batch)
            dayend.ensure_partition(batch, day)
            dayend.compute_batch(batch, day, loan.id, loan.id + 1, statements)
            before = loan.overdue_paise
            payments.record_payment(desk, desk.scalar(select(User).where(User.username == "col")), "KLX0199",
                                    {"amount": "8884.88", "mode": "UPI", "reference": "515151515151"})
            desk.commit()
            stored = dayend.store_batch(batch, day, loan.id, loan.id + 1, statements)
            batch.commit()
        with kisht_db.new_session() as session:
            loan = session.get(Loan, loan.id)
            live = replay.live_position(session, loan)
            history = session.scalar(select(DayendPosition).where(DayendPosition.loan_id == loan.id,
                                                                  DayendPosition.business_date == day))
    assert stored.loans == 1 and history is not None  # the batch did its work: the official row for the day
    assert loan.overdue_paise == live.overdue_paise == before - 888_488
    assert (loan.overdue_since, loan.asset_class, loan.bucket) == (live.overdue_since, live.asset_class, live.bucket)
