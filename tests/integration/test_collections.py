"""Contacts under RBI's recovery hours, promises kept and broken at day-end, priority scores, escalations."""
import os
import time as systime
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import func, select, text

from jobs import collections as collection_jobs
from jobs import dayend as dayend_job
from webapp import clock
from webapp.errors import Forbidden, NotFound, ValidationError
from webapp.models import Contact, Escalation, LoanScore
from webapp.permissions import SystemActor
from webapp.services import collections, flags, payments

IST = clock.IST


@pytest.fixture()
def now_ist(monkeypatch):
    def set_now(moment: datetime):
        instant = moment.replace(tzinfo=IST).astimezone(timezone.utc)
        monkeypatch.setattr(clock, "now", lambda: instant)

    set_now(datetime(2026, 6, 15, 20, 0))  # evening: logging the day's calls after hours is fine
    return set_now


@pytest.fixture()
def loan(make_loan, now_ist):
    return make_loan(loan_number="KL1", disbursed_on="2026-01-01", first_due_on="2026-02-05")


def contact(db, user, **fields):
    fields.setdefault("channel", "CALL")
    fields.setdefault("outcome", "NOT_REACHABLE")
    return collections.log_contact(db, user, "KL1", fields)


@pytest.mark.parametrize("at, allowed", [("2026-06-15T07:59", False), ("2026-06-15T08:00", True),
                                         ("2026-06-15T18:59", True), ("2026-06-15T19:00", False),
                                         ("2026-06-14T23:30", False)])
def test_contacts_only_between_8_and_19_ist(db, users, loan, at, allowed):
    if allowed:
        assert contact(db, users["col"], contacted_at=at).contacted_at == datetime.fromisoformat(at).replace(tzinfo=IST)
    else:
        with pytest.raises(ValidationError) as refused:
            contact(db, users["col"], contacted_at=at)
        assert "08:00 and 19:00 IST" in refused.value.fields["contacted_at"]


def test_the_window_is_ist_whatever_the_server_timezone(db, users, loan, now_ist):
    original = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    systime.tzset()
    try:
        now_ist(datetime(2026, 6, 16, 7, 30))  # 07:30 IST is 22:00 the day before in New York
        with pytest.raises(ValidationError):
            contact(db, users["col"])
        now_ist(datetime(2026, 6, 16, 9, 0))
        assert contact(db, users["col"]).channel == "CALL"
    finally:
        if original is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = original
        systime.tzset()


def test_daily_call_limit_counts_calls_not_visits(db, users, loan, app):
    for hour in (9, 10, 11):
        contact(db, users["col"], contacted_at=f"2026-06-15T{hour:02d}:00")
    contact(db, users["col"], channel="VISIT", contacted_at="2026-06-15T12:00")
    with pytest.raises(ValidationError) as refused:
        contact(db, users["col"], contacted_at="2026-06-15T13:00")
    assert refused.value.code == "call_limit" and "3 calls already" in refused.value.fields["channel"]
    assert contact(db, users["col"], contacted_at="2026-06-14T13:00").id  # another day


@pytest.mark.parametrize("fields, field, problem", [
    ({"contacted_at": "2026-06-16T10:00"}, "contacted_at", "future"),
    ({"contacted_at": "2026-06-01T10:00"}, "contacted_at", "within the last"),
    ({"contacted_at": "yesterday"}, "contacted_at", "date and time"),
    ({"channel": "SMS"}, "channel", "must be one of"),
    ({"outcome": "HAPPY"}, "outcome", "must be one of"),
    ({"outcome": "PROMISE_TO_PAY"}, "promise_amount", "required"),
    ({"outcome": "PROMISE_TO_PAY", "promise_amount": "100", "promise_date": "2026-06-14"}, "promise_date", "past"),
    ({"outcome": "PROMISE_TO_PAY", "promise_amount": "100", "promise_date": "2026-08-01"}, "promise_date", "within 30"),
    ({"outcome": "PROMISE_TO_PAY", "promise_amount": "999999", "promise_date": "2026-06-20"}, "promise_amount", "payable"),
    ({"outcome": "PROMISE_TO_PAY", "promise_amount": "-1", "promise_date": "2026-06-20"}, "promise_amount", "greater than zero"),
])
def test_bad_contacts_are_refused_by_field(db, users, loan, fields, field, problem):
    with pytest.raises(ValidationError) as refused:
        contact(db, users["col"], **{"contacted_at": "2026-06-15T10:00", **fields})
    assert problem in refused.value.fields[field]
    assert db.scalar(select(func.count()).select_from(Contact)) == 0


def test_scope_and_roles(db, users, loan):
    with pytest.raises(NotFound):
        contact(db, users["col2"], contacted_at="2026-06-15T10:00")
    for role in ("fin", "leg", "adm"):
        with pytest.raises(Forbidden):
            contact(db, users[role], contacted_at="2026-06-15T10:00")


def promise(db, user, amount, by):
    return contact(db, user, outcome="PROMISE_TO_PAY", promise_amount=amount, promise_date=by,
                   contacted_at="2026-06-15T10:00").promise


def test_day_end_marks_promises_kept_or_broken(db, users, loan, now_ist, make_loan):
    kept = promise(db, users["col"], "5000", "2026-06-18")
    broken = promise(db, users["mgr"], "9000", "2026-06-17")
    now_ist(datetime(2026, 6, 19, 10, 0))
    payments.record_payment(db, users["col"], "KL1", {"amount": "5000", "mode": "UPI", "reference": "200000000001",
                                                      "value_date": "2026-06-16"})
    for day in (date(2026, 6, 15), date(2026, 6, 16)):
        assert dayend_job.run_dayend(day).status == "SUCCEEDED"
    db.expire_all()
    assert (kept.status, kept.settled_on) == ("KEPT", date(2026, 6, 16))  # enough paid before the date
    assert broken.status == "OPEN"
    dayend_job.run_dayend(date(2026, 6, 17))
    db.expire_all()
    assert (broken.status, broken.settled_on) == ("BROKEN", date(2026, 6, 17))


def test_scores_and_their_factors(db, users, loan, make_loan, now_ist):
    quiet = make_loan(loan_number="KL2", borrower_name="Quiet One", borrower_phone="9000000002",
                      disbursed_on="2026-05-01", first_due_on="2026-06-01")
    promise(db, users["col"], "100", "2026-06-16")
    now_ist(datetime(2026, 6, 18, 10, 0))
    for day in (date(2026, 6, 16), date(2026, 6, 17)):
        dayend_job.run_dayend(day)
    run = collection_jobs.run_after_dayend("scoring", date(2026, 6, 17))
    assert run.status == "SUCCEEDED"
    first = db.get(LoanScore, loan.id)
    # KL1: 133 days past due × 2, ₹44,424.40 overdue → 44 × 1, never paid: 167 days since disbursal, 1 broken promise.
    assert (first.dpd_points, first.overdue_points, first.silence_points, first.broken_promise_points) == (266, 44, 167, 30)
    assert first.score == 266 + 44 + 167 + 30 + first.roll_points
    second = db.get(LoanScore, quiet.id)
    assert second.score < first.score
    order = [l.loan_number for l in collections_list(db, users["col"], "priority")]
    assert order == ["KL1", "KL2"]


def collections_list(db, user, sort):
    from webapp.services import loans

    sort, _ = collections.worklist_sort(db, sort)
    return loans.list_for(db, user, sort=sort).items


def test_disabled_scoring_falls_back_and_says_so(db, users, loan):
    assert collections.worklist_sort(db, "priority")[0] == "dpd"  # no scores yet
    flags.set_flag(db, SystemActor("t"), "SCORING_ENABLED", False, "tuning weights")
    sort, note = collections.worklist_sort(db, "priority")
    assert sort == "dpd" and "switched off" in note
    assert collection_jobs.run_after_dayend("scoring", date(2026, 6, 14)).status == "SKIPPED"


def test_escalations_open_move_and_close_with_the_class(db, users, make_loan, now_ist):
    loan = make_loan(loan_number="KL1", disbursed_on="2026-01-01", first_due_on="2026-05-01")
    now_ist(datetime(2026, 8, 5, 10, 0))

    def escalate(day):
        assert dayend_job.run_dayend(day).status == "SUCCEEDED"
        assert collection_jobs.run_after_dayend("escalation", day).status == "SUCCEEDED"
        return {(e.level, e.status) for e in db.scalars(select(Escalation).where(Escalation.loan_id == loan.id))}

    assert escalate(date(2026, 5, 31)) == {("MANAGER_REVIEW", "OPEN")}  # DPD 31: SMA-1
    collection_jobs.run_after_dayend("escalation", date(2026, 5, 31), force=True)
    assert db.scalar(select(func.count()).select_from(Escalation)) == 1  # idempotent
    assert escalate(date(2026, 6, 30)) == {("MANAGER_REVIEW", "CLOSED"), ("SENIOR_REVIEW", "OPEN")}  # SMA-2
    payments.record_payment(db, users["col"], "KL1", {"amount": "26654.64", "mode": "UPI",
                                                      "reference": "200000000002", "value_date": "2026-08-01"})
    assert escalate(date(2026, 8, 1)) == {("MANAGER_REVIEW", "CLOSED"), ("SENIOR_REVIEW", "CLOSED")}  # cured


def test_escalation_plans_with_statistics_that_include_the_new_day(db, make_loan, now_ist):
    """The day-end rows of a new date are invisible to the planner until analysed; escalating 136,452 loans
    against such statistics joined them row by row for minutes. (SQLite keeps no partitions: nothing to do.)"""
    make_loan(loan_number="KL1", disbursed_on="2026-01-01", first_due_on="2026-05-01")
    now_ist(datetime(2026, 8, 5, 10, 0))
    assert dayend_job.run_dayend(date(2026, 7, 31)).status == "SUCCEEDED"
    postgresql, partition = db.get_bind().dialect.name == "postgresql", "dayend_positions_2026_07"
    if postgresql:
        db.execute(text(f"UPDATE pg_class SET reltuples = -1 WHERE relname = '{partition}'"))  # never analysed
    assert collection_jobs.run_after_dayend("escalation", date(2026, 7, 31)).status == "SUCCEEDED"
    assert db.scalars(select(Escalation.level)).all() == ["LEGAL"]  # 92 days past due on 31 July: NPA
    if postgresql:
        assert db.scalar(text(f"SELECT reltuples FROM pg_class WHERE relname = '{partition}'")) == 1


def test_npa_goes_to_legal_and_the_queues_are_scoped(db, users, loan, now_ist):
    now_ist(datetime(2026, 6, 16, 10, 0))
    dayend_job.run_dayend(date(2026, 6, 15))
    collection_jobs.run_after_dayend("escalation", date(2026, 6, 15))
    legal = collections.queue(db, users["leg"]).items
    assert [(e.level, e.loan_id) for e in legal] == [("LEGAL", loan.id)]
    assert collections.queue(db, users["mgr"]).items == []  # the manager's queues hold SMA-1 and SMA-2
    with pytest.raises(Forbidden):
        collections.queue(db, users["col"])
    with pytest.raises(NotFound):
        collections.get_escalation(db, users["mgr2"], legal[0].id)
    worked = collections.work_escalation(db, users["leg"], legal[0].id, {
        "assignee": "leg", "note": "Sent to panel advocate", "next_action_on": "2026-06-20",
        "notice_sent_on": "2026-06-16"})
    assert worked.assignee.username == "leg" and worked.notes[0].text == "Sent to panel advocate"
    with pytest.raises(ValidationError) as refused:
        collections.work_escalation(db, users["leg"], legal[0].id, {"assignee": "col", "notice_served_on": "2026-06-10",
                                                                    "next_action_on": "2026-06-01"})
    assert set(refused.value.fields) == {"assignee", "notice_served_on", "next_action_on"}


def test_nightly_chain_runs_scoring_and_escalation_after_day_end(db, users, loan, now_ist):
    now_ist(datetime(2026, 6, 16, 1, 0))
    runs = collection_jobs.run_nightly()
    assert [(r.job, r.status) for r in runs] == [("dayend", "SUCCEEDED"), ("scoring", "SUCCEEDED"),
                                                ("escalation", "SUCCEEDED")]
