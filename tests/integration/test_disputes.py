"""Disputes through their services on both databases: raising with evidence, every transition and refusal,
the reversal an upheld payment dispute asks for, immutability (service and triggers), scope, ageing, flags."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from tests.disputes_support import EXE, TEXT, evidence_dir, jpeg, pay, pdf, png, standard_loan, upload  # noqa: F401
from webapp import clock
from webapp.errors import Conflict, Forbidden, NotFound, ValidationError
from webapp.models import AuditEntry, Dispute, DisputeEvidence
from webapp.permissions import loan_visible
from webapp.services import approvals, audit, disputes, loans
from webapp.services.disputes import EvidenceCorrupt


def raise_(db, user, loan_number="KL1", files=(), **fields):
    fields.setdefault("category", "PAYMENT_NOT_CREDITED")
    fields.setdefault("description", "Paid ₹1,000 by UPI on the 3rd; not shown on the loan.")
    return disputes.raise_dispute(db, user, loan_number, fields, list(files))


def actions(db, dispute):
    return [e.action for e in db.scalars(select(AuditEntry).where(
        AuditEntry.entity_type == "dispute", AuditEntry.entity_id == dispute.reference).order_by(AuditEntry.seq))]


@pytest.fixture()
def loan(make_loan):
    return make_loan(loan_number="KL1")  # PUNE01, collector col; NPA by now


# ---------------------------------------------------------------- raising with evidence

def test_collector_raises_a_payment_dispute_with_evidence(db, users, loan, evidence_dir):
    payment = pay(db, users["col"], "KL1")
    photo, statement = png(), pdf()
    dispute = raise_(db, users["col"], payment=payment.reference.lower(),
                     files=[upload("receipt photo.png", photo), upload("../../etc/statement.pdf", statement)])
    assert (dispute.status, dispute.payment_id, dispute.loan_id, dispute.branch_id) == \
        ("OPEN", payment.id, loan.id, loan.branch_id)
    assert dispute.reference.startswith("KD") and len(dispute.reference) == 12
    assert dispute.raised_by_id == users["col"].id
    first, second = dispute.evidence
    assert (first.original_name, first.content_type, first.size_bytes) == ("receipt photo.png", "image/png", len(photo))
    assert (second.original_name, second.content_type) == ("statement.pdf", "application/pdf")  # no path kept
    for row, data in ((first, photo), (second, statement)):
        assert row.sha256 == hashlib.sha256(data).hexdigest()
        stored = evidence_dir / row.stored_name[:2] / row.stored_name
        assert stored.read_bytes() == data  # under EVIDENCE_DIR, by a random name only
        assert len(row.stored_name) == 32 and row.original_name not in str(stored)
    assert "static" not in str(evidence_dir)
    assert actions(db, dispute) == ["dispute.raised", "dispute.evidence_added", "dispute.evidence_added"]
    raised = json.loads(db.scalar(select(AuditEntry.after).where(AuditEntry.action == "dispute.raised")))
    assert raised["payment"] == payment.reference and raised["status"] == "OPEN" and raised["raised_by"] == "col"
    added = json.loads(db.scalar(select(AuditEntry.after).where(AuditEntry.action == "dispute.evidence_added")
                                 .order_by(AuditEntry.seq)))
    assert added["sha256"] == first.sha256 and added["file"] == "receipt photo.png"


def test_every_raising_role_may_raise_admin_may_not(db, users, loan):
    for username, category in (("mgr", "CHARGES"), ("fin", "WRONG_AMOUNT"), ("leg", "OTHER"), ("col", "WRONG_LOAN")):
        assert raise_(db, users[username], category=category).status == "OPEN"
    with pytest.raises(Forbidden):
        raise_(db, users["adm"], category="PAYMENT_NOT_CREDITED")


def test_a_loan_outside_scope_is_not_found(db, users, loan, make_loan):
    make_loan(loan_number="KLN", branch_code="NSK01", collector_username="col2", borrower_phone="9000000002")
    for username in ("col", "mgr"):
        with pytest.raises(NotFound):
            raise_(db, users[username], loan_number="KLN")
    with pytest.raises(NotFound):
        raise_(db, users["col2"], loan_number="KL1")


@pytest.mark.parametrize("fields, field, problem", [
    ({"category": ""}, "category", "must be one of"),
    ({"category": "ANGRY"}, "category", "must be one of"),
    ({"description": "  "}, "description", "is required"),
    ({"description": "x" * 2001}, "description", "at most 2000"),
    ({"payment": "KPNOTAPAYMENT"}, "payment", "is not a payment of loan KL1"),
    ({"supersedes": "KD0000000000"}, "supersedes", "is not a dispute of loan KL1"),
])
def test_raising_refuses_bad_fields_by_name(db, users, loan, fields, field, problem):
    with pytest.raises(ValidationError) as refused:
        raise_(db, users["col"], **fields)
    assert problem in refused.value.fields[field]
    assert db.scalar(select(func.count()).select_from(Dispute)) == 0


def test_a_payment_of_another_loan_is_refused(db, users, loan, make_loan):
    make_loan(loan_number="KL2", borrower_phone="9000000003")
    other = pay(db, users["col"], "KL2")
    with pytest.raises(ValidationError) as refused:
        raise_(db, users["col"], payment=other.reference)
    assert "is not a payment of loan KL1" in refused.value.fields["payment"]


@pytest.mark.parametrize("name, data", [
    ("invoice.png", EXE),          # an .exe renamed .png
    ("statement.pdf", TEXT),       # text named .pdf
    ("photo.jpg", TEXT),
    ("fake.pdf", b"%PDF-1.4 but no end of file marker"),
    ("half.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20),  # the signature without an image header
])
def test_disguised_files_are_refused_from_their_content(db, users, loan, name, data, evidence_dir):
    with pytest.raises(ValidationError) as refused:
        raise_(db, users["col"], files=[upload(name, data)])
    assert f"{name}: is not a PDF, JPEG or PNG file (checked from its content" in refused.value.fields["evidence"]
    assert db.scalar(select(func.count()).select_from(DisputeEvidence)) == 0
    assert not evidence_dir.exists() or not [p for p in evidence_dir.rglob("*") if p.is_file()]


def test_the_type_comes_from_the_content_not_the_name(db, users, loan):
    dispute = raise_(db, users["col"], files=[upload("scan.pdf", png()), upload("photo.png", jpeg())])
    assert [e.content_type for e in dispute.evidence] == ["image/png", "image/jpeg"]


def test_oversized_empty_and_too_many_files_are_refused(db, users, loan, service_app, monkeypatch):
    monkeypatch.setitem(service_app.config, "EVIDENCE_MAX_BYTES", 1024)
    with pytest.raises(ValidationError) as refused:
        raise_(db, users["col"], files=[upload("big.png", png(200, 200) + b"\x00" * 2048)])
    assert refused.value.fields["evidence"] == "big.png: is larger than 1 KB"
    with pytest.raises(ValidationError) as refused:
        raise_(db, users["col"], files=[upload("empty.pdf", b"")])
    assert refused.value.fields["evidence"] == "empty.pdf: is empty"
    with pytest.raises(ValidationError) as refused:
        raise_(db, users["col"], files=[upload(f"p{i}.png", png()) for i in range(6)])
    assert refused.value.fields["evidence"] == "at most 5 files per dispute"
    dispute = raise_(db, users["col"], files=[upload(f"p{i}.png", png()) for i in range(5)])
    with pytest.raises(ValidationError) as refused:
        disputes.add_evidence(db, users["col"], dispute.reference, [upload("sixth.png", png())])
    assert refused.value.fields["evidence"] == "at most 5 files per dispute (5 already attached)"


def test_a_second_open_dispute_on_the_same_thing_is_refused(db, users, loan):
    first = raise_(db, users["col"])
    with pytest.raises(Conflict) as refused:
        raise_(db, users["mgr"])
    assert refused.value.code == "duplicate_dispute" and first.reference in refused.value.message
    assert raise_(db, users["mgr"], category="CHARGES").status == "OPEN"  # another category is another matter


def test_evidence_can_be_added_while_open(db, users, loan):
    dispute = raise_(db, users["col"])
    rows = disputes.add_evidence(db, users["mgr"], dispute.reference, [upload("bank.pdf", pdf())])
    assert [e.original_name for e in dispute.evidence] == ["bank.pdf"] and rows[0].uploaded_by_id == users["mgr"].id
    with pytest.raises(ValidationError):
        disputes.add_evidence(db, users["col"], dispute.reference, [])
    assert actions(db, dispute) == ["dispute.raised", "dispute.evidence_added"]


# ---------------------------------------------------------------- review and resolution

def test_manager_reviews_and_rejects_with_a_note(db, users, loan):
    dispute = raise_(db, users["col"])
    with pytest.raises(Conflict) as early:
        disputes.resolve(db, users["mgr"], dispute.reference, outcome="REJECTED", note="no")
    assert early.value.code == "review_not_started"
    disputes.start_review(db, users["mgr"], dispute.reference)
    assert (dispute.status, dispute.reviewer_id) == ("UNDER_REVIEW", users["mgr"].id)
    with pytest.raises(Conflict) as again:
        disputes.start_review(db, users["mgr"], dispute.reference)
    assert again.value.code == "already_under_review"
    for outcome, note, field in (("UPHELD", "  ", "note"), ("MAYBE", "ok", "outcome")):
        with pytest.raises(ValidationError) as refused:
            disputes.resolve(db, users["mgr"], dispute.reference, outcome=outcome, note=note)
        assert field in refused.value.fields
    disputes.resolve(db, users["mgr"], dispute.reference, outcome="rejected",
                     note="Bank statement shows no credit on the 3rd.")
    assert (dispute.status, dispute.resolved_by_id, dispute.resolution_note) == \
        ("RESOLVED_REJECTED", users["mgr"].id, "Bank statement shows no credit on the 3rd.")
    assert dispute.resolved_at is not None
    assert actions(db, dispute) == ["dispute.raised", "dispute.review_started", "dispute.resolved_rejected"]
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "dispute.resolved_rejected"))
    assert json.loads(entry.before) == {"status": "UNDER_REVIEW"}
    assert json.loads(entry.after)["status"] == "RESOLVED_REJECTED" and entry.actor_id == users["mgr"].id
    review = db.scalar(select(AuditEntry).where(AuditEntry.action == "dispute.review_started"))
    assert (json.loads(review.before), json.loads(review.after)["status"]) == ({"status": "OPEN"}, "UNDER_REVIEW")


def test_only_a_manager_of_the_branch_who_did_not_raise_it_resolves(db, users, loan):
    dispute = raise_(db, users["mgr"])
    with pytest.raises(Forbidden) as own:
        disputes.start_review(db, users["mgr"], dispute.reference)
    assert "you raised this dispute" in own.value.message
    for username in ("col", "fin", "adm"):  # no resolve_dispute permission
        with pytest.raises(Forbidden):
            disputes.start_review(db, users[username], dispute.reference)
    with pytest.raises(Forbidden) as legal:
        disputes.start_review(db, users["leg"], dispute.reference)  # sees the NPA loan, but not its resolver
    assert "manager of the loan's branch" in legal.value.message
    with pytest.raises(NotFound):
        disputes.start_review(db, users["mgr2"], dispute.reference)  # another branch: not even visible
    assert dispute.status == "OPEN"
    assert not disputes.can_review(users["mgr"], dispute) and not disputes.can_review(users["leg"], dispute)


def test_the_database_refuses_a_raiser_as_reviewer_or_resolver(db, users, loan):
    dispute = raise_(db, users["mgr"])
    for sql in (f"UPDATE disputes SET status = 'UNDER_REVIEW', reviewer_id = {users['mgr'].id}, "
                f"review_started_at = CURRENT_TIMESTAMP WHERE id = {dispute.id}",):
        with pytest.raises(IntegrityError):
            with db.begin_nested():
                db.execute(text(sql))
    db.execute(text(f"UPDATE disputes SET status = 'UNDER_REVIEW', reviewer_id = {users['mgr2'].id}, "
                    f"review_started_at = CURRENT_TIMESTAMP WHERE id = {dispute.id}"))
    with pytest.raises(IntegrityError):
        with db.begin_nested():
            db.execute(text(f"UPDATE disputes SET status = 'RESOLVED_UPHELD', resolved_by_id = {users['mgr'].id}, "
                            f"resolved_at = CURRENT_TIMESTAMP, resolution_note = 'mine' WHERE id = {dispute.id}"))
    with pytest.raises(IntegrityError):  # a resolution without its note
        with db.begin_nested():
            db.execute(text(f"UPDATE disputes SET status = 'RESOLVED_UPHELD', resolved_by_id = {users['mgr2'].id}, "
                            f"resolved_at = CURRENT_TIMESTAMP WHERE id = {dispute.id}"))


def test_conduct_complaint_goes_to_legal_who_can_now_see_the_loan(db, users, standard_loan):
    assert standard_loan.asset_class == "STANDARD" and not loan_visible(users["leg"], standard_loan)
    with pytest.raises(NotFound):
        loans.get_for(db, users["leg"], "KLSTD")
    dispute = raise_(db, users["col"], loan_number="KLSTD", category="CONDUCT_COMPLAINT",
                     description="The borrower says the agent called at 22:30 and threatened her.")
    assert standard_loan.has_conduct_complaint
    assert loans.get_for(db, users["leg"], "KLSTD") is standard_loan
    assert [l.loan_number for l in loans.list_for(db, users["leg"]).items] == ["KLSTD"]
    assert json.loads(db.scalar(select(AuditEntry.after).where(AuditEntry.action == "dispute.raised"))) \
        ["loan_put_in_legal_scope"] is True
    with pytest.raises(Forbidden) as manager:
        disputes.start_review(db, users["mgr"], dispute.reference)
    assert "conduct complaints are reviewed and resolved by legal" in manager.value.message
    disputes.start_review(db, users["leg"], dispute.reference)
    with pytest.raises(ValidationError) as no_reversal:  # not a payment dispute, and legal cannot request one
        disputes.resolve(db, users["leg"], dispute.reference, outcome="UPHELD", note="Call log confirms it.",
                         reversal={"amount": ""})
    assert "reversal" in no_reversal.value.fields
    disputes.resolve(db, users["leg"], dispute.reference, outcome="UPHELD", note="Call log confirms it.")
    assert dispute.status == "RESOLVED_UPHELD" and dispute.resolved_by_id == users["leg"].id
    assert loans.get_for(db, users["leg"], "KLSTD")  # the loan stays in legal's scope with its history


def test_upheld_payment_dispute_asks_for_a_reversal_that_someone_else_approves(db, users, loan):
    payment = pay(db, users["col"], "KL1", amount="2500")
    dispute = raise_(db, users["col"], payment=payment.reference, category="WRONG_LOAN",
                     description="This UPI credit belongs to the borrower's other loan.")
    disputes.start_review(db, users["mgr"], dispute.reference)
    with pytest.raises(ValidationError) as rejected_with_reversal:
        disputes.resolve(db, users["mgr"], dispute.reference, outcome="REJECTED", note="no", reversal={})
    assert "only an upheld dispute" in rejected_with_reversal.value.fields["reversal"]
    with pytest.raises(ValidationError) as too_much:
        disputes.resolve(db, users["mgr"], dispute.reference, outcome="UPHELD", note="confirmed",
                         reversal={"amount": "99999"})
    assert "reversal_amount" in too_much.value.fields and dispute.status == "UNDER_REVIEW"
    disputes.resolve(db, users["mgr"], dispute.reference, outcome="UPHELD",
                     note="Confirmed with the borrower.", reversal={"amount": "", "reason": ""})
    approval = dispute.reversal_approval
    assert dispute.status == "RESOLVED_UPHELD" and approval is not None and approval.status == "PENDING"
    assert (approval.kind, approval.payment_id, approval.maker_id) == ("REVERSAL", payment.id, users["mgr"].id)
    assert (approval.reversal.amount_paise, approval.reversal.reason) == (250_000, "WRONG_LOAN")
    assert dispute.reference in approval.reversal.note
    assert actions(db, dispute)[-2:] == ["dispute.resolved_upheld", "dispute.reversal_requested"]
    with pytest.raises(Forbidden):  # maker-checker: the resolver made it, so someone else decides it
        approvals.decide(db, users["mgr"], [approval.id], approve=True, reason="mine")
    approvals.decide(db, users["fin"], [approval.id], approve=True, reason="Dispute upheld; bank confirms.")
    assert payment.status == "REVERSED" and approval.status == "APPROVED"


def test_a_reversal_is_refused_when_nothing_of_the_payment_is_left_to_reverse(db, users, loan):
    payment = pay(db, users["col"], "KL1")
    pending = approvals.request_reversal(db, users["fin"], payment.reference, {"reason": "DUPLICATE"})  # all of it
    dispute = raise_(db, users["col"], payment=payment.reference)
    disputes.start_review(db, users["mgr"], dispute.reference)
    with pytest.raises(ValidationError) as refused:
        disputes.resolve(db, users["mgr"], dispute.reference, outcome="UPHELD", note="yes", reversal={"amount": ""})
    assert "nothing of payment" in refused.value.fields["reversal"]
    approvals.decide(db, users["mgr"], [pending.id], approve=True, reason="duplicate entry")
    assert payment.status == "REVERSED"
    with pytest.raises(ValidationError) as refused:
        disputes.resolve(db, users["mgr"], dispute.reference, outcome="UPHELD", note="yes", reversal={"amount": ""})
    assert "only posted payments are reversed" in refused.value.fields["reversal"]
    disputes.resolve(db, users["mgr"], dispute.reference, outcome="UPHELD", note="Already reversed.")
    assert dispute.status == "RESOLVED_UPHELD" and dispute.reversal_approval_id is None


# ---------------------------------------------------------------- immutable once resolved

@pytest.fixture()
def resolved(db, users, loan):
    dispute = raise_(db, users["col"], files=[upload("receipt.png", png())])
    disputes.start_review(db, users["mgr"], dispute.reference)
    disputes.resolve(db, users["mgr"], dispute.reference, outcome="REJECTED", note="Not credited: no proof.")
    db.flush()
    return dispute


@pytest.mark.parametrize("change", ["review", "resolve", "evidence"])
def test_the_service_refuses_any_change_to_a_resolved_dispute(db, users, resolved, change):
    with pytest.raises(Conflict) as refused:
        if change == "review":
            disputes.start_review(db, users["mgr"], resolved.reference)
        elif change == "resolve":
            disputes.resolve(db, users["mgr"], resolved.reference, outcome="UPHELD", note="changed my mind")
        else:
            disputes.add_evidence(db, users["col"], resolved.reference, [upload("more.png", png())])
    error = refused.value
    assert error.code == "dispute_resolved"
    assert f"Dispute {resolved.reference} was resolved (rejected)" in error.message
    assert "raise a new dispute that supersedes it" in error.message
    assert error.attempt.action == "dispute.change_refused" and error.attempt.entity_id == resolved.reference
    assert resolved.status == "RESOLVED_REJECTED" and len(resolved.evidence) == 1


def _refused(db, sql: str):
    with pytest.raises(DBAPIError, match="kisht"):
        with db.begin_nested():
            db.execute(text(sql))


@pytest.mark.parametrize("assignment", [
    "status = 'OPEN'", "resolution_note = 'rewritten'", "description = 'rewritten'",
    "resolved_at = CURRENT_TIMESTAMP", "reviewer_id = NULL", "category = 'OTHER'",
])
def test_raw_update_of_a_resolved_dispute_is_refused(db, resolved, assignment):
    _refused(db, f"UPDATE disputes SET {assignment} WHERE id = {resolved.id}")


def test_raw_delete_of_disputes_and_evidence_is_refused(db, users, resolved):
    open_one = raise_(db, users["col"], category="CHARGES", files=[upload("a.pdf", pdf())])
    db.flush()
    for dispute in (resolved, open_one):
        _refused(db, f"DELETE FROM dispute_evidence WHERE dispute_id = {dispute.id}")
        _refused(db, f"DELETE FROM disputes WHERE id = {dispute.id}")
    _refused(db, f"UPDATE dispute_evidence SET sha256 = '{'0' * 64}' WHERE dispute_id = {open_one.id}")
    _refused(db, "INSERT INTO dispute_evidence (dispute_id, stored_name, original_name, content_type, size_bytes, "
                 f"sha256, uploaded_by_id, created_at) VALUES ({resolved.id}, '{'a' * 32}', 'late.png', 'image/png', "
                 f"10, '{'0' * 64}', {users['col'].id}, CURRENT_TIMESTAMP)")
    assert db.scalar(select(func.count()).select_from(Dispute)) == 2


def test_an_open_disputes_facts_and_status_path_are_guarded_too(db, users, loan):
    dispute = raise_(db, users["col"])
    db.flush()
    _refused(db, f"UPDATE disputes SET description = 'edited' WHERE id = {dispute.id}")
    _refused(db, f"UPDATE disputes SET raised_by_id = {users['mgr'].id} WHERE id = {dispute.id}")
    # Straight from OPEN to a resolution, skipping the review, is not a move the database allows.
    _refused(db, f"UPDATE disputes SET status = 'RESOLVED_UPHELD', reviewer_id = {users['mgr'].id}, "
                 f"review_started_at = CURRENT_TIMESTAMP, resolved_by_id = {users['mgr'].id}, "
                 f"resolved_at = CURRENT_TIMESTAMP, resolution_note = 'x' WHERE id = {dispute.id}")


def test_new_information_opens_a_new_dispute_that_supersedes_the_old(db, users, resolved):
    with pytest.raises(ValidationError) as still_open:
        newer = raise_(db, users["col"], category="CHARGES")
        raise_(db, users["col"], category="OTHER", supersedes=newer.reference)
    assert "is still open" in still_open.value.fields["supersedes"]
    again = raise_(db, users["col"], supersedes=resolved.reference.lower(),
                   description="The borrower found the bank's credit advice.", files=[upload("advice.pdf", pdf())])
    assert again.supersedes_id == resolved.id and again.status == "OPEN"
    assert disputes.superseded_by(db, resolved) == [again]
    assert json.loads(db.scalar(select(AuditEntry.after).where(
        AuditEntry.action == "dispute.raised", AuditEntry.entity_id == again.reference)))["supersedes"] == \
        resolved.reference


# ---------------------------------------------------------------- evidence downloads

def test_evidence_is_served_only_in_scope_and_verified_against_its_checksum(db, users, loan, evidence_dir):
    photo = png()
    dispute = raise_(db, users["col"], files=[upload("receipt.png", photo)])
    item = dispute.evidence[0]
    row, data = disputes.evidence_for(db, users["mgr"], dispute.reference, str(item.id))
    assert row is item and data == photo
    for username in ("col2", "mgr2"):
        with pytest.raises(NotFound):
            disputes.evidence_for(db, users[username], dispute.reference, item.id)
    with pytest.raises(Forbidden):
        disputes.evidence_for(db, users["adm"], dispute.reference, item.id)
    with pytest.raises(NotFound):
        disputes.evidence_for(db, users["col"], dispute.reference, "999999")
    with pytest.raises(NotFound):
        disputes.evidence_for(db, users["col"], dispute.reference, "../../etc/passwd")
    stored = Path(evidence_dir) / item.stored_name[:2] / item.stored_name
    stored.write_bytes(photo[:-1] + b"\x00")  # altered on disk behind the application's back
    with pytest.raises(EvidenceCorrupt) as corrupt:
        disputes.evidence_for(db, users["col"], dispute.reference, item.id)
    assert corrupt.value.status == 500 and corrupt.value.attempt.action == "dispute.evidence_integrity_failed"
    stored.unlink()
    with pytest.raises(EvidenceCorrupt):
        disputes.evidence_for(db, users["col"], dispute.reference, item.id)


# ---------------------------------------------------------------- timeline, flags, ageing, queue

def test_timeline_is_read_from_the_audit_log_in_one_query(db, users, resolved, app):
    audit.flush_pending(db)  # appends the staged entries now (the timeline would append them first)
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    engine = app.extensions["kisht.engine"]
    event.listen(engine, "before_cursor_execute", listener)
    try:
        entries = disputes.timeline(db, resolved)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert len(statements) == 1
    assert [e.action for e in entries] == ["dispute.raised", "dispute.evidence_added", "dispute.review_started",
                                           "dispute.resolved_rejected"]
    assert [e.actor for e in entries] == ["col", "col", "mgr", "mgr"]
    assert entries[-1].label == "Resolved: rejected" and entries[-1].after["note"] == "Not credited: no proof."
    assert audit.verify_chain(db).ok


def test_flags_are_one_query_for_any_number_of_ids(db, users, loan, make_loan, app):
    make_loan(loan_number="KL2", borrower_phone="9000000004")
    other = make_loan(loan_number="KL3", borrower_phone="9000000005")
    payment = pay(db, users["col"], "KL1")
    raise_(db, users["col"], payment=payment.reference)
    closed = raise_(db, users["col"], loan_number="KL3", category="CHARGES")
    disputes.start_review(db, users["mgr"], closed.reference)
    disputes.resolve(db, users["mgr"], closed.reference, outcome="REJECTED", note="no")
    db.flush()
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    engine = app.extensions["kisht.engine"]
    event.listen(engine, "before_cursor_execute", listener)
    try:
        flagged = loans.flags_for(db, [loan.id, other.id, 99999])
        assert {loan_id: flag.disputed for loan_id, flag in flagged.items()} == {loan.id: True, other.id: False}
        assert disputes.disputed_payment_ids(db, [payment.id, None]) == {payment.id}
        assert loans.flags_for(db, []) == {}
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert len(statements) == 2
    on_loan = disputes.open_on_loan(db, loan)
    assert on_loan.any and on_loan.payment_ids == {payment.id}


def _raise_at(db, monkeypatch, user, moment: datetime, **fields):
    with monkeypatch.context() as patch:
        patch.setattr(clock, "now", lambda: moment)
        return raise_(db, user, **fields)


def test_open_disputes_age_against_the_sla_bands(db, users, loan, monkeypatch):
    now = clock.now()
    ages = {"CHARGES": 0, "WRONG_AMOUNT": 7, "WRONG_LOAN": 8, "OTHER": 30, "PAYMENT_NOT_CREDITED": 31}
    made = {}
    for category, days in ages.items():
        made[category] = _raise_at(db, monkeypatch, users["col"], now - timedelta(days=days), category=category)
    conduct = _raise_at(db, monkeypatch, users["col"], now - timedelta(days=45), category="CONDUCT_COMPLAINT")
    disputes.start_review(db, users["leg"], conduct.reference)
    disputes.resolve(db, users["leg"], conduct.reference, outcome="REJECTED", note="No record of the call.")
    counts = {row.band.key: row.count for row in disputes.open_by_age(db, users["mgr"])}
    assert counts == {"0-7": 2, "8-15": 1, "16-30": 1, "overdue": 1}
    assert {row.band.key: row.count for row in disputes.open_by_age(db, users["mgr2"])} == \
        {"0-7": 0, "8-15": 0, "16-30": 0, "overdue": 0}
    assert disputes.band_of(made["PAYMENT_NOT_CREDITED"]).overdue
    assert disputes.age_days(made["WRONG_LOAN"]) == 8 and disputes.band_of(made["WRONG_LOAN"]).key == "8-15"
    oldest = disputes.oldest_open(db, users["mgr"], limit=2)
    assert [d.category for d in oldest] == ["PAYMENT_NOT_CREDITED", "OTHER"]

    def keys(**args):
        filters = disputes.parse_queue_filters(args)
        return [d.category for d in disputes.queue(db, users["mgr"], filters, 1, 25).items]

    assert keys() == ["PAYMENT_NOT_CREDITED", "OTHER", "WRONG_LOAN", "WRONG_AMOUNT", "CHARGES"]  # oldest first
    assert keys(age="overdue") == ["PAYMENT_NOT_CREDITED"]
    assert keys(age="0-7") == ["WRONG_AMOUNT", "CHARGES"]
    assert keys(category="wrong_loan") == ["WRONG_LOAN"]
    assert keys(status="RESOLVED_REJECTED") == ["CONDUCT_COMPLAINT"]
    assert len(keys(status="ALL")) == 6 and keys(loan="KL404") == []
    number = made["WRONG_LOAN"].loan.loan_number
    everything = disputes.queue(db, users["mgr"], disputes.parse_queue_filters({}), 1, 25).items
    assert keys(loan=number.lower()) == [d.category for d in everything if d.loan.loan_number == number] != []
    page = disputes.queue(db, users["mgr"], disputes.parse_queue_filters({}), 2, 2)
    assert (page.total, page.pages, [d.category for d in page.items]) == (5, 3, ["WRONG_LOAN", "WRONG_AMOUNT"])
    with pytest.raises(ValidationError) as bad:
        disputes.parse_queue_filters({"status": "CLOSED", "age": "ancient", "category": "X"})
    assert set(bad.value.fields) == {"status", "age", "category"}


def test_the_queue_follows_each_roles_scope(db, users, loan, standard_loan, make_loan):
    make_loan(loan_number="KLN", branch_code="NSK01", collector_username="col2", borrower_phone="9000000006")
    raise_(db, users["col"], category="CHARGES")                        # KL1, PUNE01, NPA
    raise_(db, users["col2"], loan_number="KLN", category="CHARGES")    # NSK01
    raise_(db, users["fin"], loan_number="KLSTD", category="WRONG_AMOUNT")  # PUNE01, standard

    def seen(username):
        page = disputes.queue(db, users[username], disputes.QueueFilters(), 1, 25)
        return sorted(d.loan.loan_number for d in page.items)

    assert seen("mgr") == ["KL1", "KLSTD"] and seen("mgr2") == ["KLN"] and seen("col2") == ["KLN"]
    assert seen("fin") == ["KL1", "KLN", "KLSTD"]
    assert seen("leg") == ["KL1", "KLN"]  # NPA loans only, until a conduct complaint arrives
    raise_(db, users["col"], loan_number="KLSTD", category="CONDUCT_COMPLAINT")
    assert seen("leg") == ["KL1", "KLN", "KLSTD", "KLSTD"]
    with pytest.raises(Forbidden):
        disputes.queue(db, users["adm"], disputes.QueueFilters(), 1, 25)


def test_files_of_a_failed_booking_are_not_left_behind(db, users, loan, evidence_dir, monkeypatch):
    real = audit.record

    def failing(session, actor, action, *args, **kwargs):
        if action == "dispute.evidence_added":
            raise RuntimeError("disk full, say")
        return real(session, actor, action, *args, **kwargs)

    monkeypatch.setattr(disputes.audit, "record", failing)
    with pytest.raises(RuntimeError):
        raise_(db, users["col"], files=[upload("a.png", png()), upload("b.pdf", pdf())])
    assert not [p for p in evidence_dir.rglob("*") if p.is_file()]
