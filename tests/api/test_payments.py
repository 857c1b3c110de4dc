"""POST /payments: the Idempotency-Key contract, duplicate UTRs, backdating, scope, money as strings."""
from datetime import timedelta

import pytest

from tests.api.conftest import assert_envelope
from webapp import clock
from webapp.models import Approval, AuditEntry, IdempotencyRecord, Payment


@pytest.fixture()
def loan(make_loan):
    return make_loan()


def test_the_key_is_required(api, db, loan):
    body = assert_envelope(api.pay("col", key=""), 400, "idempotency_key_required")
    assert body["error"]["fields"] == {"Idempotency-Key": "is required"}
    assert_envelope(api.pay("col", key="short"), 422, "idempotency_key_required")
    assert db.query(Payment).count() == 0


def test_posted_payment_is_201_with_exact_money(api, db, loan):
    data = assert_envelope(api.pay("col", amount="8791.59"), 201)["data"]
    assert data["amount"] == "8791.59" and data["mode"] == "UPI" and data["utr"] == "123456789012"
    assert data["status"] == "POSTED" and data["approval_id"] is None and data["recorded_by"] == "col"
    assert data["value_date"] == clock.today_ist().isoformat() and data["created_at"].endswith("+05:30")
    assert set(data["loan_position"]) == {"dpd", "asset_class", "bucket", "overdue_amount", "outstanding_principal"}
    assert db.query(Payment).one().amount_paise == 879159


def test_replay_returns_the_stored_response_byte_for_byte(api, db, loan):
    first = api.pay("col", key="key-0001-replay")
    second = api.pay("col", key="key-0001-replay")
    assert first.status_code == second.status_code == 201
    assert second.get_data() == first.get_data()
    assert second.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert db.query(Payment).count() == 1


def test_backdated_replay_keeps_its_202(api, db, loan):
    old = (clock.today_ist() - timedelta(days=10)).isoformat()
    first = api.pay("col", key="key-0002-backdated", value_date=old)
    data = assert_envelope(first, 202)["data"]
    approval = db.get(Approval, data["approval_id"])
    assert approval.kind == "BACKDATED_PAYMENT" and data["status"] == "PENDING_APPROVAL" and data["loan_position"] is None
    again = api.pay("col", key="key-0002-backdated", value_date=old)
    assert again.status_code == 202 and again.get_data() == first.get_data()
    decided = assert_envelope(api.post(f"/approvals/{approval.id}/approve", "mgr", json={"reason": "receipt seen"}), 200)
    assert decided["data"]["status"] == "APPROVED"
    assert assert_envelope(api.get(f"/payments/{data['reference']}", "col"), 200)["data"]["status"] == "POSTED"


def test_same_key_different_body_is_422(api, db, loan):
    assert_envelope(api.pay("col", key="key-0003-reused"), 201)
    body = assert_envelope(api.pay("col", key="key-0003-reused", amount="2000"), 422, "idempotency_key_reused")
    assert "Idempotency-Key" in body["error"]["fields"]
    assert db.query(Payment).count() == 1


def test_same_key_other_user_is_422(api, db, make_loan, loan):
    assert_envelope(api.pay("col", key="key-0004-owner"), 201)
    assert_envelope(api.pay("mgr", key="key-0004-owner"), 422, "idempotency_key_reused")


def test_duplicate_utr_is_409_naming_the_payment(api, db, loan):
    first = assert_envelope(api.pay("col"), 201)["data"]
    body = assert_envelope(api.pay("mgr", utr="123456789012"), 409, "duplicate_utr")
    assert first["reference"] in body["error"]["message"] and first["reference"] in body["error"]["fields"]["utr"]
    assert db.query(Payment).count() == 1


def test_a_refused_payment_releases_its_key(api, db, loan):
    body = assert_envelope(api.pay("col", key="key-0005-release", utr="12"), 422)
    assert set(body["error"]["fields"]) == {"utr"}
    assert db.query(IdempotencyRecord).count() == 0
    assert_envelope(api.pay("col", key="key-0005-release"), 201)


@pytest.mark.parametrize("change, field", [
    ({"amount": 1000.5}, "amount"), ({"amount": "10.001"}, "amount"), ({"amount": "-5"}, "amount"),
    ({"amount": "1e3"}, "amount"), ({"mode": "BITCOIN"}, "mode"), ({"value_date": "2999-01-01"}, "value_date"),
    ({"value_date": "28/11/2026"}, "value_date"), ({"mode": "CASH"}, "utr"), ({"utr": None}, "utr"),
    ({"amount": "99999999"}, "amount"), ({"loan_number": None}, "loan_number"), ({"extra": "x"}, "extra"),
])
def test_bad_fields_are_named(api, db, loan, change, field):
    body = assert_envelope(api.pay("col", **change), 422)
    assert field in body["error"]["fields"], body
    assert db.query(Payment).count() == 0


def test_cash_needs_a_receipt(api, db, loan):
    body = assert_envelope(api.pay("col", mode="CASH", utr=None), 422)
    assert "receipt_number" in body["error"]["fields"]
    data = assert_envelope(api.pay("col", mode="CASH", utr=None, receipt_number="R-101"), 201)["data"]
    assert data["receipt_number"] == "R-101" and data["utr"] is None


def test_scope_and_roles(api, db, loan):
    assert_envelope(api.pay("leg"), 403, "forbidden")  # legal never records payments
    assert_envelope(api.pay("adm"), 403, "forbidden")
    assert_envelope(api.pay("col2"), 404, "not_found")  # another branch's loan: not revealed
    assert_envelope(api.pay("mgr2"), 404, "not_found")
    assert_envelope(api.pay("fin", utr="999999999999"), 201)
    assert db.query(Payment).count() == 1


def test_payments_are_audited(api, db, loan):
    reference = assert_envelope(api.pay("col"), 201)["data"]["reference"]
    assert db.query(AuditEntry).filter_by(action="payment.posted", entity_id=reference).count() == 1
