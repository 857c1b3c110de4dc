"""Each endpoint through the same services, scope and rules as the screens; envelope, shapes and filters."""
import io
import re
from urllib.parse import quote
from datetime import timedelta

import pytest

from tests.api.conftest import assert_envelope
from tests.recon_support import hdfc_csv, upi
from webapp import clock
from webapp.models import AuditEntry, Loan, Payment

AMOUNT_RE = re.compile(r"^\d+\.\d{2}$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?\+05:30$")


@pytest.fixture()
def loans3(make_loan):
    return [make_loan(), make_loan(loan_number="KL0002", principal="50000", disbursed_on=clock.today_ist().isoformat(),
                                   first_due_on=(clock.today_ist() + timedelta(days=20)).isoformat()),
            make_loan(loan_number="KN0001", branch_code="NSK01", collector_username="col2")]


def test_loan_list_is_scoped_paginated_and_filtered(api, loans3):
    body = assert_envelope(api.get("/loans?per_page=1", "mgr"), 200)
    assert body["meta"] | {"request_id": None} == {"page": 1, "per_page": 1, "total": 2, "pages": 2, "request_id": None}
    assert [l["loan_number"] for l in assert_envelope(api.get("/loans?per_page=10&sort=number", "fin"), 200)["data"]] == \
        ["KL0001", "KL0002", "KN0001"]
    assert [l["loan_number"] for l in assert_envelope(api.get("/loans", "col2"), 200)["data"]] == ["KN0001"]
    item = assert_envelope(api.get("/loans?branch=PUNE01&status=ACTIVE&dpd_min=1", "fin"), 200)["data"]
    assert [l["loan_number"] for l in item] == ["KL0001"]
    loan = item[0]
    assert AMOUNT_RE.match(loan["principal"]) and AMOUNT_RE.match(loan["overdue_amount"]) and DATE_RE.match(loan["disbursed_on"])
    assert loan["asset_class"] == "NPA" and loan["bucket"] == assert_envelope(api.get(f"/loans?bucket={quote(loan['bucket'])}", "fin"), 200)["data"][0]["bucket"]
    assert [l["loan_number"] for l in assert_envelope(api.get("/loans?dpd_max=0", "fin"), 200)["data"]] == ["KL0002"]
    assert [l["loan_number"] for l in assert_envelope(api.get("/loans?asset_class=NPA&collector=col", "fin"), 200)["data"]] == ["KL0001"]
    assert [l["loan_number"] for l in assert_envelope(
        api.get(f"/loans?disbursed_from={clock.today_ist().isoformat()}", "fin"), 200)["data"]] == ["KL0002"]


@pytest.mark.parametrize("query, field", [("page=0", "page"), ("per_page=500", "per_page"), ("dpd_min=x", "dpd_min"),
                                          ("asset_class=BAD", "asset_class"), ("status=OPEN", "status"),
                                          ("disbursed_from=2026-13-01", "disbursed_from"), ("dpd_min=5&dpd_max=1", "dpd_max"),
                                          ("sort=evil", "sort")])
def test_bad_filters_are_422_naming_the_parameter(api, loans3, query, field):
    assert field in assert_envelope(api.get(f"/loans?{query}", "fin"), 422)["error"]["fields"]


def test_loan_detail_and_schedule(api, loans3):
    loan = assert_envelope(api.get("/loans/kl0001", "col"), 200)["data"]
    assert loan["loan_number"] == "KL0001" and loan["annual_rate"] == "12.00" and loan["tenure_months"] == 12
    assert TS_RE.match(loan["created_at"]) and loan["borrower"]["phone"] == "9876543210"
    body = assert_envelope(api.get("/loans/KL0001/schedule?per_page=5&page=3", "col"), 200)
    assert body["meta"]["total"] == 12 and [r["seq"] for r in body["data"]] == [11, 12]
    assert all(AMOUNT_RE.match(r["total_due"]) and DATE_RE.match(r["due_date"]) for r in body["data"])


@pytest.mark.parametrize("user, path", [("col2", "/loans/KL0001"), ("col", "/loans/KN0001"), ("mgr2", "/loans/KL0001"),
                                        ("leg", "/loans/KL0002"), ("col2", "/loans/KL0001/schedule"),
                                        ("fin", "/loans/NOPE")])
def test_out_of_scope_is_404(api, loans3, user, path):
    assert_envelope(api.get(path, user), 404, "not_found")


def test_create_loan_admin_only(api, users):
    row = {"loan_number": "KLAPI1", "borrower_name": "Asha More", "borrower_phone": "9822012345", "branch_code": "PUNE01",
           "collector_username": "col", "principal": "250000.00", "annual_rate": "14.5", "tenure_months": 24,
           "disbursed_on": "2026-10-01", "first_due_on": "2026-11-05"}
    assert_envelope(api.post("/loans", "mgr", json=row), 403, "forbidden")
    loan = assert_envelope(api.post("/loans", "adm", json=row), 201)["data"]
    assert loan["principal"] == "250000.00" and loan["annual_rate"] == "14.50" and loan["collector"] == "col"
    body = assert_envelope(api.post("/loans", "adm", json=row | {"loan_number": "KLAPI2", "principal": 250000}), 422)
    assert body["error"]["fields"]["principal"].startswith("must be a string (a decimal string")
    body = assert_envelope(api.post("/loans", "adm", json=row | {"loan_number": "KLAPI2", "tenure_months": 0}), 422)
    assert set(body["error"]["fields"]) == {"tenure_months"}
    body = assert_envelope(api.post("/loans", "adm", json=row | {"loan_number": "KLAPI2", "borrower_phone": "123",
                                                                   "first_due_on": "2026-09-01"}), 422)
    assert set(body["error"]["fields"]) == {"borrower_phone", "first_due_on"}
    assert_envelope(api.post("/loans", "adm", json=row), 422)  # the loan number exists


def test_patch_changes_only_the_collector_and_contact_details(api, db, loans3, users):
    from webapp.services import org
    from webapp.permissions import SystemActor

    org.create_user(db, SystemActor("t"), username="col3", role="collector", password="correct-horse-battery",
                    branch_code="PUNE01")
    data = assert_envelope(api.patch("/loans/KL0001", "mgr", json={"collector_username": "col3",
                                                                    "borrower_phone": "+91 98220 11111"}), 200)["data"]
    assert data["collector"] == "col3" and data["borrower"]["phone"] == "9822011111"
    assert_envelope(api.patch("/loans/KL0001", "col", json={"borrower_phone": "9822011111"}), 404)  # no longer theirs
    assert_envelope(api.patch("/loans/KL0002", "col", json={"borrower_phone": "9822011111"}), 403)
    assert_envelope(api.patch("/loans/KN0001", "mgr", json={"collector_username": None}), 404)
    assert "collector_username" in assert_envelope(
        api.patch("/loans/KL0001", "mgr", json={"collector_username": "col2"}), 422)["error"]["fields"]
    assert_envelope(api.patch("/loans/KL0001", "mgr", json={}), 422)


READ_ONLY = ["dpd", "bucket", "asset_class", "status", "instalment_status", "principal", "rate", "annual_rate",
             "tenure", "tenure_months", "schedule"]


@pytest.mark.parametrize("field", READ_ONLY)
def test_every_read_only_field_is_refused_by_name_and_audited_on_patch(api, db, loans3, field):
    before = db.query(Loan).filter_by(loan_number="KL0001").one().dpd
    body = assert_envelope(api.patch("/loans/KL0001", "mgr", json={field: 0, "borrower_email": "a@b.in"}), 422,
                           "immutable_field")
    assert set(body["error"]["fields"]) == {field}
    entry = db.query(AuditEntry).filter_by(action="loan.change_refused", entity_id="KL0001").one()
    assert field in entry.after
    db.expire_all()
    loan = db.query(Loan).filter_by(loan_number="KL0001").one()
    assert loan.dpd == before and loan.borrower.email is None  # nothing of the request was written


def test_all_read_only_fields_at_once_are_each_named(api, db, loans3):
    body = assert_envelope(api.patch("/loans/KL0001", "adm", json={f: "1" for f in READ_ONLY}), 422, "immutable_field")
    assert set(body["error"]["fields"]) == set(READ_ONLY)


@pytest.mark.parametrize("field", READ_ONLY)
def test_read_only_fields_in_a_payment_are_refused_and_audited(api, db, loans3, field):
    body = assert_envelope(api.pay("col", **{field: "POSTED"}), 422, "immutable_field")
    assert set(body["error"]["fields"]) == {field}
    assert db.query(Payment).count() == 0
    entry = db.query(AuditEntry).filter_by(action="api.read_only_refused").one()
    assert entry.entity_type == "loan" and entry.entity_id == "KL0001" and field in entry.after


@pytest.mark.parametrize("field", ["dpd", "bucket", "asset_class", "status", "instalment_status", "schedule"])
def test_read_only_fields_in_a_new_loan_are_refused(api, db, users, field):
    row = {"loan_number": "KLRO1", "borrower_name": "Asha More", "borrower_phone": "9822012345", "branch_code": "PUNE01",
           "principal": "1000.00", "annual_rate": "12", "tenure_months": 6, "disbursed_on": "2026-10-01",
           "first_due_on": "2026-11-05", field: "STANDARD"}
    assert set(assert_envelope(api.post("/loans", "adm", json=row), 422, "immutable_field")["error"]["fields"]) == {field}
    assert db.query(AuditEntry).filter_by(action="api.read_only_refused").count() == 1
    assert db.query(Loan).filter_by(loan_number="KLRO1").count() == 0


def test_reversal_and_approvals_through_the_api(api, db, loans3):
    payment = assert_envelope(api.pay("col", amount="5000"), 201)["data"]
    assert_envelope(api.post(f"/payments/{payment['reference']}/reversals", "col", json={"reason": "DUPLICATE"}), 403)
    approval = assert_envelope(api.post(f"/payments/{payment['reference']}/reversals", "mgr",
                                        json={"reason": "DUPLICATE", "amount": "2000.00"}), 201)["data"]
    assert approval["kind"] == "REVERSAL" and approval["amount"] == "2000.00" and approval["status"] == "PENDING"
    inbox = assert_envelope(api.get("/approvals?kind=REVERSAL", "fin"), 200)
    assert [a["id"] for a in inbox["data"]] == [approval["id"]] and inbox["meta"]["total"] == 1
    assert_envelope(api.get("/approvals", "col"), 403)
    assert assert_envelope(api.get("/approvals?kind=REVERSAL&branch=NSK01", "fin"), 200)["meta"]["total"] == 0
    assert assert_envelope(api.get("/approvals?branch=pune01", "fin"), 200)["meta"]["total"] == 1
    assert_envelope(api.post(f"/approvals/{approval['id']}/approve", "mgr", json={"reason": "ok"}), 403)  # own item
    assert_envelope(api.post(f"/approvals/{approval['id']}/approve", "fin", json={}), 422)
    decided = assert_envelope(api.post(f"/approvals/{approval['id']}/approve", "fin", json={"reason": "bank confirmed"}), 200)["data"]
    assert decided["status"] == "APPROVED" and decided["checker"] == "fin" and TS_RE.match(decided["decided_at"])
    assert_envelope(api.post(f"/approvals/{approval['id']}/reject", "fin", json={"reason": "again"}), 409, "already_decided")
    assert assert_envelope(api.get(f"/payments/{payment['reference']}", "col"), 200)["data"]["reversed"] == "2000.00"
    assert_envelope(api.get(f"/payments/{payment['reference']}", "col2"), 404)
    assert_envelope(api.post("/approvals/999999/approve", "fin", json={"reason": "x"}), 404)


def test_disputes_raise_and_resolve(api, db, loans3):
    dispute = assert_envelope(api.post("/disputes", "col", json={"loan_number": "KL0001", "category": "WRONG_AMOUNT",
                                                                  "description": "EMI shown is wrong"}), 201)["data"]
    assert dispute["status"] == "OPEN" and TS_RE.match(dispute["created_at"])
    assert_envelope(api.post("/disputes", "col2", json={"loan_number": "KL0001", "category": "WRONG_AMOUNT",
                                                        "description": "x"}), 404)
    assert_envelope(api.post("/disputes", "col", json={"loan_number": "KL0001", "category": "WRONG_AMOUNT",
                                                       "description": "again"}), 409, "duplicate_dispute")
    ref = dispute["reference"]
    assert_envelope(api.post(f"/disputes/{ref}/resolve", "col", json={"outcome": "REJECTED", "note": "n"}), 403)
    assert_envelope(api.post(f"/disputes/{ref}/resolve", "mgr2", json={"outcome": "REJECTED", "note": "n"}), 404)
    assert "outcome" in assert_envelope(api.post(f"/disputes/{ref}/resolve", "mgr", json={"outcome": "MAYBE", "note": "n"}),
                                        422)["error"]["fields"]
    resolved = assert_envelope(api.post(f"/disputes/{ref}/resolve", "mgr", json={"outcome": "REJECTED",
                                                                                  "note": "EMI is right"}), 200)["data"]
    assert resolved["status"] == "RESOLVED_REJECTED" and resolved["resolved_by"] == "mgr"
    assert_envelope(api.post(f"/disputes/{ref}/resolve", "mgr", json={"outcome": "UPHELD", "note": "n"}), 409,
                    "dispute_resolved")


def test_statement_import_finance_only(api, db, loans3):
    day = clock.today_ist() - timedelta(days=2)
    data = hdfc_csv([upi(day, "1000.00", "123456789012")])
    assert_envelope(api.post("/reconciliation/statements", "mgr", data={"bank": "HDFC", "file": (io.BytesIO(data), "s.csv")},
                             content_type="multipart/form-data"), 403)
    assert_envelope(api.post("/reconciliation/statements", "col", data={"bank": "HDFC", "file": (io.BytesIO(data), "s.csv")},
                             content_type="multipart/form-data"), 403)
    assert set(assert_envelope(api.post("/reconciliation/statements", "fin", data={}, content_type="multipart/form-data"),
                               422)["error"]["fields"]) == {"bank", "file"}
    statement = assert_envelope(api.post("/reconciliation/statements", "fin",
                                         data={"bank": "HDFC", "file": (io.BytesIO(data), "s.csv")},
                                         content_type="multipart/form-data"), 201)["data"]
    assert statement["credit_total"] == "1000.00" and statement["credits"] == 1
    assert_envelope(api.post("/reconciliation/statements", "fin", data={"bank": "HDFC", "file": (io.BytesIO(data), "s.csv")},
                             content_type="multipart/form-data"), 409, "duplicate_statement")


def test_dayend_runs_admin_only(api, db, users):
    from webapp.models import CronRun

    db.add(CronRun(job="dayend", business_date=clock.today_ist() - timedelta(days=1), attempt=1, status="SUCCEEDED",
                   loans_processed=3, finished_at=clock.now()))
    db.flush()
    body = assert_envelope(api.get("/dayend/runs?status=SUCCEEDED", "adm"), 200)
    assert body["meta"]["total"] == 1 and TS_RE.match(body["data"][0]["started_at"])
    assert body["data"][0]["business_date"] == (clock.today_ist() - timedelta(days=1)).isoformat()
    assert_envelope(api.get("/dayend/runs", "mgr"), 403)
    assert "status" in assert_envelope(api.get("/dayend/runs?status=DONE", "adm"), 422)["error"]["fields"]


def test_envelope_on_framework_errors(api, users):
    assert_envelope(api.call("DELETE", "/loans", "fin"), 405)
    assert_envelope(api.get("/nothing", "fin"), 404)
    assert_envelope(api.post("/loans", "adm", data="{not json", content_type="application/json"), 400)


@pytest.mark.parametrize("path", ["/loans?clas=NPA", "/loans?=0", "/approvals?mkr=x", "/dayend/runs?day=2026-01-01",
                                  "/loans/KL0001?verbose=1"])
def test_unknown_query_parameters_are_refused(api, loans3, path):
    body = assert_envelope(api.get(path, "adm" if "dayend" in path else "fin"), 422)
    assert list(body["error"]["fields"].values()) == ["is not a parameter of this request"]
