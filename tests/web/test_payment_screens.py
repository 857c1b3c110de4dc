"""The payment form, its idempotency, the receipt, reversal requests and the approval inbox over HTTP."""
import re

import pytest
from sqlalchemy import func, select

from tests.conftest import csrf_token
from webapp.models import Approval, Payment

KEY_RE = re.compile(r'name="idempotency_key" type="hidden" value="([0-9a-f]{32})"')


@pytest.fixture()
def loan(make_loan):
    return make_loan(loan_number="KL1")


def payment_form(client, number="KL1"):
    html = client.get(f"/loans/{number}/payments/new", headers={"HX-Request": "true"}).get_data(as_text=True)
    return {"csrf_token": re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1),
            "idempotency_key": KEY_RE.search(html).group(1), "value_date": "", "cheque_bank": "",
            "receipt_number": "", "reference": ""}


def count(db, model=Payment):
    return db.scalar(select(func.count()).select_from(model))


def test_form_has_a_one_time_key_and_no_derived_fields(login_as, loan):
    client = login_as("col")
    first, second = payment_form(client), payment_form(client)
    assert first["idempotency_key"] != second["idempotency_key"]
    html = client.get("/loans/KL1/payments/new").get_data(as_text=True)
    for name in ("status", "dpd", "asset_class", "bucket", "created_at", "recorded_by"):
        assert f'name="{name}"' not in html


def test_posting_shows_a_receipt_and_the_same_key_books_once(login_as, db, loan):
    client = login_as("col")
    data = {**payment_form(client), "amount": "8884.88", "mode": "UPI", "reference": "123456789012"}
    first = client.post("/loans/KL1/payments", data=data, headers={"HX-Request": "true"})
    assert first.status_code == 201 and 'data-testid="receipt"' in first.get_data(as_text=True)
    assert "₹8,884.88" in first.get_data(as_text=True) and first.headers["HX-Trigger"] == '{"payment-booked": true}'
    again = client.post("/loans/KL1/payments", data=data, headers={"HX-Request": "true"})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_data() == first.get_data()
    assert count(db) == 1
    changed = client.post("/loans/KL1/payments", data={**data, "amount": "100"}, headers={"HX-Request": "true"})
    assert changed.status_code == 422 and "different request" in changed.get_data(as_text=True)
    assert count(db) == 1


def test_inline_errors_keep_the_form_and_release_the_key(login_as, db, loan):
    client = login_as("col")
    data = {**payment_form(client), "amount": "-5", "mode": "UPI", "reference": "12345"}
    bad = client.post("/loans/KL1/payments", data=data, headers={"HX-Request": "true"})
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422 and 'id="payment-form"' in html and "<html" not in html
    assert 'data-field="amount"' in html and 'data-field="reference"' in html
    fixed = client.post("/loans/KL1/payments", data={**data, "amount": "5", "reference": "123456789012"},
                        headers={"HX-Request": "true"})
    assert fixed.status_code == 201 and count(db) == 1


def test_duplicate_utr_names_the_existing_payment(login_as, db, loan):
    client = login_as("col")
    data = {**payment_form(client), "amount": "10", "mode": "IMPS", "reference": "999999999999"}
    client.post("/loans/KL1/payments", data=data)
    other = {**payment_form(client), "amount": "10", "mode": "IMPS", "reference": "999999999999"}
    response = client.post("/loans/KL1/payments", data=other, headers={"HX-Request": "true"})
    existing = db.scalar(select(Payment.reference))
    assert response.status_code == 409 and f"already used by payment {existing}" in response.get_data(as_text=True)


def test_missing_key_csrf_or_scope_are_refused(login_as, db, loan, make_loan):
    client = login_as("col")
    data = {**payment_form(client), "amount": "10", "mode": "CASH", "receipt_number": "R1"}
    assert client.post("/loans/KL1/payments", data={**data, "csrf_token": ""}).status_code == 400
    assert client.post("/loans/KL1/payments", data={**data, "idempotency_key": ""}).status_code == 422
    make_loan(loan_number="KLN", branch_code="NSK01", collector_username="col2")
    assert client.post("/loans/KLN/payments", data=data).status_code == 404
    legal = login_as("leg")
    assert legal.post("/loans/KL1/payments", data={**data, "csrf_token": csrf_token(legal, "/legal/")}).status_code == 403
    assert count(db) == 0


def test_backdated_payment_is_held_and_approved_from_the_inbox(login_as, db, loan):
    collector = login_as("col")
    data = {**payment_form(collector), "amount": "8884.88", "mode": "CASH", "receipt_number": "R77",
            "value_date": "2026-03-01"}
    held = collector.post("/loans/KL1/payments", data=data, headers={"HX-Request": "true"})
    assert held.status_code == 202 and "waits for a manager" in held.get_data(as_text=True)
    assert collector.get("/approvals/").status_code == 403
    manager = login_as("mgr")
    inbox = manager.get("/approvals/").get_data(as_text=True)
    approval_id = db.scalar(select(Approval.id))
    assert f'value="{approval_id}"' in inbox
    detail = manager.get(f"/approvals/{approval_id}").get_data(as_text=True)
    assert 'data-testid="impact"' in detail
    token = csrf_token(manager, "/approvals/")
    no_reason = manager.post("/approvals/decide", data={"csrf_token": token, "approval_id": approval_id,
                                                         "action": "approve", "reason": ""})
    assert no_reason.status_code == 422
    done = manager.post("/approvals/decide", data={"csrf_token": token, "approval_id": approval_id,
                                                   "action": "approve", "reason": "cash book checked"})
    assert done.status_code == 302
    db.expire_all()
    assert db.scalar(select(Payment.status)) == "POSTED"


def test_reversal_request_goes_to_the_inbox(login_as, db, loan):
    manager = login_as("mgr")
    data = {**payment_form(manager), "amount": "100", "mode": "UPI", "reference": "121212121212"}
    manager.post("/loans/KL1/payments", data=data)
    reference = db.scalar(select(Payment.reference))
    token = csrf_token(manager, "/loans/KL1")
    response = manager.post(f"/payments/{reference}/reversals",
                            data={"csrf_token": token, "amount": "40", "reason": "DUPLICATE", "note": ""})
    assert response.status_code == 302
    finance = login_as("fin")
    assert "Reversal" in finance.get("/approvals/").get_data(as_text=True)
    collector = login_as("col")
    refused = collector.post(f"/payments/{reference}/reversals", data={"csrf_token": csrf_token(collector, "/collector/")})
    assert refused.status_code == 403


def test_loan_page_shows_each_payment_once_with_its_reversals_approved_and_pending(login_as, db, loan):
    manager = login_as("mgr")
    for utr in ("131313131313", "141414141414"):
        manager.post("/loans/KL1/payments", data={**payment_form(manager), "amount": "100", "mode": "UPI", "reference": utr})
    reversed_one = db.scalar(select(Payment.reference).where(Payment.utr == "131313131313"))
    for amount in ("40", "25"):
        manager.post(f"/payments/{reversed_one}/reversals",
                     data={"csrf_token": csrf_token(manager, "/loans/KL1"), "amount": amount, "reason": "DUPLICATE", "note": ""})
    first = db.scalar(select(Approval.id).where(Approval.reversal_id.is_not(None)).order_by(Approval.id))
    finance = login_as("fin")
    finance.post("/approvals/decide", data={"csrf_token": csrf_token(finance, "/approvals/"), "approval_id": first,
                                            "action": "approve", "reason": "bank confirmed"})
    page = login_as("mgr").get("/loans/KL1").get_data(as_text=True)
    rows = re.findall(r'<tr data-payment="(KP\w+)">(.*?)</tr>', page, re.S)
    assert sorted(reference for reference, _ in rows) == sorted(db.scalars(select(Payment.reference)))
    cells = dict(rows)
    assert '"num">₹40.00<br><small class="muted">₹25.00 awaiting approval</small>' in cells[reversed_one]
    assert all("awaiting approval" not in row for reference, row in rows if reference != reversed_one)


def test_receipt_page_is_scoped(login_as, db, loan, make_loan):
    client = login_as("col")
    client.post("/loans/KL1/payments", data={**payment_form(client), "amount": "10", "mode": "CASH",
                                             "receipt_number": "R9"})
    reference = db.scalar(select(Payment.reference))
    page = client.get(f"/payments/{reference}")
    assert page.status_code == 200 and "data-print" in page.get_data(as_text=True)
    assert login_as("col2").get(f"/payments/{reference}").status_code == 404


def test_loan_page_offers_a_reversal_only_while_something_is_left_to_reverse(login_as, db, loan):
    manager = login_as("mgr")
    manager.post("/loans/KL1/payments", data={**payment_form(manager), "amount": "100", "mode": "UPI",
                                              "reference": "151515151515"})
    reference = db.scalar(select(Payment.reference))
    offer = f"Request a reversal of {reference}"
    assert offer in manager.get("/loans/KL1").get_data(as_text=True)
    assert offer not in login_as("col").get("/loans/KL1").get_data(as_text=True)  # no permission to ask
    manager = login_as("mgr")
    manager.post(f"/payments/{reference}/reversals", data={"csrf_token": csrf_token(manager, "/loans/KL1"),
                                                           "amount": "60", "reason": "DUPLICATE", "note": ""})
    assert offer in manager.get("/loans/KL1").get_data(as_text=True)  # 40 left
    manager.post(f"/payments/{reference}/reversals", data={"csrf_token": csrf_token(manager, "/loans/KL1"),
                                                           "amount": "40", "reason": "DUPLICATE", "note": ""})
    assert offer not in manager.get("/loans/KL1").get_data(as_text=True)  # all of it awaits approval
