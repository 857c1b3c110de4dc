"""Finance reconciliation through its services, on SQLite and PostgreSQL: import, UTR-first matching,
mismatches, suggestions (amount and date; cash deposits), locking, unreconcile, queues, dashboard, close."""
import json
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from tests.recon_support import (cash, charge, hdfc_csv, imps, make_loans, make_second_finance_user, neft, rtgs,
                                  sbi_xlsx, upi)
from webapp import clock
from webapp.errors import Conflict, Forbidden, ValidationError
from webapp.models import (AuditEntry, BankStatement, Payment, ReconciliationDay, ReconciliationMatch,
                           StatementLine, UnreconcileRequest)
from webapp.services import approvals, org, payments
from webapp.services import reconciliation as recon

TODAY = date(2026, 6, 15)
D = {n: TODAY - timedelta(days=n) for n in range(0, 40)}  # D[2] is two days ago


@pytest.fixture(autouse=True)
def fixed_today(monkeypatch):
    noon_ist = datetime(2026, 6, 15, 6, 30, tzinfo=timezone.utc)
    monkeypatch.setattr(clock, "now", lambda: noon_ist)


@pytest.fixture()
def loans(make_loan):
    return make_loans(make_loan, 5)


@pytest.fixture()
def fin2(db, system, users):
    return make_second_finance_user(db, system, users)


def pay(db, user, loan="KL1", amount="8884.88", mode="UPI", reference="", day=D[1], receipt=None):
    fields = {"amount": amount, "mode": mode, "reference": reference, "value_date": day.isoformat()}
    if mode == "CASH":
        fields["receipt_number"] = receipt or f"R{payments._new_reference()[2:8]}"
    if mode == "CHEQUE":
        fields["cheque_bank"] = "SBIN"
    booked = payments.record_payment(db, user, loan, fields)
    return booked.payment


def load(db, user, rows, bank="HDFC", **options):
    data = hdfc_csv(rows, **options) if bank == "HDFC" else sbi_xlsx(rows, **options)
    return recon.import_statement(db, user, bank=bank, data=data, filename=f"statement.{bank.lower()}")


def line_of(db, statement, row):
    return db.scalar(select(StatementLine).where(StatementLine.statement_id == statement.id,
                                                 StatementLine.row_number == row))


def matches(db, status=None):
    query = select(ReconciliationMatch).order_by(ReconciliationMatch.id)
    if status:
        query = query.where(ReconciliationMatch.status == status)
    return db.scalars(query).unique().all()


def actions(db):
    return [a for a in db.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)) if a.startswith("reconciliation.")]


# ---------------------------------------------------------------- import

def test_import_reads_the_file_and_refuses_the_same_file_twice(db, users):
    rows = [neft(D[3], "8884.88", "HDFCN26306258176"), upi(D[3], "11122.22", "154335349840"),
            imps(D[2], "2368.92", "691937865764"), cash(D[2], "25000.00"), charge(D[2], "1500.00")]
    imported = load(db, users["fin"], rows)
    statement = imported.statement
    assert (statement.bank, statement.file_format, statement.line_count, statement.credit_count,
            statement.debit_count) == ("HDFC", "CSV", 5, 4, 1)
    assert statement.credit_total_paise == 4_737_602 and statement.debit_total_paise == 150_000
    assert (statement.period_from, statement.period_to) == (D[3], D[2]) and statement.warnings is None
    lines = db.scalars(select(StatementLine).order_by(StatementLine.row_number)).all()
    assert [l.status for l in lines] == ["UNMATCHED"] * 4 + ["DEBIT"]
    assert lines[1].utr == "154335349840" and lines[1].bank_reference == "0000154335349840"
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "reconciliation.statement_imported"))
    assert json.loads(entry.after)["sha256"] == statement.sha256 and entry.entity_id == statement.reference
    with pytest.raises(Conflict) as twice:
        load(db, users["fin"], rows)
    assert twice.value.code == "duplicate_statement" and statement.reference in twice.value.message
    assert db.scalar(select(func.count()).select_from(BankStatement)) == 1


def test_sbi_workbook_with_preamble(db, users):
    imported = load(db, users["fin"], [rtgs(D[4], "11122.22", "SBINR52026110294212661")], bank="SBI",
                    period=(D[10], D[1]))
    statement = imported.statement
    assert statement.file_format == "XLSX" and statement.account_number == "00000012345678901"
    assert (statement.period_from, statement.period_to) == (D[10], D[1])
    assert line_of(db, statement, 6).utr == "SBINR52026110294212661"


def test_a_malformed_file_writes_nothing(db, users):
    rows = [neft(D[3], "8884.88", "HDFCN26306258176"), ("99/99/26", "X", "", "1.00", None),
            neft(D[2], "abc", "HDFCN26306258177")]
    with pytest.raises(ValidationError) as refused:
        load(db, users["fin"], rows)
    assert set(refused.value.fields) >= {"row 3, Date", "row 4, Deposit Amt."}
    assert db.scalar(select(func.count()).select_from(StatementLine)) == 0
    assert db.scalar(select(func.count()).select_from(BankStatement)) == 0


def test_balance_gap_is_stored_on_the_statement(db, users):
    rows = [neft(D[3], "100.00", "HDFCN26306258176"), neft(D[2], "200.00", "HDFCN26306258177", "X") + ("5.00",)]
    statement = load(db, users["fin"], rows, opening="1000.00").statement
    warnings = recon.warnings_of(statement)
    assert len(warnings) == 1 and "does not follow" in warnings[0] and statement.line_count == 2
    # The next statement of the account should open where this one closed; a gap is reported again.
    later = load(db, users["fin"], [neft(D[1], "10.00", "HDFCN26306258178")], opening="7.00").statement
    assert any("does not follow statement" in w for w in recon.warnings_of(later))


def test_an_overlapping_export_skips_lines_already_imported(db, users):
    first = [neft(D[5], "100.00", "HDFCN26306258176"), cash(D[4], "500.00"), cash(D[4], "500.00")]
    load(db, users["fin"], first, opening="1000.00")
    overlap = first + [neft(D[3], "300.00", "HDFCN26306258177")]
    statement = load(db, users["fin"], overlap, opening="1000.00").statement  # other bytes, same account
    assert (statement.line_count, statement.skipped_duplicates) == (1, 3)
    assert db.scalar(select(func.count()).select_from(StatementLine)) == 4  # the two identical cash lines kept
    with pytest.raises(Conflict) as nothing:
        load(db, users["fin"], first[:2], opening="1000.00")
    assert nothing.value.code == "nothing_new"


def test_collectors_and_managers_cannot_reconcile(db, users):
    data = hdfc_csv([neft(D[2], "1.00", "HDFCN26306258176")])
    for who in ("col", "mgr", "leg", "adm"):
        with pytest.raises(Forbidden):
            recon.import_statement(db, users[who], bank="HDFC", data=data, filename="s.csv")
        with pytest.raises(Forbidden):
            recon.run_matching(db, users[who])
        with pytest.raises(Forbidden):
            recon.dashboard(db, users[who], D[5], TODAY)


# ---------------------------------------------------------------- matching and locking

def test_utr_and_amount_match_at_once_and_lock_the_payment(db, users, loans):
    payment = pay(db, users["col"], amount="8884.88", mode="UPI", reference="154335349840", day=D[2])
    run = load(db, users["fin"], [upi(D[2], "8884.88", "154335349840")]).run
    assert (run.matched, run.mismatches, run.suggestions) == (1, 0, 0)
    [match] = matches(db)
    assert (match.kind, match.status, match.payments) == ("UTR", "CONFIRMED", [payment])
    assert match.line.status == "MATCHED" and payment.reconciled_at is not None
    # A reconciled payment cannot be reversed: the service says why and the refusal is audited by the web layer.
    with pytest.raises(Conflict) as refused:
        approvals.request_reversal(db, users["fin"], payment.reference, {"reason": "DUPLICATE"})
    assert refused.value.code == "payment_reconciled" and "unreconcile" in refused.value.message
    assert refused.value.attempt.action == "payment.change_refused"
    assert "reconciliation.matched_automatically" in actions(db)


def _refused(db, sql: str, **params):
    with pytest.raises(DBAPIError, match="kisht"):
        with db.begin_nested():
            db.execute(text(sql), params)


def test_the_database_refuses_changes_to_a_reconciled_payment(db, users, loans):
    payment = pay(db, users["col"], mode="NEFT", reference="HDFCN26306258176", day=D[2])
    load(db, users["fin"], [neft(D[2], "8884.88", "HDFCN26306258176")])
    [match] = matches(db)
    db.flush()
    p, m, line = payment.id, match.id, match.line_id
    _refused(db, "UPDATE payments SET status = 'REVERSED' WHERE id = :p", p=p)
    _refused(db, "UPDATE payments SET reconciled_at = NULL WHERE id = :p", p=p)
    _refused(db, "UPDATE payments SET reconciled_at = '2030-01-01 00:00:00' WHERE id = :p", p=p)
    _refused(db, "UPDATE payments SET amount_paise = 1 WHERE id = :p", p=p)
    _refused(db, "INSERT INTO reversals (payment_id, amount_paise, reason, note, created_at) "
                 "VALUES (:p, 100, 'OTHER', 'x', '2026-06-15 00:00:00')", p=p)
    _refused(db, "UPDATE reconciliation_matches SET status = 'UNRECONCILED' WHERE id = :m", m=m)
    _refused(db, "UPDATE reconciliation_matches SET amount_paise = 1 WHERE id = :m", m=m)
    _refused(db, "DELETE FROM reconciliation_matches WHERE id = :m", m=m)
    _refused(db, "DELETE FROM reconciliation_match_payments WHERE match_id = :m", m=m)
    _refused(db, "INSERT INTO reconciliation_match_payments (match_id, payment_id) VALUES (:m, :p)", m=m,
             p=pay(db, users["col"], loan="KL2", reference="HDFCN26306258177", mode="NEFT").id)
    _refused(db, "UPDATE statement_lines SET status = 'UNMATCHED' WHERE id = :l", l=line)
    _refused(db, "UPDATE statement_lines SET amount_paise = 1 WHERE id = :l", l=line)
    _refused(db, "DELETE FROM statement_lines WHERE id = :l", l=line)
    _refused(db, "UPDATE bank_statements SET filename = 'x'")
    _refused(db, "DELETE FROM bank_statements")
    # An unreconciled, posted payment can be marked only while a confirmed match holds it.
    other = pay(db, users["col"], loan="KL3", reference="HDFCN26306258178", mode="NEFT")
    db.flush()
    _refused(db, "UPDATE payments SET reconciled_at = '2026-06-15 00:00:00' WHERE id = :p", p=other.id)
    db.expire_all()
    assert db.get(Payment, p).status == "POSTED" and db.get(Payment, p).reconciled_at is not None


def test_same_utr_other_amount_is_a_mismatch_then_corrected_end_to_end(db, users, loans, fin2):
    """Collector keyed ₹4,500; the bank got ₹4,050 for that UTR. Never a silent match: a mismatch item, the
    day cannot close; the payment is reversed (maker-checker) and booked again right; matching clears it."""
    wrong = pay(db, users["col"], amount="4500", mode="IMPS", reference="194650323160", day=D[2])
    statement = load(db, users["fin"], [imps(D[2], "4050.00", "194650323160")]).statement
    [mismatch] = matches(db)
    assert (mismatch.status, mismatch.kind, mismatch.payments) == ("MISMATCH", "UTR", [wrong])
    assert "₹4,050.00" in mismatch.note and "₹4,500.00" in mismatch.note
    assert line_of(db, statement, 2).status == "MISMATCH" and wrong.reconciled_at is None
    board = recon.dashboard(db, users["fin"], D[5], TODAY)
    assert board.open_mismatches == 1 and board.total.mismatch_paise == 405_000 and board.total.matched_count == 0
    with pytest.raises(Conflict) as refused:
        recon.close_day(db, users["fin"], D[2].isoformat())
    assert refused.value.code == "open_mismatches"
    with pytest.raises(Conflict):  # a mismatch is not a suggestion: it cannot be confirmed
        recon.confirm(db, users["fin"], mismatch.id)
    # Correct the payment: a full reversal (fin asks, the branch manager approves) frees the UTR …
    approval = approvals.request_reversal(db, users["fin"], wrong.reference, {"reason": "OTHER", "note": "keyed 4500"})
    approvals.decide(db, users["mgr"], [approval.id], approve=True, reason="bank credited 4050")
    assert wrong.status == "REVERSED"
    right = pay(db, users["col"], amount="4050", mode="IMPS", reference="194650323160", day=D[2])
    run = recon.run_matching(db, users["fin2"])
    assert (run.matched, run.superseded) == (1, 1)
    assert mismatch.status == "SUPERSEDED" and right.reconciled_at is not None
    assert line_of(db, statement, 2).status == "MATCHED"
    closed = recon.close_day(db, users["fin"], D[2].isoformat())
    assert closed.closed_by.username == "fin" and json.loads(closed.summary)["total"]["matched_count"] == 1
    assert "reconciliation.mismatch_found" in actions(db) and "reconciliation.day_closed" in actions(db)


def test_a_mismatch_can_be_dismissed_with_a_reason_and_is_not_raised_again(db, users, loans):
    pay(db, users["col"], amount="4500", mode="IMPS", reference="194650323160", day=D[2])
    load(db, users["fin"], [imps(D[2], "4050.00", "194650323160")])
    [mismatch] = matches(db)
    with pytest.raises(ValidationError) as no_reason:
        recon.dismiss(db, users["fin"], mismatch.id, "")
    assert "reason" in no_reason.value.fields
    recon.dismiss(db, users["fin"], mismatch.id, "bank deducted charges; taken up with the bank")
    assert mismatch.status == "DISMISSED" and mismatch.line.status == "UNMATCHED"
    run = recon.run_matching(db, users["fin"])
    assert (run.mismatches, run.matched) == (0, 0) and len(matches(db)) == 1
    recon.close_day(db, users["fin"], D[2].isoformat())  # no open mismatch now


def test_same_amount_near_date_is_only_a_suggestion_until_finance_confirms(db, users, loans):
    typo = pay(db, users["col"], amount="8884.88", mode="NEFT", reference="HDFCN26306258999", day=D[4])
    too_early = pay(db, users["col"], loan="KL2", amount="8884.88", mode="UPI", reference="111111111111", day=D[9])
    in_cash = pay(db, users["col"], loan="KL3", amount="8884.88", mode="CASH", day=D[3])
    statement = load(db, users["fin"], [neft(D[2], "8884.88", "HDFCN26306258176")]).statement
    [suggestion] = matches(db)
    assert (suggestion.kind, suggestion.status, suggestion.payments) == ("AMOUNT_DATE", "SUGGESTED", [typo])
    assert typo.reconciled_at is None and line_of(db, statement, 2).status == "UNMATCHED"  # never automatic
    assert too_early.reconciled_at is None and in_cash.reconciled_at is None  # 7 days away; cash is not NEFT
    recon.confirm(db, users["fin"], suggestion.id)
    assert suggestion.status == "CONFIRMED" and suggestion.decided_by.username == "fin"
    assert typo.reconciled_at is not None and line_of(db, statement, 2).status == "MATCHED"
    with pytest.raises(Conflict):
        recon.confirm(db, users["fin"], suggestion.id)
    assert "reconciliation.match_confirmed" in actions(db)


def test_confirming_one_suggestion_supersedes_the_others(db, users, loans):
    a = pay(db, users["col"], amount="2368.92", mode="UPI", reference="222222222222", day=D[3])
    b = pay(db, users["col"], loan="KL2", amount="2368.92", mode="IMPS", reference="333333333333", day=D[1])
    load(db, users["fin"], [upi(D[2], "2368.92", "657957930388"), imps(D[2], "2368.92", "691937865764")])
    suggested = matches(db, "SUGGESTED")
    assert len(suggested) == 4  # each line × each payment
    first = next(m for m in suggested if m.line.row_number == 2 and m.payments == [a])
    recon.confirm(db, users["fin"], first.id)
    left = matches(db, "SUGGESTED")
    assert [(m.line.row_number, m.payments) for m in left] == [(3, [b])]
    assert len(matches(db, "SUPERSEDED")) == 2


def test_a_dismissed_suggestion_is_not_proposed_again(db, users, loans):
    pay(db, users["col"], amount="8884.88", mode="NEFT", reference="HDFCN26306258999", day=D[2])
    load(db, users["fin"], [neft(D[2], "8884.88", "HDFCN26306258176")])
    [suggestion] = matches(db)
    recon.dismiss(db, users["fin"], suggestion.id)
    assert suggestion.status == "DISMISSED" and suggestion.line.status == "UNMATCHED"
    assert recon.run_matching(db, users["fin"]).suggestions == 0
    assert "reconciliation.suggestion_dismissed" in actions(db)


def test_cash_deposit_suggestion_many_to_one(db, users, loans, system):
    """Collector col collects ₹25,000 in cash on three loans on one day and deposits it the next day."""
    org.create_user(db, system, username="col3", role="collector", password="correct-horse-battery",
                    name="COL3", branch_code="PUNE01")
    mine = [pay(db, users["col"], loan=f"KL{i}", amount=amount, mode="CASH", day=D[3])
            for i, amount in ((1, "10000"), (2, "8000"), (3, "7000"))]
    theirs = pay(db, users["mgr"], loan="KL4", amount="5000", mode="CASH", day=D[3])  # another person's cash
    statement = load(db, users["fin"], [cash(D[2], "25000.00"), cash(D[2], "30000.00")]).statement
    [deposit] = matches(db)
    assert deposit.kind == "CASH_DEPOSIT" and deposit.status == "SUGGESTED"
    assert sorted(p.reference for p in deposit.payments) == sorted(p.reference for p in mine)
    assert deposit.line.row_number == 2 and deposit.amount_paise == 2_500_000
    recon.confirm(db, users["fin"], deposit.id)
    assert all(p.reconciled_at is not None for p in mine) and theirs.reconciled_at is None
    assert line_of(db, statement, 3).status == "UNMATCHED"  # ₹30,000: nobody's cash adds up to it


def test_matching_by_hand_checks_the_total(db, users, loans):
    p1 = pay(db, users["col"], amount="1000", mode="CHEQUE", reference="123456", day=D[7])
    p2 = pay(db, users["col"], loan="KL2", amount="500", mode="UPI", reference="444444444444", day=D[1])
    statement = load(db, users["fin"], [(D[2], "CLG CHQ 123456 DEPOSIT", "123456", "1500.00", None)]).statement
    line = line_of(db, statement, 2)
    with pytest.raises(Conflict) as short:
        recon.match_by_hand(db, users["fin"], line.id, p1.reference)
    assert "add up to ₹1,000.00" in short.value.fields["payments"]
    with pytest.raises(ValidationError):
        recon.match_by_hand(db, users["fin"], line.id, "KPNOSUCHONE")
    match = recon.match_by_hand(db, users["fin"], line.id, f"{p1.reference}, {p2.reference}")
    assert match.kind == "MANUAL" and match.status == "CONFIRMED" and line.status == "MATCHED"


def test_payment_with_a_pending_reversal_is_not_matched(db, users, loans):
    payment = pay(db, users["col"], mode="UPI", reference="154335349840", day=D[2])
    approvals.request_reversal(db, users["mgr"], payment.reference, {"reason": "DUPLICATE"})
    run = load(db, users["fin"], [upi(D[2], "8884.88", "154335349840")]).run
    assert run.matched == 0 and payment.reconciled_at is None


# ---------------------------------------------------------------- a bank credit becomes a payment

def test_a_bank_credit_becomes_a_payment_and_is_matched(db, users, loans):
    statement = load(db, users["fin"], [neft(D[2], "8884.88", "HDFCN26306258176")]).statement
    line = line_of(db, statement, 2)
    with pytest.raises(Forbidden):
        recon.payment_from_line(db, users["col"], line.id, loan_number="KL1")
    booked, match = recon.payment_from_line(db, users["fin"], line.id, loan_number="kl1")
    payment = booked.payment
    assert (payment.status, payment.mode, payment.utr, payment.value_date, payment.amount_paise) == (
        "POSTED", "NEFT", "HDFCN26306258176", D[2], 888_488)
    assert payment.recorded_by.username == "fin" and payment.reconciled_at is not None
    assert (match.kind, match.status, line.status) == ("FROM_LINE", "CONFIRMED", "MATCHED")
    with pytest.raises(Conflict):  # the line is matched now
        recon.payment_from_line(db, users["fin"], line.id, loan_number="KL2")
    with pytest.raises(Conflict) as again:  # and the UTR is booked: idempotent by UTR
        pay(db, users["fin"], loan="KL2", mode="NEFT", reference="HDFCN26306258176", day=D[2])
    assert again.value.code == "duplicate_utr"
    assert "reconciliation.payment_from_line" in actions(db)


def test_an_old_bank_credit_waits_for_the_manager_then_matches(db, users, loans):
    statement = load(db, users["fin"], [imps(D[10], "2368.92", "691937865764")]).statement
    line = line_of(db, statement, 2)
    booked, match = recon.payment_from_line(db, users["fin"], line.id, loan_number="KL1")
    assert booked.payment.status == "PENDING_APPROVAL" and match is None and line.status == "UNMATCHED"
    approvals.decide(db, users["mgr"], [booked.approval.id], approve=True, reason="bank statement seen")
    assert recon.run_matching(db, users["fin"]).matched == 1
    assert line.status == "MATCHED" and booked.payment.reconciled_at is not None


def test_a_credit_without_utr_cannot_be_booked_from_the_line(db, users, loans):
    statement = load(db, users["fin"], [cash(D[2], "500.00")]).statement
    with pytest.raises(ValidationError) as refused:
        recon.payment_from_line(db, users["fin"], line_of(db, statement, 2).id, loan_number="KL1")
    assert "no UTR" in refused.value.fields["line"]


# ---------------------------------------------------------------- unreconcile: maker-checker

def test_unreconcile_needs_a_reason_and_a_second_finance_user(db, users, loans, fin2):
    payment = pay(db, users["col"], mode="UPI", reference="154335349840", day=D[2])
    load(db, users["fin"], [upi(D[2], "8884.88", "154335349840")])
    [match] = matches(db)
    with pytest.raises(ValidationError):
        recon.request_unreconcile(db, users["fin"], match.id, "  ")
    request = recon.request_unreconcile(db, users["fin"], match.id, "booked on the wrong loan")
    with pytest.raises(Conflict):
        recon.request_unreconcile(db, users["fin2"], match.id, "again")
    with pytest.raises(Forbidden):
        recon.decide_unreconcile(db, users["fin"], request.id, approve=True, reason="mine")
    with pytest.raises(Forbidden):
        recon.decide_unreconcile(db, users["mgr"], request.id, approve=True, reason="not finance")
    assert payment.reconciled_at is not None  # still locked while the request waits
    recon.decide_unreconcile(db, users["fin2"], request.id, approve=True, reason="agreed, wrong loan")
    assert (request.status, request.checker.username) == ("APPROVED", "fin2")
    assert match.status == "UNRECONCILED" and match.line.status == "UNMATCHED" and payment.reconciled_at is None
    # Released: it can be reversed now, and the next matching run does not match the same pair again.
    assert recon.run_matching(db, users["fin"]).matched == 0
    approvals.request_reversal(db, users["fin"], payment.reference, {"reason": "WRONG_LOAN"})
    with pytest.raises(Conflict):
        recon.decide_unreconcile(db, users["fin2"], request.id, approve=False, reason="too late")
    assert [a for a in actions(db) if "unreconcile" in a] == ["reconciliation.unreconcile_requested",
                                                              "reconciliation.unreconcile_approved"]


def test_a_rejected_unreconcile_keeps_the_lock(db, users, loans, fin2):
    payment = pay(db, users["col"], mode="UPI", reference="154335349840", day=D[2])
    load(db, users["fin"], [upi(D[2], "8884.88", "154335349840")])
    [match] = matches(db)
    request = recon.request_unreconcile(db, users["fin2"], match.id, "check")
    recon.decide_unreconcile(db, users["fin"], request.id, approve=False, reason="the match is right")
    assert request.status == "REJECTED" and match.status == "CONFIRMED" and payment.reconciled_at is not None
    _refused(db, "UPDATE unreconcile_requests SET status = 'APPROVED' WHERE id = :r", r=request.id)
    _refused(db, "UPDATE reconciliation_matches SET status = 'UNRECONCILED' WHERE id = :m", m=match.id)
    with pytest.raises(DBAPIError):  # maker and checker are never the same person (CHECK)
        with db.begin_nested():
            db.add(UnreconcileRequest(match_id=match.id, reason="x", status="APPROVED", maker_id=users["fin"].id,
                                      checker_id=users["fin"].id, decided_at=clock.now()))
            db.flush()


# ---------------------------------------------------------------- queues, dashboard, close

def test_unmatched_queues_on_both_sides_with_ageing(db, users, loans):
    matched = pay(db, users["col"], mode="UPI", reference="154335349840", day=D[2])
    no_bank_line = pay(db, users["col"], loan="KL2", amount="1000", mode="NEFT", reference="HDFCN26306258999",
                       day=D[1])
    held = payments.record_payment(db, users["col"], "KL3", {"amount": "700", "mode": "CASH", "receipt_number": "R700",
                                                             "value_date": D[12].isoformat()})
    approvals.decide(db, users["mgr"], [held.approval.id], approve=True, reason="receipt book seen")
    before_statements = held.payment
    assert before_statements.status == "POSTED"
    load(db, users["fin"], [upi(D[2], "8884.88", "154335349840"), imps(D[10], "777.00", "691937865764"),
                            charge(D[9], "100.00")])
    bank = recon.parse_list_filters({}, statuses=recon.LINE_FILTER_STATUSES, modes=("IMPS",),
                                    default_status="UNMATCHED")
    page = recon.bank_lines(db, users["fin"], bank, 1, 25)
    assert [(l.mode, l.amount_paise) for l in page.items] == [("IMPS", 77_700)]  # no debit, no matched line
    ageing = dict((b.key, n) for b, n in recon.bank_line_ageing(db, bank))
    assert ageing == {"0-3": 0, "4-7": 0, "8-15": 1, "16-30": 0, "31+": 0}
    system = recon.parse_list_filters({}, statuses=recon.PAYMENT_FILTER_STATES, modes=("CASH",),
                                      default_status="UNMATCHED")
    page = recon.system_payments(db, users["fin"], system, 1, 25)
    # From the first day a statement covers (D[10]): the cash of D[12] predates every statement.
    assert [p.reference for p in page.items] == [no_bank_line.reference]
    assert before_statements.reconciled_at is None and matched.reconciled_at is not None
    ageing = dict((b.key, n) for b, n in recon.payment_ageing(db, system))
    assert ageing["0-3"] == 1 and sum(ageing.values()) == 1
    board = recon.dashboard(db, users["fin"], D[14], TODAY)
    assert (board.oldest_bank_unmatched, board.oldest_system_unmatched) == (D[10], D[1])
    assert board.age(board.oldest_bank_unmatched) == 10


def test_dashboard_totals_agree_with_the_file(db, users, loans):
    rows = [neft(D[3], "8884.88", "HDFCN26306258176"), upi(D[3], "11122.22", "154335349840"),
            imps(D[3], "2368.92", "691937865764"), cash(D[2], "25000.00"), neft(D[2], "8884.88", "HDFCN26307711097"),
            upi(D[2], "2368.92", "657957930388"), imps(D[1], "4500.00", "194650323160"), cash(D[1], "25000.00"),
            charge(D[1], "1500.00")]
    pay(db, users["col"], amount="8884.88", mode="NEFT", reference="HDFCN26306258176", day=D[3])  # matches
    pay(db, users["col"], loan="KL2", amount="4050", mode="IMPS", reference="194650323160", day=D[1])  # mismatch
    pay(db, users["col"], loan="KL3", amount="999", mode="UPI", reference="555555555555", day=D[2])  # no line
    load(db, users["fin"], rows)
    board = recon.dashboard(db, users["fin"], D[6], TODAY)
    credits = [r for r in rows if r[3]]
    expected = {}
    for day, narration, _, credit, _ in credits:
        mode = "CASH" if "CASH" in narration else narration.split("-")[0].split(" ")[0]
        count, total = expected.get((day, mode), (0, 0))
        expected[(day, mode)] = (count + 1, total + round(float(credit) * 100))
    shown = {(row.day, mode): (f.bank_count, f.bank_paise) for row in board.days for mode, f in row.by_mode
             if f.bank_count}
    assert shown == expected
    assert board.total.bank_paise == sum(round(float(r[3]) * 100) for r in credits) == 8_812_982
    assert board.total.bank_count == 8  # the debit line is not a credit
    assert (board.total.matched_count, board.total.matched_paise) == (1, 888_488)
    assert (board.total.mismatch_count, board.total.mismatch_paise) == (1, 450_000)
    assert board.total.unmatched_count == 6
    assert (board.total.system_count, board.total.system_paise) == (3, 888_488 + 405_000 + 99_900)
    assert (board.total.reconciled_count, board.total.system_unmatched_count) == (1, 2)
    d3 = next(row for row in board.days if row.day == D[3])
    assert d3.total.difference_paise == 4_737_602 - 888_488 - 2_500_000  # bank − system for that day
    assert [row.day for row in board.days][:2] == [TODAY, D[1]] and len(board.days) == 7
    title, header, export = recon.export_rows(db, users["fin"], "summary",
                                              {"date_from": D[6].isoformat(), "date_to": TODAY.isoformat()})
    assert export[-1][0] == "TOTAL" and str(export[-1][header.index("Bank amount")]) == "88129.82"


def test_closing_a_day(db, users, loans):
    with pytest.raises(Conflict) as no_statement:
        recon.close_day(db, users["fin"], D[2].isoformat())
    assert no_statement.value.code == "no_statement"
    load(db, users["fin"], [cash(D[2], "500.00")], bank="SBI", period=(D[5], D[1]))
    with pytest.raises(ValidationError):
        recon.close_day(db, users["fin"], (TODAY + timedelta(days=1)).isoformat())
    closed = recon.close_day(db, users["fin"], D[4].isoformat(), "quiet day")  # covered, nothing in it
    assert (closed.business_date, closed.closed_by.username, closed.note) == (D[4], "fin", "quiet day")
    with pytest.raises(Conflict) as twice:
        recon.close_day(db, users["fin"], D[4].isoformat())
    assert twice.value.code == "already_closed" and "FIN" in twice.value.message
    day = recon.close_day(db, users["fin"], D[2].isoformat())  # an unmatched credit does not block
    summary = json.loads(day.summary)
    assert summary["total"]["unmatched_count"] == 1 and summary["by_mode"]["CASH"]["bank_paise"] == 50_000
    board = recon.dashboard(db, users["fin"], D[5], TODAY)
    row = next(r for r in board.days if r.day == D[2])
    assert row.close.closed_by.username == "fin" and not row.changed_since_close
    _refused(db, "UPDATE reconciliation_days SET note = 'x'")
    _refused(db, "DELETE FROM reconciliation_days")
    assert db.scalar(select(func.count()).select_from(ReconciliationDay)) == 2
