"""Contact logging from the worklist, the manager's promises panel, priority ordering notes, escalation queues."""
import re
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import select

from jobs import collections as collection_jobs
from jobs import dayend as dayend_job
from tests.conftest import csrf_token
from webapp import clock
from webapp.models import Escalation, Loan, LoanScore, Promise
from webapp.permissions import SystemActor
from webapp.services import collections, flags


@pytest.fixture()
def at_ten_ist(monkeypatch):
    instant = datetime(2026, 6, 15, 4, 30, tzinfo=timezone.utc)  # 10:00 IST
    monkeypatch.setattr(clock, "now", lambda: instant)


@pytest.fixture()
def loan(make_loan, at_ten_ist):
    return make_loan(loan_number="KL1", disbursed_on="2026-01-01", first_due_on="2026-02-05")


def test_worklist_offers_log_contact_and_a_promise_reaches_the_manager(login_as, db, loan):
    collector = login_as("col")
    worklist = collector.get("/collector/").get_data(as_text=True)
    assert 'data-testid="log-contact-KL1"' in worklist
    form = collector.get("/loans/KL1/contacts/new", headers={"HX-Request": "true"}).get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
    response = collector.post("/loans/KL1/contacts", headers={"HX-Request": "true"}, data={
        "csrf_token": token, "channel": "CALL", "outcome": "PROMISE_TO_PAY", "contacted_at": "2026-06-15T09:45",
        "promise_amount": "8884.88", "promise_date": "2026-06-20", "note": "Will pay after salary"})
    assert response.status_code == 201 and response.headers["HX-Trigger"] == '{"contact-logged": true}'
    assert "promise of ₹8,884.88" in response.get_data(as_text=True)
    panel = login_as("mgr").get("/manager/").get_data(as_text=True)
    assert 'data-testid="promises-due"' in panel and "KL1" in panel.split('data-testid="promises-due"')[1][:600]
    assert db.scalar(select(Promise.status)) == "OPEN"


def test_the_manager_is_told_when_more_promises_fall_due_than_the_panel_lists(login_as, db, users, loan, make_loan,
                                                                             monkeypatch):
    make_loan(loan_number="KL2", borrower_phone="9000000008", disbursed_on="2026-01-01", first_due_on="2026-02-05")
    for number, day in (("KL2", "2026-06-18"), ("KL1", "2026-06-20")):
        collections.log_contact(db, users["col"], number, {
            "channel": "CALL", "outcome": "PROMISE_TO_PAY", "contacted_at": "2026-06-15T09:45",
            "promise_amount": "1000.00", "promise_date": day, "note": ""})
    db.commit()

    def panel():
        html = login_as("mgr").get("/manager/").get_data(as_text=True)
        return html.split('data-testid="promises-due"')[1].split("</section>")[0]

    monkeypatch.setattr(collections, "PROMISES_SHOWN", 1)
    first_only = panel()
    assert "KL2" in first_only and "KL1" not in first_only  # the earliest promise
    assert 'data-testid="more-promises"' in first_only and "Only the 1 earliest are listed" in first_only
    monkeypatch.setattr(collections, "PROMISES_SHOWN", 2)
    both = panel()
    assert "KL1" in both and "KL2" in both and "more-promises" not in both


def test_contact_errors_come_back_inline(login_as, loan):
    collector = login_as("col")
    token = csrf_token(collector, "/collector/")
    response = collector.post("/loans/KL1/contacts", headers={"HX-Request": "true"}, data={
        "csrf_token": token, "channel": "CALL", "outcome": "NOT_REACHABLE", "contacted_at": "2026-06-15T07:30"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and 'data-field="contacted_at"' in html and 'id="contact-form"' in html


def test_ordering_note_when_scoring_is_off(login_as, db, loan):
    flags.set_flag(db, SystemActor("t"), "SCORING_ENABLED", False, "tuning")
    html = login_as("col").get("/collector/").get_data(as_text=True)
    assert 'data-testid="ordering-note"' in html and "switched off" in html


def test_loan_page_explains_the_priority(login_as, db, loan, monkeypatch):
    later = datetime(2026, 6, 16, 4, 30, tzinfo=timezone.utc)
    monkeypatch.setattr(clock, "now", lambda: later)
    dayend_job.run_dayend(date(2026, 6, 15))
    collection_jobs.run_after_dayend("scoring", date(2026, 6, 15))
    html = login_as("col").get("/loans/KL1").get_data(as_text=True)
    assert 'data-testid="why-first"' in html and "Days since the last payment" in html


def test_escalation_queue_and_work_form(login_as, db, loan, monkeypatch):
    later = datetime(2026, 6, 16, 4, 30, tzinfo=timezone.utc)
    monkeypatch.setattr(clock, "now", lambda: later)
    dayend_job.run_dayend(date(2026, 6, 15))
    collection_jobs.run_after_dayend("escalation", date(2026, 6, 15))
    escalation_id = db.scalar(select(Escalation.id))
    legal = login_as("leg")
    assert "KL1" in legal.get("/escalations/").get_data(as_text=True)
    token = csrf_token(legal, f"/escalations/{escalation_id}")
    bad = legal.post(f"/escalations/{escalation_id}", headers={"HX-Request": "true"},
                     data={"csrf_token": token, "notice_sent_on": "2030-01-01"})
    assert bad.status_code == 422 and 'data-field="notice_sent_on"' in bad.get_data(as_text=True)
    good = legal.post(f"/escalations/{escalation_id}", headers={"HX-Request": "true"},
                      data={"csrf_token": token, "note": "Notice drafted", "notice_sent_on": "2026-06-16"})
    assert good.status_code == 200 and "Notice drafted" in good.get_data(as_text=True)
    assert login_as("mgr").get(f"/escalations/{escalation_id}").status_code == 404  # LEGAL level: not a manager's
    assert login_as("col").get("/escalations/").status_code == 403


def test_disputes_past_their_sla_surface_in_the_escalation_queue(login_as, db, loan, monkeypatch):
    from webapp.services import disputes

    raised = datetime(2026, 5, 1, 4, 30, tzinfo=timezone.utc)
    monkeypatch.setattr(clock, "now", lambda: raised)
    dispute = disputes.raise_dispute(db, db.merge(loan.collector), "KL1",
                                     {"category": "PAYMENT_NOT_CREDITED", "description": "Paid at the branch"})
    later = datetime(2026, 6, 16, 4, 30, tzinfo=timezone.utc)  # 46 days later: past the 30-day SLA
    monkeypatch.setattr(clock, "now", lambda: later)
    html = login_as("mgr").get("/escalations/").get_data(as_text=True)
    assert 'data-testid="overdue-disputes"' in html and dispute.reference in html


def test_loan_lists_and_the_loan_page_show_priority_and_open_escalation(login_as, db, loan, make_loan, monkeypatch):
    make_loan(loan_number="KL2", borrower_phone="9000000008", disbursed_on="2026-06-01", first_due_on="2026-07-05")
    unscored = login_as("mgr").get("/loans/").get_data(as_text=True)
    assert 'data-label="Priority"' not in unscored and "badge-escalated" not in unscored  # nothing scored yet
    assert "Open escalation" not in login_as("col").get("/loans/KL1").get_data(as_text=True)
    later = datetime(2026, 6, 16, 4, 30, tzinfo=timezone.utc)
    monkeypatch.setattr(clock, "now", lambda: later)
    dayend_job.run_dayend(date(2026, 6, 15))
    collection_jobs.run_after_dayend("scoring", date(2026, 6, 15))
    collection_jobs.run_after_dayend("escalation", date(2026, 6, 15))
    scores = dict(db.execute(select(Loan.loan_number, LoanScore.score).join(LoanScore, LoanScore.loan_id == Loan.id)).all())
    level = db.scalar(select(Escalation.level).join(Loan, Loan.id == Escalation.loan_id)
                      .where(Loan.loan_number == "KL1", Escalation.status == "OPEN"))
    html = login_as("mgr").get("/loans/").get_data(as_text=True)
    rows = dict(re.findall(r'<tr data-loan="(KL\d)">(.*?)</tr>', html, re.S))
    priority = {number: re.search(r'data-label="Priority" class="num">([^<]*)</td>', row).group(1)
                for number, row in rows.items()}
    assert priority == {number: str(scores[number]) if number in scores else "—" for number in ("KL1", "KL2")}
    assert level and f'title="Open escalation">{level.replace("_", " ").lower()}</span>' in rows["KL1"]
    assert "badge-escalated" not in rows["KL2"]  # nothing due yet: no escalation
    pages = {number: login_as("col").get(f"/loans/{number}").get_data(as_text=True) for number in ("KL1", "KL2")}
    assert f'Open escalation: <strong>{level.replace("_", " ").lower()}</strong>' in pages["KL1"]
    assert "Open escalation" not in pages["KL2"]
