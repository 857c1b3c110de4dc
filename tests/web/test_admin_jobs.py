"""Admin screens: day-end runs (history, lock, run a date) and the kill switches."""
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from jobs.locks import PREFIX
from tests.conftest import csrf_token
from tests.jobs.helpers import REDIS_TEST_URL, redis_db  # noqa: F401 (fixture)
from webapp import clock
from webapp.models import AuditEntry, CronRun, FeatureFlag

NOT_ADMIN = ("col", "mgr", "fin", "leg")


def post(client, url, data, page="/admin/jobs", htmx=True):
    token = csrf_token(client, page)
    return client.post(url, data={**data, "csrf_token": token}, headers={"HX-Request": "true"} if htmx else {})


def add_run(db, day, status, attempt=1, error=None, minutes_ago=10):
    started = clock.now() - timedelta(minutes=minutes_ago)
    run = CronRun(job="dayend", business_date=day, attempt=attempt, status=status, started_at=started,
                  finished_at=started + timedelta(seconds=95), loans_processed=1200, batches_done=3,
                  batches_total=3 if status == "SUCCEEDED" else 5, error=error)
    db.add(run)
    db.flush()
    return run


# ---------------------------------------------------------------- who may

def test_only_an_admin_may_use_the_jobs_and_kill_switch_screens(login_as, users):
    for username in NOT_ADMIN:
        client = login_as(username)
        token = csrf_token(client, "/")
        for url in ("/admin/jobs", "/admin/flags"):
            assert client.get(url).status_code == 403, (username, url)
        for url in ("/admin/jobs/run", "/admin/flags/CRON_ENABLED"):
            assert client.post(url, data={"csrf_token": token}).status_code == 403, (username, url)
    admin = login_as("adm")
    assert admin.get("/admin/jobs").status_code == 200 and admin.get("/admin/flags").status_code == 200
    nav = admin.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/jobs"' in nav and 'href="/admin/flags"' in nav
    assert 'href="/admin/jobs"' not in login_as("fin").get("/", follow_redirects=True).get_data(as_text=True)


# ---------------------------------------------------------------- day-end runs

def test_runs_are_listed_newest_first_with_failed_ones_marked(login_as, db, users):
    day = clock.last_business_date()
    add_run(db, day - timedelta(days=1), "SUCCEEDED", minutes_ago=60)
    add_run(db, day, "FAILED", error="OperationalError: server closed the connection", minutes_ago=5)
    html = login_as("adm").get("/admin/jobs").get_data(as_text=True)
    assert html.index("OperationalError") < html.index(">SUCCEEDED<")  # newest first
    failed_row = html[html.index('<tr class="run-failed"'):]
    assert "FAILED" in failed_row[:800] and "3 / 5" in failed_row[:1200] and "1 min 35 s" in failed_row[:1200]
    assert html.count('class="run-failed"') == 1 and 'class="run-succeeded"' in html
    facts = html[html.index('data-testid="last-succeeded"'):]
    assert (day - timedelta(days=1)).strftime("%d %b %Y") in facts[:120]
    assert "IST" in html and "embedded mode" in html


def test_runs_are_paginated_and_the_pager_swaps_only_the_table(login_as, db, users):
    day = clock.last_business_date()
    for n in range(30):
        add_run(db, day - timedelta(days=n), "SUCCEEDED", minutes_ago=n + 1)
    client = login_as("adm")
    first = client.get("/admin/jobs").get_data(as_text=True)
    assert first.count("<tr class=") == 25 and "Page 1 of 2" in first
    second = client.get("/admin/jobs?page=2", headers={"HX-Request": "true"})
    html = second.get_data(as_text=True)
    assert second.status_code == 200 and "<html" not in html and html.count("<tr class=") == 5
    assert '<div id="runs"' in html[:300]


@pytest.mark.parametrize("raw, message", [
    ("", "must be a date as YYYY-MM-DD"),
    ("28-11-2026", "must be a date as YYYY-MM-DD"),
    ("2026-02-30", "is not a real calendar date"),
    ("TODAY", "must be a date as YYYY-MM-DD"),
    ("TOMORROW", "must be before"),
    ("NEXT_YEAR", "must be before"),
])
def test_run_form_refuses_bad_dates_naming_the_field(login_as, db, users, raw, message):
    today = clock.today_ist()
    raw = {"TODAY": today.isoformat(), "TOMORROW": (today + timedelta(days=1)).isoformat(),
           "NEXT_YEAR": today.replace(year=today.year + 1).isoformat()}.get(raw, raw)
    if raw == today.isoformat():
        message = "must be before"
    response = post(login_as("adm"), "/admin/jobs/run", {"date": raw})
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and 'data-field="date"' in html and message in html
    assert "<html" not in html and f'value="{raw}"' in html  # the partial, with what was typed
    assert db.scalar(select(CronRun)) is None


def test_run_form_runs_dayend_in_embedded_mode_and_shows_the_outcome(login_as, db, make_loan):
    make_loan()
    client = login_as("adm")
    day = clock.last_business_date()
    response = post(client, "/admin/jobs/run", {"date": day.isoformat()})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "succeeded (attempt 1)" in html and "1 loans processed" in html
    assert "dayend-requested" in response.headers["HX-Trigger"]
    again = post(client, "/admin/jobs/run", {"date": day.isoformat()}).get_data(as_text=True)
    assert "did not run" in again and "already succeeded" in again
    forced = post(client, "/admin/jobs/run", {"date": day.isoformat(), "force": "1"}).get_data(as_text=True)
    assert "succeeded (attempt 3)" in forced
    statuses = [(r.attempt, r.status, r.forced) for r in db.scalars(select(CronRun).order_by(CronRun.attempt))]
    assert statuses == [(1, "SUCCEEDED", False), (2, "SKIPPED", False), (3, "SUCCEEDED", True)]
    requested = db.scalars(select(AuditEntry).where(AuditEntry.action == "dayend.requested")).all()
    assert [json.loads(e.after)["force"] for e in requested] == [False, False, True]
    assert {e.actor_label for e in requested} == {"adm"}
    page = post(client, "/admin/jobs/run", {"date": day.isoformat()}, htmx=False).get_data(as_text=True)
    assert "<html" in page and 'class="run-succeeded"' in page  # without HTMX: the whole page, runs included


def test_with_redis_the_run_is_queued_and_the_lock_holder_shown(app, login_as, db, users, redis_db, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", REDIS_TEST_URL)
    client = login_as("adm")
    assert "free" in client.get("/admin/jobs").get_data(as_text=True)
    redis_db.set(PREFIX + "dayend", "token")
    redis_db.set(PREFIX + "dayend:owner", "worker-7:4242")
    assert "held by worker-7:4242" in client.get("/admin/jobs").get_data(as_text=True)
    day = clock.last_business_date()
    html = post(client, "/admin/jobs/run", {"date": day.isoformat(), "force": "1"}).get_data(as_text=True)
    assert "is queued on “dayend” as job" in html and "(forced)" in html
    from rq import Queue

    (job,) = Queue("dayend", connection=redis_db).jobs
    assert job.func_name == "jobs.tasks.dayend_for_date" and job.args == (day.isoformat(),)
    assert job.kwargs == {"force": True}
    assert db.scalar(select(CronRun)) is None  # nothing ran here: a worker will


def test_when_redis_is_down_nothing_is_queued_and_the_screen_says_so(app, login_as, db, users, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")
    client = login_as("adm")
    assert "unknown (Redis is unreachable)" in client.get("/admin/jobs").get_data(as_text=True)
    response = post(client, "/admin/jobs/run", {"date": clock.last_business_date().isoformat()})
    assert response.status_code == 503 and "Redis is unreachable. Nothing was queued" in response.get_data(as_text=True)
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "dayend.requested")) is None


# ---------------------------------------------------------------- kill switches

def flag(db, name):
    db.expire_all()
    return db.get(FeatureFlag, name)


def test_flags_screen_shows_each_switch_and_an_environment_override(login_as, users, monkeypatch):
    monkeypatch.setenv("SCORING_ENABLED", "on")
    html = login_as("adm").get("/admin/flags").get_data(as_text=True)
    for name in ("CRON_ENABLED", "ESCALATION_ENABLED", "SCORING_ENABLED", "REMINDERS_ENABLED"):
        assert f'id="flag-{name}"' in html
    scoring = html[html.index('id="flag-SCORING_ENABLED"'):html.index('id="flag-REMINDERS_ENABLED"')]
    assert "The environment forces it on" in scoring and "has no effect until the override is removed" in scoring
    assert html.count('data-testid="flag-override"') == 1


@pytest.mark.parametrize("data, field", [
    ({"enabled": "off", "reason": "bank holiday"}, "confirm"),
    ({"enabled": "off", "confirm": "1"}, "reason"),
    ({"enabled": "off", "reason": "   ", "confirm": "1"}, "reason"),
    ({"enabled": "maybe", "reason": "x", "confirm": "1"}, "enabled"),
])
def test_a_change_needs_confirmation_and_a_reason(login_as, db, users, data, field):
    response = post(login_as("adm"), "/admin/flags/CRON_ENABLED", data, page="/admin/flags")
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "<html" not in html
    assert (f'data-field="{field}"' in html) if field != "enabled" else ("State: must be on or off" in html)
    assert flag(db, "CRON_ENABLED").enabled is True
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "flag.changed")) is None


def test_a_confirmed_change_is_saved_audited_and_shown(login_as, db, users):
    client = login_as("adm")
    response = post(client, "/admin/flags/CRON_ENABLED",
                    {"enabled": "off", "reason": "bank strike: hold day-end", "confirm": "1"}, page="/admin/flags")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Saved: CRON_ENABLED is stored off" in html
    assert json.loads(response.headers["HX-Trigger"]) == {"flag-changed": {"name": "CRON_ENABLED", "enabled": False}}
    assert 'data-testid="flag-state">OFF' in html and "bank strike: hold day-end" in html and ">ADM<" not in html
    row = flag(db, "CRON_ENABLED")
    assert row.enabled is False and row.updated_by_id == users["adm"].id
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "flag.changed"))
    assert entry.actor_label == "adm" and entry.entity_id == "CRON_ENABLED"
    assert json.loads(entry.after)["enabled"] is False and json.loads(entry.before) == {"enabled": True}
    page = client.get("/admin/flags").get_data(as_text=True)
    cron = page[page.index('id="flag-CRON_ENABLED"'):page.index('id="flag-ESCALATION_ENABLED"')]
    assert "<dd>adm</dd>" in cron and "Switch on" in cron and 'value="on"' in cron
    assert "off: day-end is refused" in client.get("/admin/jobs").get_data(as_text=True)


def test_changing_an_overridden_switch_says_it_has_no_effect(login_as, db, users, monkeypatch):
    monkeypatch.setenv("REMINDERS_ENABLED", "1")
    html = post(login_as("adm"), "/admin/flags/REMINDERS_ENABLED",
                {"enabled": "off", "reason": "SMS vendor outage", "confirm": "1"}, page="/admin/flags").get_data(as_text=True)
    assert "stored off; the environment still forces it on" in html and 'data-testid="flag-state">ON' in html
    assert flag(db, "REMINDERS_ENABLED").enabled is False


def test_an_unknown_switch_is_not_found(login_as, users):
    response = post(login_as("adm"), "/admin/flags/BACKUPS_ENABLED", {"enabled": "off", "reason": "x", "confirm": "1"},
                    page="/admin/flags")
    assert response.status_code == 404
