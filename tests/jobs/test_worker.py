"""Jobs on a real Redis, run by a real RQ worker against a database of each backend."""
import time
from datetime import date

import pytest
from click.testing import CliRunner
from rq import Queue, Worker
from rq.job import Job
from sqlalchemy import select

from jobs import queue, runtime, tasks
from jobs.schedule import SCHEDULE, Scheduler, reconcile
from tests.jobs.helpers import (REDIS_TEST_URL, fresh_runtime, keep_signals, redis_db, scratch_app,  # noqa: F401
                                scratch_url, seed)
from webapp import clock, db
from webapp.cli import cli
from webapp.models import CronRun


def runs(app) -> list[CronRun]:
    with app.app_context():
        with db.new_session() as session:
            return list(session.scalars(select(CronRun).order_by(CronRun.id)))


def work(connection, *names: str) -> None:
    """The worker `kisht worker` runs (it forks a work horse per job), until the queues are empty."""
    Worker([Queue(name, connection=connection) for name in names], connection=connection).work(burst=True)


def test_a_queued_dayend_runs_on_a_worker(scratch_url, tmp_path, redis_db, keep_signals, fresh_runtime):
    app = scratch_app(scratch_url, tmp_path)
    seed(app)
    yesterday = clock.last_business_date()
    with app.app_context():
        queued = queue.enqueue(tasks.dayend_for_date, yesterday.isoformat())
    assert queued.job_id and not queued.ran_inline and queued.queue == "dayend"
    runtime.set_app(app)  # as `kisht worker` does: one app per worker process, inherited by each horse
    work(redis_db, "dayend")

    (run,) = runs(app)
    assert (run.status, run.business_date, run.loans_processed, run.batches_done) == ("SUCCEEDED", yesterday, 2, 1)
    job = Job.fetch(queued.job_id, connection=redis_db)
    assert job.get_status() == "finished" and job.return_value()["status"] == "SUCCEEDED"
    assert job.timeout == tasks.DAYEND_TIMEOUT and job.result_ttl == queue.DEFAULT_RESULT_TTL
    log = (tmp_path / "logs" / "jobs.log").read_text()
    assert f"day-end {yesterday} started" in log and f"day-end {yesterday} succeeded" in log
    assert redis_db.exists("kisht:lock:dayend") == 0  # released by its owner


def test_the_scheduled_catchup_runs_from_scheduler_to_worker(scratch_url, tmp_path, redis_db, keep_signals,
                                                             fresh_runtime):
    app = scratch_app(scratch_url, tmp_path)
    seed(app, loan_count=1)
    rq_scheduler = Scheduler(connection=redis_db)
    reconcile(rq_scheduler, SCHEDULE[:1])
    redis_db.zadd(Scheduler.scheduled_jobs_key, {SCHEDULE[0].id: int(time.time()) - 1})  # 00:15 IST has come
    rq_scheduler.enqueue_jobs()
    runtime.set_app(app)
    work(redis_db, "dayend")

    chain = runs(app)  # day-end catch-up, then scoring and escalation on the latest date
    assert [(r.job, r.status) for r in chain] == [("dayend", "SUCCEEDED"), ("scoring", "SUCCEEDED"),
                                                 ("escalation", "SUCCEEDED")]
    assert chain[0].business_date == clock.last_business_date()
    job = Job.fetch(SCHEDULE[0].id, connection=redis_db)
    assert job.get_status() == "finished" and job.return_value()[0]["status"] == "SUCCEEDED"
    assert [j.id for j in rq_scheduler.get_jobs()] == [SCHEDULE[0].id]  # still scheduled, for tomorrow


def test_kisht_worker_burst_works_the_queue(scratch_url, tmp_path, redis_db, keep_signals, fresh_runtime):
    app = scratch_app(scratch_url, tmp_path)
    seed(app, loan_count=1)
    day = clock.last_business_date()
    with app.app_context():
        queue.enqueue(tasks.dayend_for_date, day.isoformat())
        queue.enqueue(tasks.dayend_for_date, day.isoformat(), force=True)
    env = {"APP_ENV": "test", "DATABASE_URL": scratch_url, "REDIS_URL": REDIS_TEST_URL,
           "JOB_LOG_FILE": str(tmp_path / "worker.log")}
    result = CliRunner().invoke(cli, ["worker", "--queues", "dayend", "--burst"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert [(r.attempt, r.status, r.forced) for r in runs(app)] == [(1, "SUCCEEDED", False), (2, "SUCCEEDED", True)]
    assert Queue("dayend", connection=redis_db).count == 0
    bad = CliRunner().invoke(cli, ["worker", "--queues", "nightly", "--burst"], env=env)
    assert bad.exit_code == 2 and "the queues are dayend, default" in bad.output


def test_embedded_enqueue_runs_in_process(scratch_url, tmp_path, fresh_runtime):
    app = scratch_app(scratch_url, tmp_path, redis_url="")
    seed(app, loan_count=1)
    day = clock.last_business_date()
    with app.app_context():
        done = queue.enqueue(tasks.dayend_for_date, day.isoformat())
    assert done.ran_inline and done.job_id is None and done.result["status"] == "SUCCEEDED"
    assert [r.status for r in runs(app)] == ["SUCCEEDED"]


@pytest.fixture()
def run_cli(scratch_url, tmp_path, fresh_runtime):
    env = {"APP_ENV": "test", "DATABASE_URL": scratch_url, "REDIS_URL": "", "JOB_LOG_FILE": str(tmp_path / "j.log")}
    app = scratch_app(scratch_url, tmp_path, redis_url="")
    seed(app, loan_count=1)

    def invoke(*args, **extra_env):
        return CliRunner().invoke(cli, ["jobs", "run", *args], env={**env, **extra_env}, catch_exceptions=False)

    invoke.app = app
    return invoke


def test_kisht_jobs_run(run_cli, tmp_path):
    yesterday = clock.last_business_date()
    earlier = date.fromordinal(yesterday.toordinal() - 3)
    one = run_cli("dayend", "--date", earlier.isoformat())
    assert one.exit_code == 0 and f"day-end {earlier} attempt 1: SUCCEEDED" in one.output
    catchup = run_cli("dayend")  # the two dates after it, up to yesterday
    assert catchup.exit_code == 0 and catchup.output.count("SUCCEEDED") == 3
    assert run_cli("dayend").output.startswith("dayend: nothing to run")
    again = run_cli("dayend", "--date", earlier.isoformat())
    assert again.exit_code == 1 and "SKIPPED" in again.output and "already succeeded" in again.output
    assert [r.business_date for r in runs(run_cli.app) if r.status == "SUCCEEDED"] == [
        date.fromordinal(earlier.toordinal() + n) for n in range(4)]
    assert f"day-end {yesterday} succeeded" in (tmp_path / "j.log").read_text()  # the job log, not only the screen


def test_kisht_jobs_run_refusals(run_cli):
    future = run_cli("dayend", "--date", clock.today_ist().isoformat())
    assert future.exit_code == 1 and "date" in future.output
    assert run_cli("dayend", "--date", "2026-02-30").exit_code == 2
    assert run_cli("no-such-job").exit_code == 2
    switched_off = run_cli("dayend", CRON_ENABLED="off")
    assert switched_off.exit_code == 1 and "CRON_ENABLED is off" in switched_off.output
