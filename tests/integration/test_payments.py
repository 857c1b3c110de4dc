"""The payments ledger through its services: hand-worked ledgers to the paisa, refusals, approvals, reversals."""
import json
from datetime import date

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from webapp import clock
from webapp.errors import Conflict, Forbidden, NotFound, ValidationError
from webapp.models import Allocation, Approval, AuditEntry, Payment
from webapp.services import approvals, payments, replay

TODAY = date(2026, 6, 15)
EMI = 888_488  # ₹1,00,000 at 12 % for 12 months


@pytest.fixture(autouse=True)
def fixed_today(monkeypatch):
    """Business date 15 Jun 2026 (IST), so hand-worked ledgers do not move with the calendar."""
    from datetime import datetime, timezone

    noon_ist = datetime(2026, 6, 15, 6, 30, tzinfo=timezone.utc)
    monkeypatch.setattr(clock, "now", lambda: noon_ist)


@pytest.fixture()
def loan(make_loan):
    # Disbursed 1 Jan, EMIs on the 5th from 5 Feb: by 14 Jun (yesterday) five instalments have fallen due.
    return make_loan(loan_number="KL1", disbursed_on="2026-01-01", first_due_on="2026-02-05")


def pay(db, user, loan_number="KL1", **fields):
    fields.setdefault("mode", "CASH")
    if fields["mode"] == "CASH":
        fields.setdefault("receipt_number", f"R{payments._new_reference()[2:8]}")
    fields.setdefault("value_date", TODAY.isoformat())
    return payments.record_payment(db, user, loan_number, fields)


def paid(loan):
    return [(i.seq, i.interest_paid_paise, i.principal_paid_paise, i.status) for i in loan.instalments]


def test_partial_payment_pays_interest_first(db, users, loan):
    assert (loan.dpd, loan.asset_class, loan.overdue_paise) == (130, "NPA", 5 * EMI)
    booked = pay(db, users["col"], amount="5000")
    assert booked.posted and booked.payment.status == "POSTED"
    # Instalment 1: interest 1,000.00 then 4,000.00 of its 7,884.88 principal.
    assert paid(loan)[0] == (1, 100_000, 400_000, "PARTIALLY_PAID")
    assert loan.overdue_paise == 5 * EMI - 500_000 and loan.dpd == 130  # still the 5 Feb instalment
    rows = db.scalars(select(Allocation).where(Allocation.payment_id == booked.payment.id)).all()
    assert sorted((a.component, a.amount_paise) for a in rows) == [("interest", 100_000), ("principal", 400_000)]


def test_clearing_arrears_then_advance(db, users, loan):
    pay(db, users["col"], amount="50000", mode="UPI", reference="123456789012")
    # 5 × 8,884.88 = 44,424.40 clears every arrear; 5,575.60 is held as advance for 5 Jul.
    assert (loan.dpd, loan.asset_class, loan.overdue_paise, loan.bucket) == (0, "STANDARD", 0, "0")
    position = replay.live_position(db, loan)
    assert position.advance_paise == 5_000_000 - 5 * EMI
    assert [s for *_, s in paid(loan)][:6] == ["PAID"] * 5 + ["DUE"]


def test_backdated_payment_waits_then_replays_before_a_later_one(db, users, loan):
    later = pay(db, users["col"], amount="8884.88", mode="UPI", reference="111111111111")
    held = pay(db, users["col"], amount="8884.88", mode="UPI", reference="222222222222", value_date="2026-02-05")
    assert not held.posted and held.payment.status == "PENDING_APPROVAL" and held.approval.kind == "BACKDATED_PAYMENT"
    assert loan.overdue_paise == 4 * EMI  # the held payment does nothing yet
    impact = approvals.impact(db, held.approval)
    # 5 Mar unpaid until 15 Jun crossed 90 days on 3 Jun: NPA either way, and NPA is sticky.
    assert (impact.before.dpd, impact.after.dpd) == (102, 71) and impact.after.asset_class == "NPA"
    with pytest.raises(Forbidden):
        approvals.decide(db, users["col"], [held.approval.id], approve=True, reason="mine")
    approvals.decide(db, users["mgr"], [held.approval.id], approve=True, reason="receipt seen")
    # Replay by value date: the 5 Feb payment now pays instalment 1, the later one instalment 2.
    first = db.scalars(select(Allocation).where(Allocation.payment_id == held.payment.id)).all()
    assert {a.instalment.seq for a in first} == {1}
    assert {a.instalment.seq for a in db.scalars(select(Allocation).where(Allocation.payment_id == later.payment.id))} == {2}
    assert (held.payment.status, loan.dpd, loan.asset_class) == ("POSTED", 71, "NPA")  # NPA stays: arrears remain
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "backdated_payment.approved"))
    assert json.loads(entry.before)["loan"]["dpd"] == 102 and json.loads(entry.after)["loan"]["dpd"] == 71


def test_rejected_backdated_payment_never_touches_the_ledger_and_frees_its_utr(db, users, loan):
    held = pay(db, users["col"], amount="1000", mode="IMPS", reference="333333333333", value_date="2026-05-01")
    approvals.decide(db, users["mgr"], [held.approval.id], approve=False, reason="wrong date")
    assert held.payment.status == "REJECTED" and loan.overdue_paise == 5 * EMI
    again = pay(db, users["col"], amount="1000", mode="IMPS", reference="333333333333", value_date="2026-06-10")
    assert again.posted
    with pytest.raises(Conflict):
        approvals.decide(db, users["mgr"], [held.approval.id], approve=True, reason="changed my mind")


def test_partial_then_full_reversal(db, users, loan):
    booked = pay(db, users["fin"], amount="44424.40", mode="NEFT", reference="HDFCN26306258176")
    assert loan.dpd == 0
    first = approvals.request_reversal(db, users["mgr"], booked.payment.reference,
                                       {"amount": "8884.88", "reason": "BANK_RETURN"})
    assert loan.dpd == 0  # nothing changes until a second person approves
    with pytest.raises(Forbidden):
        approvals.decide(db, users["mgr"], [first.id], approve=True, reason="self")
    approvals.decide(db, users["fin"], [first.id], approve=True, reason="bank return advice")
    assert (loan.overdue_paise, loan.dpd) == (EMI, 10)  # the 5 Jun instalment is unpaid again
    with pytest.raises(ValidationError) as refused:
        approvals.request_reversal(db, users["fin"], booked.payment.reference, {"amount": "40000", "reason": "OTHER"})
    assert "note" in refused.value.fields and "not already reversed" in refused.value.fields["amount"]
    rest = approvals.request_reversal(db, users["fin"], booked.payment.reference, {"reason": "CHEQUE_BOUNCE"})
    assert rest.reversal.amount_paise == 4 * EMI  # empty amount means everything not yet reversed
    approvals.decide(db, users["mgr"], [rest.id], approve=True, reason="cheque returned unpaid")
    assert (loan.overdue_paise, loan.dpd, loan.asset_class) == (5 * EMI, 130, "NPA")
    assert booked.payment.status == "REVERSED"
    assert db.scalar(select(Payment).where(Payment.id == booked.payment.id)).amount_paise == 4_442_440  # never edited
    with pytest.raises(Conflict):
        approvals.request_reversal(db, users["fin"], booked.payment.reference, {"amount": "1", "reason": "DUPLICATE"})


def test_a_fully_reversed_payment_frees_its_utr_for_the_right_loan(db, users, loan, make_loan):
    make_loan(loan_number="KL2", borrower_name="Sunita Devi", borrower_phone="9000000001")
    wrong = pay(db, users["col"], amount="8884.88", mode="UPI", reference="777777777777")
    with pytest.raises(Conflict):
        pay(db, users["col"], loan_number="KL2", amount="8884.88", mode="UPI", reference="777777777777")
    request = approvals.request_reversal(db, users["mgr"], wrong.payment.reference, {"reason": "WRONG_LOAN"})
    approvals.decide(db, users["fin"], [request.id], approve=True, reason="belongs to KL2")
    right = pay(db, users["col"], loan_number="KL2", amount="8884.88", mode="UPI", reference="777777777777")
    assert right.posted and wrong.payment.status == "REVERSED" and loan.overdue_paise == 5 * EMI


def test_paying_everything_closes_the_loan_and_it_refuses_more(db, users, loan):
    total = sum(i.total_due_paise for i in loan.instalments)
    rupees = f"{total // 100}.{total % 100:02d}"
    pay(db, users["fin"], amount=rupees, mode="RTGS", reference="SBINR52026061500000001")
    assert loan.status == "CLOSED" and loan.outstanding_principal_paise == 0
    with pytest.raises(Conflict) as refused:
        pay(db, users["fin"], amount="1", mode="UPI", reference="444444444444")
    assert refused.value.code == "loan_closed"


@pytest.mark.parametrize("fields, field, problem", [
    ({"amount": "-100"}, "amount", "greater than zero"),
    ({"amount": "0"}, "amount", "greater than zero"),
    ({"amount": "10.001"}, "amount", "2 decimal places"),
    ({"amount": "99999999999999"}, "amount", "too large"),
    ({"amount": "500000"}, "amount", "still payable"),
    ({"amount": "abc"}, "amount", "not a number"),
    ({"amount": ""}, "amount", "required"),
    ({"amount": "100", "mode": "BITCOIN"}, "mode", "must be one of"),
    ({"amount": "100", "mode": "UPI", "reference": "12345"}, "reference", "12 digits"),
    ({"amount": "100", "mode": "UPI"}, "reference", "required"),
    ({"amount": "100", "mode": "IMPS", "reference": "12345678901A"}, "reference", "12 digits"),
    ({"amount": "100", "mode": "NEFT", "reference": "HDFC123"}, "reference", "16 letters"),
    ({"amount": "100", "mode": "RTGS", "reference": "SBINR5202606150000000"}, "reference", "22 letters"),
    ({"amount": "100", "mode": "CHEQUE", "reference": "123456"}, "cheque_bank", "IFSC"),
    ({"amount": "100", "mode": "CHEQUE", "reference": "12345", "cheque_bank": "SBIN"}, "reference", "6 digits"),
    ({"amount": "100", "mode": "CASH", "receipt_number": ""}, "receipt_number", "required"),
    ({"amount": "100", "mode": "CASH", "reference": "123456789012"}, "reference", "cash has no"),
    ({"amount": "100", "value_date": "2026-06-16"}, "value_date", "future"),
    ({"amount": "100", "value_date": "2025-12-31"}, "value_date", "before the loan was disbursed"),
    ({"amount": "100", "value_date": "15/06/2026"}, "value_date", "YYYY-MM-DD"),
])
def test_bad_input_is_refused_by_name_and_books_nothing(db, users, loan, fields, field, problem):
    with pytest.raises(ValidationError) as refused:
        pay(db, users["col"], **fields)
    assert problem in refused.value.fields[field]
    assert db.scalar(select(func.count()).select_from(Payment)) == 0


def test_reference_is_normalised_and_unique(db, users, loan, make_loan):
    make_loan(loan_number="KL2")
    first = pay(db, users["col"], amount="100", mode="NEFT", reference="  hdfcn26306258176 ")
    assert first.payment.utr == "HDFCN26306258176"
    with pytest.raises(Conflict) as refused:
        pay(db, users["mgr"], loan_number="KL2", amount="200", mode="NEFT", reference="HDFCN26306258176")
    assert first.payment.reference in refused.value.message and refused.value.code == "duplicate_utr"
    cheque = pay(db, users["col"], amount="100", mode="CHEQUE", reference="000123", cheque_bank="sbin")
    assert cheque.payment.utr == "SBIN-000123"
    assert pay(db, users["col"], amount="100", mode="CHEQUE", reference="000123", cheque_bank="HDFC").posted


def test_cash_rule_section_269st(db, users, loan, make_loan):
    make_loan(loan_number="KL2", principal="500000")  # same borrower (same name and phone)
    pay(db, users["col"], amount="44424.40")
    pay(db, users["col"], loan_number="KL2", amount="155575.59")  # ₹1,99,999.99 in all: allowed
    with pytest.raises(ValidationError) as refused:
        pay(db, users["col"], loan_number="KL2", amount="0.01")
    assert refused.value.code == "cash_limit" and "269ST" in refused.value.message
    assert pay(db, users["col"], loan_number="KL2", amount="0.01", mode="UPI", reference="555555555555").posted
    assert pay(db, users["col"], loan_number="KL2", amount="1000", value_date="2026-06-14").posted  # another day


def test_scope_and_roles(db, users, loan):
    with pytest.raises(NotFound):
        pay(db, users["col2"], amount="100")  # another collector's loan
    with pytest.raises(NotFound):
        pay(db, users["mgr2"], amount="100")  # another branch
    with pytest.raises(Forbidden):
        pay(db, users["leg"], amount="100")  # legal never records payments
    booked = pay(db, users["col"], amount="100")
    with pytest.raises(Forbidden):
        approvals.request_reversal(db, users["col"], booked.payment.reference, {"reason": "DUPLICATE"})
    with pytest.raises(NotFound):
        approvals.request_reversal(db, users["mgr2"], booked.payment.reference, {"reason": "DUPLICATE"})


def test_inbox_scope_and_decision_rules(db, users, loan):
    held = pay(db, users["col"], amount="100", value_date="2026-06-01")
    assert [a.id for a in approvals.inbox(db, users["mgr"], approvals.InboxFilters(), 1, 25).items] == [held.approval.id]
    assert approvals.inbox(db, users["mgr2"], approvals.InboxFilters(), 1, 25).items == []
    assert approvals.inbox(db, users["fin"], approvals.InboxFilters(), 1, 25).items == []  # finance: reversals only
    with pytest.raises(Forbidden):
        approvals.inbox(db, users["col"], approvals.InboxFilters(), 1, 25)
    with pytest.raises(NotFound):
        approvals.decide(db, users["mgr2"], [held.approval.id], approve=True, reason="x")
    with pytest.raises(ValidationError) as refused:
        approvals.decide(db, users["mgr"], [held.approval.id], approve=True, reason="  ")
    assert "reason" in refused.value.fields


def test_bulk_decision_is_all_or_nothing(db, users, loan):
    a = pay(db, users["col"], amount="100", value_date="2026-06-01").approval
    b = pay(db, users["mgr"], amount="100", value_date="2026-06-02").approval  # made by the manager
    with pytest.raises(Forbidden):
        with db.begin_nested():
            approvals.decide(db, users["mgr"], [a.id, b.id], approve=True, reason="batch")
    assert db.scalar(select(Approval.status).where(Approval.id == a.id)) == "PENDING"
    approvals.decide(db, users["mgr"], [a.id], approve=True, reason="batch")
    assert a.status == "APPROVED" and b.status == "PENDING"


def test_every_booking_is_audited_with_position_before_and_after(db, users, loan):
    booked = pay(db, users["col"], amount="8884.88", mode="UPI", reference="666666666666")
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "payment.posted"))
    before, after = json.loads(entry.before), json.loads(entry.after)
    assert entry.entity_id == booked.payment.reference and entry.actor_label == "col"
    assert before["loan"]["overdue"] == "44424.40" and after["loan"]["overdue"] == "35539.52"
    assert after["amount"] == "8884.88" and after["utr"] == "666666666666"


def test_a_payment_dated_before_money_already_applied_is_replayed_ahead_of_it(db, users, loan):
    today = pay(db, users["col"], amount="8884.88", mode="UPI", reference="777777777771")
    earlier = pay(db, users["col"], amount="8884.88", mode="UPI", reference="777777777772", value_date="2026-06-10")
    again = pay(db, users["col"], amount="100", mode="UPI", reference="777777777773")
    assert earlier.posted  # five days back: within the backdating threshold
    by_payment = dict(db.execute(
        select(Allocation.payment_id, func.min(Allocation.instalment_id)).group_by(Allocation.payment_id)).all())
    seq_of = {i.id: i.seq for i in loan.instalments}
    # Allocation follows value dates: the 10 Jun payment now pays instalment 1, the one booked first instalment 2.
    assert seq_of[by_payment[earlier.payment.id]] == 1 and seq_of[by_payment[today.payment.id]] == 2
    flags = {e.entity_id: json.loads(e.after)["replayed_out_of_order"]
             for e in db.scalars(select(AuditEntry).where(AuditEntry.action == "payment.posted"))}
    assert flags == {today.payment.reference: False, earlier.payment.reference: True, again.payment.reference: False}
    assert loan.overdue_paise == 5 * EMI - 2 * EMI - 10_000


def test_allocations_are_what_a_replay_allocates_and_a_later_payment_leaves_earlier_rows_alone(db, users, loan):
    def rows():
        return {r.id: (r.payment_id, r.instalment_id, r.component, r.amount_paise)
                for r in db.scalars(select(Allocation).where(Allocation.loan_id == loan.id))}

    def replayed():
        seq_to_id = {i.seq: i.id for i in loan.instalments}
        return sorted((a.key, seq_to_id[a.seq], a.component, a.amount_paise)
                      for a in replay.live_position(db, loan).allocations)

    pay(db, users["col"], amount="8884.88", mode="UPI", reference="888888888881", value_date="2026-06-12")
    first = rows()
    pay(db, users["col"], amount="5000", mode="UPI", reference="888888888882")
    after_in_order = rows()
    assert first.items() <= after_in_order.items()  # same ids, same amounts: not deleted and written again
    assert sorted(after_in_order.values()) == replayed()

    # Dated before both: instalment 1 moves to it, so the earlier rows change, and only what a replay says stays.
    earlier = pay(db, users["col"], amount="8884.88", mode="UPI", reference="888888888883", value_date="2026-06-10")
    after_backdated = rows()
    assert sorted(after_backdated.values()) == replayed()
    assert not first.items() <= after_backdated.items()
    assert {a for a in after_backdated.values() if a[0] == earlier.payment.id} == {
        (earlier.payment.id, loan.instalments[0].id, "interest", 100_000),
        (earlier.payment.id, loan.instalments[0].id, "principal", EMI - 100_000)}


def test_database_refuses_edits_of_payments_and_decided_approvals(db, users, loan):
    booked = pay(db, users["col"], amount="100")
    held = pay(db, users["col"], amount="100", value_date="2026-06-01")
    approvals.decide(db, users["mgr"], [held.approval.id], approve=True, reason="ok")
    pid, aid = booked.payment.id, held.approval.id
    for sql in (f"UPDATE payments SET amount_paise = 1 WHERE id = {pid}",
                f"UPDATE payments SET value_date = '2026-01-01' WHERE id = {pid}",
                f"UPDATE payments SET status = 'PENDING_APPROVAL' WHERE id = {pid}",
                f"DELETE FROM payments WHERE id = {pid}",
                f"UPDATE approvals SET decision_reason = 'edited' WHERE id = {aid}",
                f"DELETE FROM approvals WHERE id = {aid}"):
        with pytest.raises(DBAPIError, match="kisht"):
            with db.begin_nested():
                db.execute(text(sql))


def test_maker_checker_is_a_database_rule_too(db, users, loan):
    held = pay(db, users["col"], amount="100", value_date="2026-06-01")
    with pytest.raises(IntegrityError):
        with db.begin_nested():
            db.execute(text(f"UPDATE approvals SET checker_id = maker_id, status = 'APPROVED' WHERE id = {held.approval.id}"))
