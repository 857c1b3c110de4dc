"""The declared schedule: IST → UTC cron, and reconciliation with rq-scheduler on a real Redis."""
import os
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from rq import Queue
from rq.job import Job
from rq.utils import import_attribute

from jobs import schedule
from jobs.schedule import SCHEDULE, Scheduled, Scheduler, ist_to_utc, next_run, reconcile
from tests.jobs.helpers import REDIS_TEST_URL, fresh_runtime, keep_signals, redis_db  # noqa: F401 (fixtures)
from webapp.cli import cli

DAYEND = SCHEDULE[0]


@pytest.fixture()
def new_york():
    """The server's TZ set far from both UTC and IST, restored afterwards."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


@pytest.mark.parametrize("ist, utc", [
    ("15 0 * * *", "45 18 * * *"),  # 00:15 IST is 18:45 UTC the day before
    ("30 5 * * *", "0 0 * * *"),  # exactly midnight UTC
    ("29 5 * * *", "59 23 * * *"),
    ("0 6 * * *", "30 0 * * *"),  # no wrap
    ("45 23 * * *", "15 18 * * *"),
    ("15 0 * * 1-5", "45 18 * * 0,1,2,3,4"),  # weekdays IST: Sunday to Thursday evenings UTC
    ("0 0 * * 0", "30 18 * * 6"),
    ("0 9 * * 1,3", "30 3 * * 1,3"),  # no wrap: the days stay
    ("15 * * * *", "45 * * * *"),  # every hour: only the minute moves
])
def test_ist_cron_becomes_utc(ist, utc):
    assert ist_to_utc(ist) == utc


@pytest.mark.parametrize("ist", ["15 0 1 * *", "15 0 * 3 *", "*/5 0 * * *", "15 0-3 * * *", "15 0 * *", "60 0 * * *"])
def test_expressions_without_a_utc_form_are_refused(ist):
    with pytest.raises(ValueError):
        ist_to_utc(ist)


def test_conversion_and_next_run_do_not_depend_on_the_server_tz(new_york):
    assert time.tzname[0] == "EST"  # the TZ really changed
    assert ist_to_utc("15 0 * * *") == "45 18 * * *"
    now = datetime(2026, 3, 8, 12, 0, tzinfo=timezone.utc)  # the day New York moves its clocks
    assert next_run("45 18 * * *", now) == datetime(2026, 3, 8, 18, 45, tzinfo=timezone.utc)
    assert next_run("45 18 * * *", now.replace(hour=19)) == datetime(2026, 3, 9, 18, 45, tzinfo=timezone.utc)


def test_scheduled_time_in_redis_is_utc_whatever_the_server_tz(new_york, redis_db):
    reconcile(Scheduler(connection=redis_db), (DAYEND,))
    (job, when), = Scheduler(connection=redis_db).get_jobs(with_times=True)
    assert (when.hour, when.minute) == (18, 45)  # rq-scheduler alone would say 23:45 UTC here (18:45 New York)
    assert timedelta(0) < when - datetime.now(timezone.utc).replace(tzinfo=None) <= timedelta(days=1)


def scheduled(connection) -> dict[str, Job]:
    return {job.id: job for job in Scheduler(connection=connection).get_jobs()}


def test_starting_twice_keeps_exactly_one_job_per_declared_id(redis_db):
    first = reconcile(Scheduler(connection=redis_db))
    second = reconcile(Scheduler(connection=redis_db))  # a restart
    ids = [spec.id for spec in SCHEDULE]
    assert first.created == ids and second.created == [] and sorted(second.kept) == sorted(ids)
    jobs = scheduled(redis_db)
    assert sorted(jobs) == sorted(ids)
    assert redis_db.zcard(Scheduler.scheduled_jobs_key) == len(SCHEDULE)
    job = jobs[DAYEND.id]
    assert (job.func_name, job.origin, job.meta["cron_string"], job.timeout) == (
        "jobs.tasks.nightly", "dayend", "45 18 * * *", DAYEND.timeout)


def test_a_changed_declaration_replaces_the_old_one(redis_db):
    reconcile(Scheduler(connection=redis_db))
    moved = (replace(DAYEND, cron_ist="30 1 * * *"),)
    result = reconcile(Scheduler(connection=redis_db), moved)
    assert result.replaced == [DAYEND.id] and result.created == []
    jobs = scheduled(redis_db)
    assert list(jobs) == [DAYEND.id] and jobs[DAYEND.id].meta["cron_string"] == "0 20 * * *"
    on_default = (replace(DAYEND, queue="default"),)
    assert reconcile(Scheduler(connection=redis_db), on_default).replaced == [DAYEND.id]
    assert scheduled(redis_db)[DAYEND.id].origin == "default"


def test_an_undeclared_job_is_cancelled(redis_db):
    rq_scheduler = Scheduler(connection=redis_db)
    rq_scheduler.cron("0 3 * * *", func="jobs.tasks.dayend_catchup", id="old-report", queue_name="default")
    result = reconcile(Scheduler(connection=redis_db))
    assert result.cancelled == ["old-report"] and result.created == [spec.id for spec in SCHEDULE]
    assert sorted(scheduled(redis_db)) == sorted(spec.id for spec in SCHEDULE)
    assert not Job.exists("old-report", connection=redis_db)


def test_a_due_job_goes_to_its_queue_and_comes_back_at_the_next_utc_time(new_york, redis_db):
    rq_scheduler = Scheduler(connection=redis_db)
    reconcile(rq_scheduler, (DAYEND,))
    redis_db.zadd(Scheduler.scheduled_jobs_key, {DAYEND.id: int(time.time()) - 60})  # due a minute ago
    rq_scheduler.enqueue_jobs()
    assert Queue("dayend", connection=redis_db).job_ids == [DAYEND.id]
    (job, when), = rq_scheduler.get_jobs(with_times=True)
    assert (when.hour, when.minute) == (18, 45) and when > datetime.now(timezone.utc).replace(tzinfo=None)


def test_every_declared_function_is_a_job_on_its_queue():
    assert len({spec.id for spec in SCHEDULE}) == len(SCHEDULE)
    for spec in SCHEDULE:
        func = import_attribute(spec.func)
        assert func.path == spec.func and func.queue_name == spec.queue and func.timeout == spec.timeout
        ist_to_utc(spec.cron_ist)
    with pytest.raises(ValueError, match="share an id"):
        reconcile(None, SCHEDULE + SCHEDULE)


def test_kisht_scheduler_started_twice_schedules_once(redis_db, keep_signals, fresh_runtime, tmp_path):
    env = {"APP_ENV": "test", "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "REDIS_URL": REDIS_TEST_URL,
           "JOB_LOG_FILE": str(tmp_path / "jobs.log")}
    runner = CliRunner()
    for created in (len(SCHEDULE), 0):
        result = runner.invoke(cli, ["scheduler", "--burst"], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert f"created {created}" in result.output and "'15 0 * * *' IST ('45 18 * * *' UTC)" in result.output
    assert sorted(scheduled(redis_db)) == sorted(spec.id for spec in SCHEDULE)


def test_worker_and_scheduler_need_redis(tmp_path):
    env = {"APP_ENV": "test", "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "REDIS_URL": ""}
    for command in (["worker"], ["scheduler"]):
        result = CliRunner().invoke(cli, command, env=env)
        assert result.exit_code == 1 and "needs REDIS_URL" in result.output


def test_scheduled_is_plain_data():
    spec = Scheduled("x", "0 1 * * *", "jobs.tasks.dayend_catchup", "dayend", 60)
    assert spec.cron_utc == "30 19 * * *" and schedule.SCHEDULE[0].cron_ist == "15 0 * * *"
