"""Payment reminders on SQLite and PostgreSQL: selection per rule, dedupe under re-runs, the 08:00–19:00 IST
window whatever the server's TZ, English/Hindi templates, and real transports: a local SMTP server
(aiosmtpd) and a local HTTP gateway (http.server) that checks the HMAC signature and fails on purpose."""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import socket
import threading
import time
from datetime import date, datetime, timedelta, timezone
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from jobs import reminders as job
from tests import pg
from tests.conftest import loan_row
from tests.integration.test_loans import csv_of
from webapp import clock
from webapp.cli import cli
from webapp.errors import NotFound, ValidationError
from webapp.models import AuditEntry, Reminder
from webapp.services import approvals, disputes, flags, payments
from webapp.services import reminders as service
from webapp.services import reminder_templates, reminder_transports

IST = clock.IST
FIRST_DUE = date(2026, 2, 5)  # the 5th of every month, twelve EMIs
EMI = 888_488
SECRET = "webhook-secret-for-tests-0123456789"


def ist(day: date, hour: int, minute: int = 0) -> datetime:
    """An IST wall-clock time as the aware UTC instant clock.now() returns."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=IST).astimezone(timezone.utc)


@pytest.fixture()
def now_is(monkeypatch):
    """Freeze clock.now() at an instant; returns the setter. Starts at 10:00 IST, three days before the first EMI."""

    def set_now(moment: datetime):
        monkeypatch.setattr(clock, "now", lambda: moment)

    set_now(ist(FIRST_DUE - timedelta(days=3), 10))
    return set_now


@pytest.fixture(autouse=True)
def reminder_config(service_app, monkeypatch):
    """Default rules and the log transport, whatever the environment says; tests change what they need."""
    monkeypatch.delenv("REMINDERS_ENABLED", raising=False)
    for key, value in {"REMINDER_DAYS_BEFORE": (3,), "REMINDER_ON_DUE_DAY": True,
                       "REMINDER_OVERDUE_DAYS": (1, 7, 15, 30), "REMINDER_TRANSPORT": "log",
                       "REMINDER_MAX_ATTEMPTS": 5, "REMINDER_RETRY_SECONDS": 300, "REMINDER_BATCH_SIZE": 100,
                       "REMINDER_CATCHUP_DAYS": 7, "REMINDER_LENDER_NAME": "Kisht Finance",
                       "REMINDER_PAYMENT_CHANNELS": "UPI ID kisht.collections@upi; any Kisht branch"}.items():
        monkeypatch.setitem(service_app.config, key, value)
    return service_app.config


@pytest.fixture()
def sent(monkeypatch):
    """Replace the log transport with a recorder: every message handed to it, in order."""
    messages = []
    monkeypatch.setitem(reminder_transports.TRANSPORTS, "log", lambda config, message: messages.append(message))
    return messages


@pytest.fixture()
def loan(make_loan, now_is):
    return make_loan(loan_number="KL1", disbursed_on="2026-01-01", first_due_on=FIRST_DUE.isoformat())


def outbox(db) -> list[Reminder]:
    db.expire_all()
    return list(db.scalars(select(Reminder).order_by(Reminder.id)))


def select_on(db, day: date) -> list[tuple]:
    added = service.select_for_date(db, day)
    rows = [(r.rule, r.business_date, r.amount_paise) for r in outbox(db) if r.business_date == day]
    assert added == len(rows)
    return rows


def pay(db, user, loan_number, amount, reference, day):
    return payments.record_payment(db, user, loan_number, {"amount": amount, "mode": "UPI", "reference": reference,
                                                          "value_date": day.isoformat()})


# ---------------------------------------------------------------- selection

@pytest.mark.parametrize("offset, rule", [
    (-4, None), (-3, "BEFORE_3"), (-2, None), (0, "DUE"), (1, "OVERDUE_1"), (2, None), (7, "OVERDUE_7"),
    (15, "OVERDUE_15"), (30, "OVERDUE_30"), (31, None),
])
def test_each_rule_selects_on_its_day_only(db, loan, now_is, offset, rule):
    day = FIRST_DUE + timedelta(days=offset)
    now_is(ist(day, 10))
    rows = select_on(db, day)
    due_by_then = EMI if offset < 28 else 2 * EMI  # by 7 Mar the March EMI is due too: the amount names both
    assert rows == ([] if rule is None else [(rule, day, due_by_then)])
    if rule:
        (row,) = outbox(db)
        assert (row.instalment_id, row.status, row.attempts, row.transport, row.channel, row.language,
                row.recipient) == (loan.instalments[0].id, "PENDING", 0, "log", "LOG", "en", "+919876543210")
        assert row.body is None  # rendered by the job, below


def test_amount_names_the_arrears_too(db, loan, now_is):
    day = date(2026, 3, 2)  # three days before the second EMI, the first still unpaid
    now_is(ist(day, 10))
    assert select_on(db, day) == [("BEFORE_3", day, 2 * EMI)]
    (row,) = outbox(db)
    assert row.instalment_id == loan.instalments[1].id


def test_paid_instalments_get_nothing_part_paid_and_reversed_ones_do(db, users, make_loan, now_is):
    start = FIRST_DUE - timedelta(days=3)
    for number, phone in (("KLPAID", "9000000001"), ("KLPART", "9000000002"), ("KLREV", "9000000003"),
                          ("KLADV", "9000000004")):
        make_loan(loan_number=number, borrower_name=f"Borrower {number}", borrower_phone=phone,
                  disbursed_on="2026-01-01", first_due_on=FIRST_DUE.isoformat())
    pay(db, users["col"], "KLPAID", "8884.88", "100000000001", start)
    pay(db, users["col"], "KLPART", "4000", "100000000002", start)
    reversed_ = pay(db, users["col"], "KLREV", "8884.88", "100000000003", start)
    request = approvals.request_reversal(db, users["mgr"], reversed_.payment.reference, {"reason": "BANK_RETURN"})
    approvals.decide(db, users["fin"], [request.id], approve=True, reason="returned by the bank")
    pay(db, users["col"], "KLADV", "17769.76", "100000000004", start)  # two EMIs: the March one is covered too
    assert service.select_for_date(db, start) == 2
    numbers = dict(db.execute(text("SELECT id, loan_number FROM loans")).all())
    assert {numbers[r.loan_id]: (r.rule, r.amount_paise) for r in outbox(db)} == {
        "KLPART": ("BEFORE_3", EMI - 400_000), "KLREV": ("BEFORE_3", EMI)}
    march = date(2026, 3, 2)
    now_is(ist(march, 10))
    service.select_for_date(db, march)
    assert "KLADV" not in {numbers[r.loan_id] for r in outbox(db) if r.business_date == march}  # advance covers it


def test_at_most_one_reminder_per_loan_a_day(db, loan, now_is):
    day = date(2026, 5, 5)  # the May EMI is due today, and the April one is 30 days overdue
    now_is(ist(day, 10))
    assert select_on(db, day) == [("OVERDUE_30", day, 4 * EMI)]  # overdue wins; the amount covers all four
    assert service.select_for_date(db, day) == 0


def test_rules_come_from_configuration(db, loan, now_is, reminder_config, monkeypatch):
    monkeypatch.setitem(reminder_config, "REMINDER_DAYS_BEFORE", (5,))
    monkeypatch.setitem(reminder_config, "REMINDER_ON_DUE_DAY", False)
    monkeypatch.setitem(reminder_config, "REMINDER_OVERDUE_DAYS", (2,))
    for day, expected in ((FIRST_DUE - timedelta(days=5), "BEFORE_5"), (FIRST_DUE - timedelta(days=3), None),
                          (FIRST_DUE, None), (FIRST_DUE + timedelta(days=2), "OVERDUE_2"),
                          (FIRST_DUE + timedelta(days=1), None)):
        now_is(ist(day, 10))
        assert [rule for rule, _, _ in select_on(db, day)] == ([expected] if expected else [])


def test_closed_loans_and_future_dates_are_left_alone(db, loan, now_is):
    db.execute(text("UPDATE loans SET status = 'CLOSED' WHERE id = :id"), {"id": loan.id})
    assert service.select_for_date(db, FIRST_DUE - timedelta(days=3)) == 0
    with pytest.raises(ValidationError):
        job.run_reminders(FIRST_DUE)  # today is 2 Feb
    with pytest.raises(ValidationError):
        job.run_reminders(FIRST_DUE - timedelta(days=20))  # further back than REMINDER_CATCHUP_DAYS


# ---------------------------------------------------------------- the job: dedupe, CronRuns, kill switch

def test_rerun_adds_nothing_and_sends_nothing_twice(db, loan, sent):
    first = job.run_reminders()
    assert first.status == "SUCCEEDED" and (first.job, first.attempt) == ("reminders", 1)
    assert json.loads(first.summary) == {"selected": 1, "sent": 1, "retrying": 0, "failed": 0, "cancelled": 0,
                                         "deferred": 0}
    rows = [(r.id, r.status, r.attempts, r.sent_at) for r in outbox(db)]
    second = job.run_reminders()
    assert second.status == "SUCCEEDED" and second.attempt == 2
    assert json.loads(second.summary)["selected"] == 0 and json.loads(second.summary)["sent"] == 0
    assert [(r.id, r.status, r.attempts, r.sent_at) for r in outbox(db)] == rows
    assert service.select_for_date(db, FIRST_DUE - timedelta(days=3)) == 0
    assert len(sent) == 1 and sent[0].loan_number == "KL1" and sent[0].rule == "BEFORE_3"
    audited = db.scalars(select(AuditEntry.action).where(AuditEntry.action == "reminders.succeeded")).all()
    assert len(audited) == 2


def test_the_rq_job_function_runs_in_the_current_app(db, loan, sent):
    assert (job.reminders_due.queue_name, job.reminders_due.path) == ("default", "jobs.reminders.reminders_due")
    result = job.reminders_due()
    assert result["status"] == "SUCCEEDED" and json.loads(result["summary"])["sent"] == 1 and len(sent) == 1


def test_kill_switch_off_means_skipped_and_nothing_selected(db, loan, system, sent):
    flags.set_flag(db, system, "REMINDERS_ENABLED", False, "complaint under review")
    run = job.run_reminders()
    assert (run.status, run.job, run.error) == ("SKIPPED", "reminders", "REMINDERS_ENABLED is off")
    assert outbox(db) == [] and sent == []


def test_kill_switch_is_checked_between_delivery_batches(db, make_loan, system, now_is, reminder_config, monkeypatch):
    monkeypatch.setitem(reminder_config, "REMINDER_BATCH_SIZE", 1)
    for n in range(1, 4):
        make_loan(loan_number=f"KL{n}", borrower_name=f"Borrower {n}", borrower_phone=f"900000000{n}",
                  disbursed_on="2026-01-01", first_due_on=FIRST_DUE.isoformat())
    messages = []

    def send_then_switch_off(config, message):
        messages.append(message)
        flags.set_flag(db, system, "REMINDERS_ENABLED", False, "stop now")

    monkeypatch.setitem(reminder_transports.TRANSPORTS, "log", send_then_switch_off)
    run = job.run_reminders()
    assert run.status == "FAILED" and "REMINDERS_ENABLED was switched off" in run.error
    assert len(messages) == 1
    assert sorted(r.status for r in outbox(db)) == ["PENDING", "PENDING", "SENT"]


def test_the_log_transport_writes_to_the_jobs_log(db, loan):
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("kisht.jobs")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        assert job.run_reminders().status == "SUCCEEDED"
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = [r.getMessage() for r in records if r.getMessage().startswith("reminder ")]
    assert len(lines) == 1 and "KL1" in lines[0] and "₹8,884.88" in lines[0] and "******3210" in lines[0]
    assert "9876543210" not in lines[0]  # the number is masked in the log


# ---------------------------------------------------------------- the delivery window (IST)

@pytest.fixture()
def los_angeles():
    """The server's TZ set far from UTC and IST, restored afterwards."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "America/Los_Angeles"
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


DAY = FIRST_DUE - timedelta(days=3)  # 2 Feb 2026, when the BEFORE_3 reminder of KL1 is selected
WINDOW_CASES = [
    (ist(DAY, 8, 0), None),
    (ist(DAY, 18, 59), None),
    (ist(DAY, 19, 0), ist(DAY + timedelta(days=1), 8)),
    (ist(DAY, 23, 30), ist(DAY + timedelta(days=1), 8)),
    (ist(DAY, 7, 59), ist(DAY, 8)),
    # 19:00 UTC on 1 Feb is 00:30 IST on 2 Feb: the business date is the IST one, the wait until 08:00 that day.
    (datetime(2026, 2, 1, 19, 0, tzinfo=timezone.utc), ist(DAY, 8)),
]


@pytest.mark.parametrize("server_tz", ["unchanged", "America/Los_Angeles"])
@pytest.mark.parametrize("moment, deferred_until", WINDOW_CASES)
def test_window_sends_or_defers_to_the_next_0800_ist(db, loan, now_is, sent, request, server_tz, moment,
                                                     deferred_until):
    if server_tz != "unchanged":
        request.getfixturevalue("los_angeles")
        assert time.tzname[0] == "PST"
    now_is(moment)
    assert clock.today_ist() == DAY
    run = job.run_reminders()
    assert run.status == "SUCCEEDED" and run.business_date == DAY
    (row,) = outbox(db)
    assert row.rule == "BEFORE_3" and row.business_date == DAY
    if deferred_until is None:
        assert (row.status, row.sent_at, len(sent)) == ("SENT", moment, 1)
        return
    assert (row.status, row.next_attempt_at, row.attempts, len(sent)) == ("DEFERRED", deferred_until, 0, 0)
    assert row.body and "KL1" in row.body  # rendered already, so the screen shows what will go out
    now_is(deferred_until - timedelta(minutes=1))
    job.run_reminders()
    assert outbox(db)[0].status == "DEFERRED" and sent == []
    now_is(deferred_until)
    job.run_reminders()
    (row,) = outbox(db)
    assert (row.status, row.sent_at, row.attempts, len(sent)) == ("SENT", deferred_until, 1, 1)


@pytest.mark.parametrize("server_tz", ["unchanged", "America/Los_Angeles"])
def test_window_arithmetic_ignores_the_server_tz(request, server_tz):
    if server_tz != "unchanged":
        request.getfixturevalue("los_angeles")
    for moment, deferred_until in WINDOW_CASES:
        assert service.in_window(moment) is (deferred_until is None)
        if deferred_until is not None:
            assert service.next_window_start(moment) == deferred_until
    assert service.next_window_start(ist(DAY, 8)) == ist(DAY, 8)
    assert service.next_window_start(ist(DAY, 8, 1)) == ist(DAY + timedelta(days=1), 8)
    assert service.next_window_start(datetime(2026, 2, 2, 2, 30, tzinfo=timezone.utc)) == ist(DAY, 8)  # 08:00 IST
    # A time in another zone counts by the instant it names: 21:00 in Los Angeles is 10:30 IST the next day.
    from zoneinfo import ZoneInfo
    assert service.in_window(datetime(2026, 2, 1, 21, 0, tzinfo=ZoneInfo("America/Los_Angeles")))
    with pytest.raises(ValueError):
        service.in_window(datetime(2026, 2, 2, 10, 0))  # naive: would be read in the server's TZ


def two_loans(make_loan) -> list:
    """KLA and KLB: the same terms, a borrower each."""
    return [make_loan(loan_number=number, borrower_name=f"Borrower {number}", borrower_phone=phone,
                      disbursed_on="2026-01-01", first_due_on=FIRST_DUE.isoformat())
            for number, phone in (("KLA", "9000000001"), ("KLB", "9000000002"))]


def deferred_before_the_window(db, now_is):
    """Run the job at 06:00 IST on DAY: the loans' reminders are selected and wait for 08:00."""
    now_is(ist(DAY, 6))
    job.run_reminders()
    assert [r.status for r in outbox(db)] == ["DEFERRED", "DEFERRED"]


def test_paid_before_delivery_is_cancelled_and_a_part_payment_changes_the_amount(db, users, make_loan, now_is, sent):
    two_loans(make_loan)
    deferred_before_the_window(db, now_is)
    now_is(ist(DAY, 7, 30))
    pay(db, users["col"], "KLA", "8884.88", "200000000001", DAY)
    pay(db, users["col"], "KLB", "884.88", "200000000002", DAY)
    now_is(ist(DAY, 8))
    run = job.run_reminders()
    assert json.loads(run.summary)["cancelled"] == 1 and json.loads(run.summary)["sent"] == 1
    cancelled, delivered = outbox(db)
    assert cancelled.status == "CANCELLED" and "paid before" in cancelled.last_error
    assert delivered.status == "SENT" and delivered.amount_paise == 800_000 and "₹8,000.00" in delivered.body
    assert [m.loan_number for m in sent] == ["KLB"] and "₹8,000.00" in sent[0].body


def dispute_on(db, user, loan_number):
    return disputes.raise_dispute(db, user, loan_number, {"category": "PAYMENT_NOT_CREDITED",
                                                          "description": "Paid in cash at the branch on the 1st."})


def test_a_loan_under_dispute_gets_no_reminder_until_the_dispute_is_resolved(db, users, make_loan, now_is):
    disputed, other = two_loans(make_loan)
    dispute = dispute_on(db, users["col"], "KLA")
    now_is(ist(FIRST_DUE, 10))
    service.select_for_date(db, FIRST_DUE)
    disputes.start_review(db, users["mgr"], dispute.reference)  # under review is still open
    overdue_1 = FIRST_DUE + timedelta(days=1)
    now_is(ist(overdue_1, 10))
    service.select_for_date(db, overdue_1)
    assert [(r.loan_id, r.rule) for r in outbox(db)] == [(other.id, "DUE"), (other.id, "OVERDUE_1")]
    disputes.resolve(db, users["mgr"], dispute.reference, outcome="REJECTED", note="No cash receipt was issued.")
    overdue_7 = FIRST_DUE + timedelta(days=7)
    now_is(ist(overdue_7, 10))
    assert service.select_for_date(db, overdue_7) == 2
    assert {(r.loan_id, r.rule) for r in outbox(db) if r.business_date == overdue_7} == \
        {(disputed.id, "OVERDUE_7"), (other.id, "OVERDUE_7")}


def test_a_dispute_raised_after_selection_cancels_the_waiting_reminder(db, users, make_loan, now_is, sent):
    two_loans(make_loan)
    deferred_before_the_window(db, now_is)
    now_is(ist(DAY, 7, 30))
    dispute_on(db, users["col"], "KLA")
    now_is(ist(DAY, 8))
    run = job.run_reminders()
    assert (json.loads(run.summary)["cancelled"], json.loads(run.summary)["sent"]) == (1, 1)
    cancelled, delivered = outbox(db)
    assert cancelled.status == "CANCELLED" and "under dispute" in cancelled.last_error
    assert delivered.status == "SENT" and [m.loan_number for m in sent] == ["KLB"]


# ---------------------------------------------------------------- templates

THREATS = ["legal action", "police", "seize", "arrest", "jail", "court", "warrant", "criminal", "consequences",
           "blacklist", "कानूनी", "पुलिस", "जब्त", "गिरफ्तार", "जेल", "अदालत", "कार्रवाई"]


@pytest.mark.parametrize("language", ["en", "hi"])
@pytest.mark.parametrize("rule", ["BEFORE_3", "DUE", "OVERDUE_1", "OVERDUE_30"])
def test_templates_name_the_facts_and_never_threaten(language, rule):
    text_ = reminder_templates.render(rule=rule, language=language, name="Sunita Devi", loan_number="KL0042",
                                      due_date=date(2026, 2, 5), amount_paise=12_345_678, lender="Kisht Finance",
                                      channels="UPI ID kisht.collections@upi; any Kisht branch")
    assert text_.language == language
    for fact in ("KL0042", "₹1,23,456.78", "kisht.collections@upi", "any Kisht branch", "Sunita Devi"):
        assert fact in text_.body
    assert ("5 फ़रवरी 2026" if language == "hi" else "5 February 2026") in text_.body
    lowered = (text_.subject + " " + text_.body).lower()
    assert [word for word in THREATS if word in lowered] == []


def test_every_template_text_is_free_of_threats():
    for language, texts in reminder_templates.TEXTS.items():
        for key, value in texts.items():
            assert [word for word in THREATS if word in value.lower()] == [], (language, key)


def test_language_falls_back_to_english(db, make_loan, now_is, sent):
    make_loan(loan_number="KLMR", borrower_language="mr", disbursed_on="2026-01-01",
              first_due_on=FIRST_DUE.isoformat())
    job.run_reminders()
    (row,) = outbox(db)
    assert row.language == "en" and row.body.startswith("Dear Ravi Kumar,") and sent[0].language == "en"


# ---------------------------------------------------------------- SMTP: a real local server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def smtp_server(reminder_config, monkeypatch):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    class Inbox:
        def __init__(self):
            self.messages, self.logins = [], []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope)
            return "250 Message accepted for delivery"

    inbox = Inbox()

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"kisht", b"s3cret")
        inbox.logins.append((mechanism, ok))
        return AuthResult(success=ok)

    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticate,
                            auth_require_tls=False)
    controller.start()
    for key, value in {"REMINDER_TRANSPORT": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": port,
                       "SMTP_USER": "kisht", "SMTP_PASSWORD": "s3cret", "SMTP_FROM": "reminders@kisht.example",
                       "SMTP_STARTTLS": False, "SMTP_TIMEOUT_SECONDS": 5}.items():
        monkeypatch.setitem(reminder_config, key, value)
    yield inbox
    controller.stop()


def test_email_in_hindi_reaches_a_real_smtp_server(db, make_loan, now_is, smtp_server):
    make_loan(loan_number="KLHI", borrower_name="सुनीता देवी", borrower_phone="9000000001", borrower_language="hi",
              borrower_email="sunita@example.in", disbursed_on="2026-01-01", first_due_on=FIRST_DUE.isoformat())
    make_loan(loan_number="KLNOMAIL", borrower_name="Amit Shah", borrower_phone="9000000002",
              disbursed_on="2026-01-01", first_due_on=FIRST_DUE.isoformat())
    run = job.run_reminders()
    assert run.status == "SUCCEEDED"
    assert json.loads(run.summary) == {"selected": 2, "sent": 1, "retrying": 0, "failed": 1, "cancelled": 0,
                                            "deferred": 0}
    (envelope,) = smtp_server.messages
    assert smtp_server.logins == [("PLAIN", True)]  # SMTP_USER and SMTP_PASSWORD were used
    assert envelope.mail_from == "reminders@kisht.example" and envelope.rcpt_tos == ["sunita@example.in"]
    email = message_from_bytes(envelope.original_content, policy=policy.default)
    assert "अनुस्मारक" in email["Subject"] and "KLHI" in email["Subject"]
    body = email.get_content()
    for fact in ("प्रिय सुनीता देवी", "KLHI", "₹8,884.88", "5 फ़रवरी 2026", "kisht.collections@upi"):
        assert fact in body
    assert email["Content-Language"] == "hi" and email.get_content_charset() == "utf-8"
    hindi, no_mail = sorted(outbox(db), key=lambda r: r.recipient or "")[::-1]
    assert (hindi.status, hindi.channel, hindi.language, hindi.recipient) == ("SENT", "EMAIL", "hi", "sunita@example.in")
    assert (no_mail.status, no_mail.recipient, no_mail.attempts) == ("FAILED", None, 1)
    assert "no e-mail address" in no_mail.last_error


def test_smtp_server_down_is_retried(db, loan, now_is, reminder_config, monkeypatch):
    for key, value in {"REMINDER_TRANSPORT": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": free_port(),
                       "SMTP_FROM": "reminders@kisht.example", "SMTP_STARTTLS": False,
                       "SMTP_TIMEOUT_SECONDS": 2}.items():
        monkeypatch.setitem(reminder_config, key, value)
    db.execute(text("UPDATE borrowers SET email = 'ravi@example.in'"))
    job.run_reminders()
    (row,) = outbox(db)
    assert (row.status, row.attempts) == ("PENDING", 1) and "unreachable" in row.last_error
    assert row.next_attempt_at == clock.now() + timedelta(seconds=300)


# ---------------------------------------------------------------- webhook: a real local HTTP gateway

class Gateway:
    """An SMS gateway on 127.0.0.1 that checks the signature, failing with 503 the first `fail_first` calls."""

    def __init__(self, fail_first: int = 0, status: int = 503):
        self.fail_first, self.status, self.calls = fail_first, status, []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                expected = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
                valid = hmac.compare_digest(self.headers.get("X-Kisht-Signature", ""), expected)
                gateway.calls.append({"valid": valid, "json": json.loads(raw), "headers": dict(self.headers)})
                if not valid:
                    code = 401
                elif len(gateway.calls) <= gateway.fail_first:
                    code = gateway.status
                else:
                    code = 202
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"queued": true}' if code == 202 else b'{"error": "try later"}')

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def webhook(reminder_config, monkeypatch):
    def configure(gateway: Gateway, secret: str = SECRET):
        for key, value in {"REMINDER_TRANSPORT": "webhook", "REMINDER_WEBHOOK_URL": gateway.url,
                           "REMINDER_WEBHOOK_SECRET": secret, "REMINDER_WEBHOOK_CHANNEL": "WHATSAPP",
                           "REMINDER_WEBHOOK_TIMEOUT_SECONDS": 5}.items():
            monkeypatch.setitem(reminder_config, key, value)

    return configure


def test_webhook_is_signed_and_retried_with_backoff(db, loan, now_is, webhook):
    start = ist(DAY, 10)
    with Gateway(fail_first=2) as gateway:
        webhook(gateway)
        job.run_reminders()
        (row,) = outbox(db)
        assert (row.status, row.attempts, row.channel) == ("PENDING", 1, "WHATSAPP")
        assert row.last_error.startswith("gateway answered HTTP 503") and row.next_attempt_at == start + timedelta(minutes=5)
        now_is(start + timedelta(minutes=4))
        job.run_reminders()  # not due yet: no call
        assert len(gateway.calls) == 1
        now_is(start + timedelta(minutes=5))
        job.run_reminders()
        (row,) = outbox(db)
        assert (row.status, row.attempts) == ("PENDING", 2)
        assert row.next_attempt_at == start + timedelta(minutes=15)  # then 10 minutes: the wait doubles
        now_is(start + timedelta(minutes=15))
        job.run_reminders()
    (row,) = outbox(db)
    assert (row.status, row.attempts, row.last_error, row.sent_at) == ("SENT", 3, None, start + timedelta(minutes=15))
    assert [call["valid"] for call in gateway.calls] == [True, True, True]
    payload = gateway.calls[-1]["json"]
    assert payload["to"] == "+919876543210" and payload["channel"] == "WHATSAPP" and payload["loan_number"] == "KL1"
    assert "₹8,884.88" in payload["text"] and payload["reminder_id"] == row.id
    assert gateway.calls[-1]["headers"]["Idempotency-Key"] == f"kisht-reminder-{row.id}"


def test_a_wrong_secret_is_refused_by_the_gateway_and_not_retried(db, loan, now_is, webhook):
    with Gateway() as gateway:
        webhook(gateway, secret="not-the-gateways-secret-at-all")
        job.run_reminders()
    (row,) = outbox(db)
    assert [call["valid"] for call in gateway.calls] == [False]
    assert (row.status, row.attempts) == ("FAILED", 1) and "HTTP 401" in row.last_error


def test_a_gateway_that_always_fails_ends_in_failed_on_the_admin_screen(db, loan, now_is, webhook, reminder_config,
                                                                        monkeypatch, login_as):
    monkeypatch.setitem(reminder_config, "REMINDER_MAX_ATTEMPTS", 3)
    moment = ist(DAY, 10)
    with Gateway(fail_first=10**6, status=500) as gateway:
        webhook(gateway)
        for _ in range(3):
            job.run_reminders()
            db.expire_all()
            moment += timedelta(hours=1)
            now_is(moment)
        job.run_reminders()  # nothing left to try
    assert len(gateway.calls) == 3
    (row,) = outbox(db)
    assert (row.status, row.attempts) == ("FAILED", 3)
    assert row.last_error.startswith("gave up after 3 attempts: gateway answered HTTP 500")

    admin = login_as("adm")
    page = admin.get("/admin/reminders/").get_data(as_text=True)
    assert 'data-testid="count-FAILED">1<' in page and 'data-testid="failed-alert"' in page
    failed = admin.get("/admin/reminders/?status=FAILED").get_data(as_text=True)
    assert f'class="reminder-failed" data-reminder="{row.id}"' in failed and "gave up after 3 attempts" in failed
    assert "Send again" in failed
    assert "No reminders with status SENT" in admin.get("/admin/reminders/?status=SENT").get_data(as_text=True)
    fragment = admin.get("/admin/reminders/?status=FAILED", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in fragment and 'id="outbox"' in fragment  # HTMX gets the partial alone

    token = csrf_for(admin)
    resent = admin.post(f"/admin/reminders/{row.id}/resend", data={"csrf_token": token})
    assert resent.status_code == 302
    (row,) = outbox(db)
    assert (row.status, row.attempts) == ("PENDING", 0)
    again = admin.post(f"/admin/reminders/{row.id}/resend", data={"csrf_token": token})
    assert again.status_code == 422  # only a FAILED reminder can be sent again
    assert admin.post("/admin/reminders/nope/resend", data={"csrf_token": token}).status_code == 404
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "reminder.resend"))
    assert entry.actor_label == "adm" and json.loads(entry.before)["status"] == "FAILED"


def csrf_for(client) -> str:
    from tests.conftest import csrf_token

    return csrf_token(client, "/admin/reminders/")


@pytest.mark.parametrize("username", ["col", "mgr", "fin", "leg"])
def test_only_an_admin_sees_the_outbox(login_as, username):
    assert login_as(username).get("/admin/reminders/").status_code == 403


def test_resend_reads_the_contact_afresh_and_refuses_other_statuses(db, loan, now_is, reminder_config, monkeypatch,
                                                                    system, sent):
    monkeypatch.setitem(reminder_config, "REMINDER_TRANSPORT", "smtp")
    monkeypatch.setitem(reminder_config, "SMTP_HOST", "127.0.0.1")
    monkeypatch.setitem(reminder_config, "SMTP_FROM", "reminders@kisht.example")
    job.run_reminders()
    (row,) = outbox(db)
    assert row.status == "FAILED" and row.recipient is None
    db.execute(text("UPDATE borrowers SET email = 'ravi@example.in'"))
    service.resend(db, system, row.id)
    (row,) = outbox(db)
    assert (row.status, row.attempts, row.recipient) == ("PENDING", 0, "ravi@example.in")
    with pytest.raises(ValidationError):
        service.resend(db, system, row.id)
    with pytest.raises(NotFound):
        service.resend(db, system, "999999")


# ---------------------------------------------------------------- database guards

def test_the_database_keeps_the_outbox(db, loan, sent):
    job.run_reminders()
    (row,) = outbox(db)
    assert row.status == "SENT"
    for statement in ("UPDATE reminders SET body = 'changed' WHERE id = :id",
                      "UPDATE reminders SET status = 'PENDING' WHERE id = :id",
                      "DELETE FROM reminders WHERE id = :id"):
        with pytest.raises(DBAPIError):
            with db.begin_nested():
                db.execute(text(statement), {"id": row.id})
    duplicate = ("INSERT INTO reminders (loan_id, instalment_id, rule, business_date, amount_paise, transport, "
                 "channel, language, status, attempts, next_attempt_at, created_at) SELECT loan_id, instalment_id, "
                 "rule, business_date, 1, 'log', 'LOG', 'en', 'PENDING', 0, next_attempt_at, created_at "
                 "FROM reminders WHERE id = :id")
    with pytest.raises(DBAPIError):
        with db.begin_nested():
            db.execute(text(duplicate), {"id": row.id})


# ---------------------------------------------------------------- the command line

@pytest.fixture()
def run_cli(backend, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}" if backend == "sqlite" else pg.fresh_database("kisht_cli_reminders")
    env = {"APP_ENV": "test", "DATABASE_URL": url, "REDIS_URL": "", "REMINDER_TRANSPORT": "log",
           "REMINDERS_ENABLED": ""}
    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(cli, list(args), env=env, input=input, catch_exceptions=False)

    assert invoke("db", "upgrade").exit_code == 0
    return invoke


def test_kisht_reminders_run_and_resend(run_cli, now_is, tmp_path):
    assert run_cli("branches", "create", "PUNE01", "--name", "Pune Camp").exit_code == 0
    assert run_cli("users", "create", "col", "--role", "collector", "--branch", "PUNE01",
                   input="long-password-1\n").exit_code == 0
    loans_csv = tmp_path / "loans.csv"
    loans_csv.write_text(csv_of(loan_row(loan_number="KL1", disbursed_on="2026-01-01",
                                         first_due_on=FIRST_DUE.isoformat())))
    assert run_cli("loans", "import", str(loans_csv)).exit_code == 0
    first = run_cli("reminders", "run")
    assert first.exit_code == 0, first.output
    assert f"reminders {DAY} attempt 1: SUCCEEDED" in first.output and "selected 1, sent 1" in first.output
    again = run_cli("reminders", "run", "--date", DAY.isoformat())
    assert again.exit_code == 0 and "attempt 2: SUCCEEDED" in again.output and "selected 0, sent 0" in again.output
    future = run_cli("reminders", "run", "--date", "2026-02-03")
    assert future.exit_code == 1 and "future date" in future.output
    assert run_cli("flags", "set", "REMINDERS_ENABLED", "off", "--reason", "pause").exit_code == 0
    skipped = run_cli("reminders", "run")
    assert skipped.exit_code == 1 and "SKIPPED" in skipped.output and "REMINDERS_ENABLED is off" in skipped.output
    sent = run_cli("reminders", "resend", "1")
    assert sent.exit_code == 1 and "Only a failed reminder" in sent.output
    assert run_cli("reminders", "resend", "42").exit_code == 1
