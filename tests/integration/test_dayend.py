"""Day-end through its job and services, on SQLite and PostgreSQL: RBI boundaries, stickiness, cut-off,
re-runs, a crash half-way, the kill switch mid-run and catch-up of missed dates."""
import json
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from jobs import dayend as job
from webapp import clock
from webapp.models import AuditEntry, CronRun, DayendPosition, Loan
from webapp.services import approvals, dayend, flags, ledger, payments, replay
from webapp.permissions import SystemActor

FIRST_DUE = date(2026, 2, 5)
EMI = 888_488


@pytest.fixture()
def today(monkeypatch):
    """Set the IST business date; returns a setter."""

    def set_today(day: date):
        noon_ist = datetime(day.year, day.month, day.day, 6, 30, tzinfo=timezone.utc)
        monkeypatch.setattr(clock, "now", lambda: noon_ist)

    set_today(date(2026, 9, 1))
    return set_today


@pytest.fixture()
def loan(make_loan, today):
    return make_loan(loan_number="KL1", disbursed_on="2026-01-01", first_due_on=FIRST_DUE.isoformat())


def official(db, loan, day):
    db.expire_all()
    return db.scalar(select(DayendPosition).where(DayendPosition.loan_id == loan.id,
                                                  DayendPosition.business_date == day))


def pay(db, user, day, amount, reference):
    return payments.record_payment(db, user, "KL1", {"amount": amount, "mode": "UPI", "reference": reference,
                                                     "value_date": day.isoformat()})


@pytest.mark.parametrize("offset, dpd, asset_class, bucket", [
    (-1, 0, "STANDARD", "0"), (0, 1, "SMA-0", "1-30"), (29, 30, "SMA-0", "1-30"), (30, 31, "SMA-1", "31-60"),
    (59, 60, "SMA-1", "31-60"), (60, 61, "SMA-2", "61-90"), (89, 90, "SMA-2", "61-90"), (90, 91, "NPA", "91-180"),
])
def test_rbi_boundaries(db, loan, offset, dpd, asset_class, bucket):
    day = FIRST_DUE + timedelta(days=offset)
    run = job.run_dayend(day)
    assert run.status == "SUCCEEDED", run.error
    row = official(db, loan, day)
    assert (row.dpd, row.asset_class, row.bucket) == (dpd, asset_class, bucket)
    assert row.overdue_since == (None if offset < 0 else FIRST_DUE)


def test_money_counted_is_posted_payments_less_approved_reversals_on_their_value_dates(db, users, loan, today):
    day = FIRST_DUE + timedelta(days=35)  # 12 Mar: two EMIs due (5 Feb, 5 Mar), 17,769.76
    today(day + timedelta(days=3))  # recent enough that the payments below need no approval

    def reverse(booked, amount, approve):
        assert booked.posted
        approval = approvals.request_reversal(db, users["fin"], booked.payment.reference,
                                              {"amount": amount, "reason": "DUPLICATE"})
        if approve is not None:
            approvals.decide(db, users["mgr"], [approval.id], approve=approve, reason="checked")

    reverse(pay(db, users["col"], day - timedelta(days=2), "8884.88", "200000000001"), "1000", True)  # 7,884.88
    reverse(pay(db, users["col"], day - timedelta(days=1), "5000", "200000000002"), "5000", True)  # nothing
    reverse(pay(db, users["col"], day - timedelta(days=1), "3000", "200000000003"), "500", None)  # pending: 3,000
    reverse(pay(db, users["col"], day - timedelta(days=1), "2000", "200000000004"), "2000", False)  # rejected: 2,000
    reverse(pay(db, users["col"], day + timedelta(days=1), "4000", "200000000005"), "1500", True)  # after the day
    assert job.run_dayend(day).status == "SUCCEEDED"

    row = official(db, loan, day)
    # 17,769.76 due, 12,884.88 counted by the day: the first EMI is paid, the second is 8 days past due.
    assert (row.overdue_paise, row.dpd, row.overdue_since) == (488_488, 8, date(2026, 3, 5))
    receipts = replay.receipts_of(db, loan)
    assert row.overdue_paise == ledger.compute_position(replay.schedule_of(loan), receipts, day).overdue_paise
    db.refresh(loan)
    assert loan.overdue_paise == 238_488  # live: the 2,500 counted after the day too
    assert loan.overdue_paise == ledger.compute_position(replay.schedule_of(loan), receipts, day,
                                                         receipts_until=day + timedelta(days=3)).overdue_paise


def test_npa_is_sticky_then_upgrades_only_when_every_arrear_is_paid(db, users, loan, today):
    npa_day = FIRST_DUE + timedelta(days=90)  # 6 May: four EMIs due (5 Feb … 5 May), DPD 91
    today(npa_day + timedelta(days=3))  # recent enough that the payments below need no approval
    assert job.run_dayend(npa_day).status == "SUCCEEDED"
    assert official(db, loan, npa_day).asset_class == "NPA"
    pay(db, users["col"], npa_day + timedelta(days=1), "17769.76", "100000000001")  # two EMIs: DPD drops to 33
    job.run_dayend(npa_day + timedelta(days=1))
    row = official(db, loan, npa_day + timedelta(days=1))
    assert (row.dpd, row.asset_class, row.class_since) == (33, "NPA", npa_day)
    pay(db, users["col"], npa_day + timedelta(days=2), "8884.88", "100000000002")  # three of four paid
    job.run_dayend(npa_day + timedelta(days=2))
    row = official(db, loan, npa_day + timedelta(days=2))
    assert (row.dpd, row.asset_class) == (4, "NPA")  # DPD 4, but an NPA upgrades only with no arrears left
    pay(db, users["col"], npa_day + timedelta(days=3), "8884.88", "100000000004")
    today(npa_day + timedelta(days=4))
    job.run_dayend(npa_day + timedelta(days=3))
    row = official(db, loan, npa_day + timedelta(days=3))
    assert (row.dpd, row.overdue_paise, row.asset_class, row.class_since) == (0, 0, "STANDARD", npa_day + timedelta(days=3))
    changes = db.scalars(select(AuditEntry.after).where(AuditEntry.action == "dayend.class_changed")).all()
    assert [json.loads(c)["asset_class"] for c in changes] == ["NPA", "STANDARD"]


def test_value_date_cut_off_and_the_live_position(db, users, loan, today):
    day = FIRST_DUE + timedelta(days=5)
    today(day + timedelta(days=1))
    pay(db, users["col"], day + timedelta(days=1), "8884.88", "100000000003")  # paid the morning after
    job.run_dayend(day)
    assert official(db, loan, day).dpd == 6  # the day-end of D counts money with value date <= D only
    db.refresh(loan)
    assert (loan.dpd, loan.asset_class) == (0, "STANDARD")  # screens show the live position


@pytest.mark.parametrize("advance", ["13327.32", "500"])  # one and a half EMIs; less than the first interest
def test_an_advance_applied_at_day_end_lowers_the_outstanding_principal_as_a_replay_does(db, users, loan, today,
                                                                                         advance):
    today(FIRST_DUE - timedelta(days=3))
    pay(db, users["col"], FIRST_DUE - timedelta(days=3), advance, "100000000005")  # before anything is due
    db.refresh(loan)
    assert loan.outstanding_principal_paise == 10_000_000  # held as advance: nothing applied yet
    today(FIRST_DUE + timedelta(days=1))
    assert job.run_dayend(FIRST_DUE).status == "SUCCEEDED"  # the first EMI falls due: the advance pays it
    db.expire_all()
    live = replay.live_position(db, loan)
    first = loan.instalments[0]
    assert (first.status, first.principal_paid_paise) == (live.instalments[0].status, live.instalments[0].principal_paid)
    assert loan.outstanding_principal_paise == live.outstanding_principal_paise == 10_000_000 - first.principal_paid_paise
    assert (loan.overdue_paise, loan.asset_class) == (live.overdue_paise, live.asset_class)


def test_second_run_refused_forced_run_identical(db, loan):
    day = FIRST_DUE + timedelta(days=45)
    first = job.run_dayend(day)
    rows = [(r.loan_id, r.dpd, r.asset_class, r.bucket, r.overdue_paise, r.overdue_since, r.class_since)
            for r in db.scalars(select(DayendPosition).where(DayendPosition.business_date == day))]
    again = job.run_dayend(day)
    assert again.status == "SKIPPED" and "already succeeded" in again.error
    forced = job.run_dayend(day, force=True)
    assert forced.status == "SUCCEEDED" and forced.attempt == 3 and forced.forced
    db.expire_all()
    assert rows == [(r.loan_id, r.dpd, r.asset_class, r.bucket, r.overdue_paise, r.overdue_since, r.class_since)
                    for r in db.scalars(select(DayendPosition).where(DayendPosition.business_date == day))]
    assert json.loads(forced.summary)["classes"] == json.loads(first.summary)["classes"]


@pytest.fixture()
def five_loans(make_loan, today):
    return [make_loan(loan_number=f"KL{n}", disbursed_on="2026-01-01", first_due_on=FIRST_DUE.isoformat())
            for n in range(1, 6)]


def test_a_crash_half_way_leaves_nothing_finished_and_a_rerun_completes(db, app, service_app, five_loans, monkeypatch):
    service_app.config["DAYEND_BATCH_SIZE"] = 2  # three batches over five loans
    day = FIRST_DUE + timedelta(days=10)
    real = dayend.process_batch
    calls = []

    def crash_on_second(session, *args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise RuntimeError("worker killed")
        return real(session, *args, **kwargs)

    monkeypatch.setattr(dayend, "process_batch", crash_on_second)
    crashed = job.run_dayend(day)
    assert crashed.status == "FAILED" and "worker killed" in crashed.error and crashed.batches_done == 1
    assert dayend.last_succeeded_date(db) is None
    monkeypatch.setattr(dayend, "process_batch", real)
    rerun = job.run_dayend(day)  # not forced: the date never succeeded
    assert rerun.status == "SUCCEEDED" and rerun.attempt == 2 and rerun.loans_processed == 5
    assert db.scalar(select(func.count()).select_from(DayendPosition).where(DayendPosition.business_date == day)) == 5
    service_app.config["DAYEND_BATCH_SIZE"] = 50_000


def test_an_abandoned_running_attempt_is_failed_and_replaced(db, loan):
    day = FIRST_DUE + timedelta(days=3)
    dead = CronRun(job="dayend", business_date=day, attempt=1, status="RUNNING",
                   started_at=clock.now() - timedelta(hours=1), heartbeat_at=clock.now() - timedelta(hours=1),
                   worker="host:123")
    db.add(dead)
    db.flush()
    run = job.run_dayend(day)
    db.refresh(dead)
    assert run.status == "SUCCEEDED" and dead.status == "FAILED" and "abandoned" in dead.error


def test_a_live_running_attempt_blocks_a_second_one_without_redis(db, loan):
    day = FIRST_DUE + timedelta(days=3)
    db.add(CronRun(job="dayend", business_date=day, attempt=1, status="RUNNING", started_at=clock.now(),
                   heartbeat_at=clock.now(), worker="host:123"))
    db.flush()
    run = job.run_dayend(day)
    assert run.status == "SKIPPED" and "still running on host:123" in run.error


def test_kill_switch_off_skips_and_flipped_mid_run_stops_cleanly(db, service_app, five_loans, monkeypatch):
    day = FIRST_DUE + timedelta(days=10)
    flags.set_flag(db, SystemActor("test"), "CRON_ENABLED", False, "maintenance")
    skipped = job.run_dayend(day)
    assert skipped.status == "SKIPPED" and "CRON_ENABLED is off" in skipped.error
    flags.set_flag(db, SystemActor("test"), "CRON_ENABLED", True, "back on")
    service_app.config["DAYEND_BATCH_SIZE"] = 2
    real = dayend.process_batch

    def flip_after_first(session, *args, **kwargs):
        result = real(session, *args, **kwargs)
        flags.set_flag(session, SystemActor("test"), "CRON_ENABLED", False, "incident")
        return result

    monkeypatch.setattr(dayend, "process_batch", flip_after_first)
    stopped = job.run_dayend(day)
    assert stopped.status == "FAILED" and stopped.batches_done == 1 and "switched off" in stopped.error
    monkeypatch.setattr(dayend, "process_batch", real)
    service_app.config["DAYEND_BATCH_SIZE"] = 50_000


def test_environment_override_beats_the_stored_flag(db, loan, monkeypatch):
    monkeypatch.setenv("CRON_ENABLED", "off")
    run = job.run_dayend(FIRST_DUE)
    assert run.status == "SKIPPED"


def test_catch_up_runs_missed_dates_in_order(db, loan, today):
    today(FIRST_DUE + timedelta(days=10))
    assert job.run_dayend(FIRST_DUE + timedelta(days=5)).status == "SUCCEEDED"
    runs = job.run_due()  # the scheduler found days 6, 7, 8 and 9 missing
    assert [r.business_date for r in runs] == [FIRST_DUE + timedelta(days=n) for n in (6, 7, 8, 9)]
    assert all(r.status == "SUCCEEDED" for r in runs)
    assert job.run_due() == []


def test_future_or_today_is_refused(db, loan, today):
    from webapp.errors import ValidationError

    today(FIRST_DUE)
    with pytest.raises(ValidationError):
        job.run_dayend(FIRST_DUE)


def test_loans_without_due_instalments_and_closed_loans(db, users, make_loan, today):
    today(date(2026, 3, 1))
    make_loan(loan_number="KLNEW", disbursed_on="2026-02-20", first_due_on="2026-03-20")
    paid_off = make_loan(loan_number="KLPAID", disbursed_on="2026-01-01", first_due_on="2026-02-05",
                         principal="12000", annual_rate="0", tenure_months="12")
    payments.record_payment(db, users["col"], "KLPAID", {"amount": "12000", "mode": "UPI",
                                                         "reference": "100000000009", "value_date": "2026-02-25"})
    assert paid_off.status == "CLOSED"
    job.run_dayend(date(2026, 2, 28))
    rows = {r.loan_id: r for r in db.scalars(select(DayendPosition))}
    new = db.scalar(select(Loan).where(Loan.loan_number == "KLNEW"))
    assert rows[new.id].dpd == 0 and rows[new.id].asset_class == "STANDARD"
    assert paid_off.id not in rows  # a closed loan has no more day-end rows


def test_rbi_illustration_dates_of_sma1_sma2_and_npa(db, make_loan, today):
    """RBI's circular of 12 Nov 2021: due 31 Mar 2021 and unpaid → SMA-1 on 30 Apr, SMA-2 on 30 May, NPA on 29 Jun."""
    today(date(2021, 7, 5))
    loan = make_loan(loan_number="KLRBI", disbursed_on="2021-02-28", first_due_on="2021-03-31")
    day = date(2021, 3, 30)
    seen = {}
    while day <= date(2021, 7, 1):
        assert job.run_dayend(day).status == "SUCCEEDED"
        row = official(db, loan, day)
        seen.setdefault(row.asset_class, (day, row.class_since, dayend.as_dict(row)))
        day += timedelta(days=1)
    assert {name: first for name, (first, _, _) in seen.items()} == {
        "STANDARD": date(2021, 3, 30), "SMA-0": date(2021, 3, 31), "SMA-1": date(2021, 4, 30),
        "SMA-2": date(2021, 5, 30), "NPA": date(2021, 6, 29)}
    assert seen["SMA-1"][2]["sma1_since"] == "2021-04-30" and seen["NPA"][2]["npa_since"] == "2021-06-29"
    assert seen["NPA"][2]["sma2_since"] is None and seen["NPA"][2]["overdue_since"] == "2021-03-31"
    npa_row = official(db, loan, date(2021, 7, 1))
    assert (npa_row.asset_class, npa_row.class_since) == ("NPA", date(2021, 6, 29))


def test_an_overdue_loan_is_rewritten_only_when_its_position_moves(db, loan, today):
    """Live DPD follows the calendar from the stored oldest unpaid due date; day-end writes the loan's row
    only when its class, bucket, overdue amount or oldest unpaid due date changes."""
    for offset in (5, 6):
        today(FIRST_DUE + timedelta(days=offset + 1))
        assert job.run_dayend(FIRST_DUE + timedelta(days=offset)).status == "SUCCEEDED"
        db.refresh(loan)
        assert (loan.overdue_since, loan.dpd, loan.bucket) == (FIRST_DUE, offset + 1, "1-30")
        assert loan.position_date == FIRST_DUE + timedelta(days=5)  # DPD 7 changed nothing stored
    today(FIRST_DUE + timedelta(days=31))
    assert job.run_dayend(FIRST_DUE + timedelta(days=30)).status == "SUCCEEDED"  # DPD 31: SMA-1
    db.refresh(loan)
    assert (loan.dpd, loan.asset_class, loan.bucket, loan.position_date) == \
        (31, "SMA-1", "31-60", FIRST_DUE + timedelta(days=30))
