"""Recording payments (DESIGN.md §5): validation, the cash rule, UTR uniqueness, backdating, posting.

Payments to one loan are serialised by a row lock on the loan; the whole booking (payment, approval,
replayed ledger, audit) is one transaction owned by the caller.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date
from typing import Mapping

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, lazyload

from webapp import clock, money
from webapp.errors import Conflict, NotFound, ValidationError
from webapp.models import Approval, Borrower, Loan, Payment, Reversal
from webapp.models.payments import MODES, RELEASED_STATUSES
from webapp.permissions import Perm, loan_visible, require
from webapp.services import audit, loans, replay
from webapp.services.ledger import Position, Receipt

# Income-tax Act s.269ST: cash of ₹2,00,000 or more from one person in one day is not allowed.
CASH_DAILY_LIMIT_PAISE = 2_00_000_00
REFERENCE_RULES = {
    "NEFT": (re.compile(r"^[A-Z0-9]{16}$"), "an NEFT UTR is 16 letters or digits"),
    "RTGS": (re.compile(r"^[A-Z0-9]{22}$"), "an RTGS UTR is 22 letters or digits"),
    "IMPS": (re.compile(r"^\d{12}$"), "an IMPS reference is 12 digits"),
    "UPI": (re.compile(r"^\d{12}$"), "a UPI reference is 12 digits"),
    "CHEQUE": (re.compile(r"^\d{6}$"), "a cheque number is 6 digits"),
}
BANK_CODE_RE = re.compile(r"^[A-Z]{4}$")
RECEIPT_RE = re.compile(r"^[A-Z0-9][A-Z0-9/-]{0,31}$")
REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U


@dataclass(frozen=True)
class PaymentInput:
    amount_paise: int
    mode: str
    utr: str | None
    cheque_bank: str | None
    receipt_number: str | None
    value_date: date


@dataclass(frozen=True)
class Booked:
    payment: Payment
    approval: Approval | None
    position: Position | None  # after posting; None while waiting for approval

    @property
    def posted(self) -> bool:
        return self.approval is None


def normalise_reference(raw) -> str:
    return ("" if raw is None else str(raw)).strip().upper()


def parse_payment(raw: Mapping[str, object], loan: Loan, today: date) -> PaymentInput:
    """Field rules for a payment, one place for the form, the API and imports; errors name the field."""
    errors: dict[str, str] = {}
    text = {k: ("" if raw.get(k) is None else str(raw.get(k)).strip()) for k in
            ("amount", "mode", "reference", "cheque_bank", "receipt_number", "value_date")}
    amount = None
    try:
        amount = money.to_paise(money.parse_rupees(text["amount"]))
    except money.MoneyError as problem:
        errors["amount"] = str(problem) if text["amount"] else "is required"
    mode = text["mode"].upper()
    if mode not in MODES:
        errors["mode"] = f"must be one of {', '.join(MODES)}"
    reference = normalise_reference(text["reference"])
    bank = normalise_reference(text["cheque_bank"]) or None
    receipt = normalise_reference(text["receipt_number"]) or None
    utr = None
    if mode == "CASH":
        if reference:
            errors["reference"] = "cash has no bank reference; write the receipt number instead"
        if not receipt:
            errors["receipt_number"] = "is required for cash"
        elif not RECEIPT_RE.match(receipt):
            errors["receipt_number"] = "must be up to 32 letters, digits, '/' or '-'"
    elif mode in REFERENCE_RULES:
        pattern, rule = REFERENCE_RULES[mode]
        if not reference:
            errors["reference"] = f"is required for {mode}"
        elif not pattern.match(reference):
            errors["reference"] = f"is not valid: {rule}"
        if receipt:
            errors["receipt_number"] = "is only for cash"
        if mode == "CHEQUE":
            if not bank or not BANK_CODE_RE.match(bank):
                errors["cheque_bank"] = "must be the bank's 4-letter IFSC code, e.g. SBIN"
            utr = f"{bank}-{reference}"
        else:
            utr = reference
    if mode != "CHEQUE":
        bank = None
    value_date = today
    if text["value_date"]:
        try:
            value_date = loans.parse_date(text["value_date"], not_after=today)
        except ValueError as problem:
            errors["value_date"] = str(problem)
    if "value_date" not in errors and value_date < loan.disbursed_on:
        errors["value_date"] = "cannot be before the loan was disbursed"
    if errors:
        raise ValidationError("The payment is not valid.", fields=errors)
    return PaymentInput(amount, mode, utr, bank, receipt, value_date)


def record_payment(session: Session, actor, loan_number: str, raw: Mapping[str, object]) -> Booked:
    """Book a payment: posted at once, or held for a manager when backdated beyond the threshold."""
    require(actor, Perm.RECORD_PAYMENT)
    loan = loans.get_for(session, actor, loan_number, lock=True)  # serialises payments to this loan
    if loan.status == "CLOSED":
        raise Conflict(f"Loan {loan.loan_number} is closed; it takes no more payments.", code="loan_closed")
    today = clock.today_ist()
    entry = parse_payment(raw, loan, today)
    receipts = replay.receipts_of(session, loan)  # read once, under the loan's lock
    before = replay.position_for(loan, receipts)
    payable = sum(row.unpaid for row in before.instalments) - before.advance_paise
    if entry.amount_paise > payable:
        raise ValidationError("The payment is not valid.", fields={
            "amount": f"is more than the {money.format_inr(payable)} still payable on this loan"})
    if entry.mode == "CASH":
        _check_cash_limit(session, loan, entry)
    _check_reference_unused(session, entry)
    backdated = (today - entry.value_date).days > current_app.config["BACKDATE_APPROVAL_DAYS"]
    payment = Payment(
        reference=_new_reference(), loan_id=loan.id, branch_id=loan.branch_id, borrower_id=loan.borrower_id,
        amount_paise=entry.amount_paise, mode=entry.mode, utr=entry.utr, cheque_bank=entry.cheque_bank,
        receipt_number=entry.receipt_number, value_date=entry.value_date,
        status="PENDING_APPROVAL" if backdated else "POSTED", recorded_by_id=getattr(actor, "id", None),
        reversals=[],  # a new payment has none: known without asking the database
    )
    _insert(session, payment, entry)
    facts = describe(payment)
    if backdated:
        approval = Approval(kind="BACKDATED_PAYMENT", payment_id=payment.id, branch_id=loan.branch_id,
                            maker_id=getattr(actor, "id", None))
        session.add(approval)
        session.flush()
        audit.record(session, actor, "payment.held_for_approval", "payment", payment.reference,
                     after={**facts, "approval_id": approval.id,
                            "days_back": (today - entry.value_date).days}, branch_id=loan.branch_id)
        return Booked(payment, approval, None)
    # Money already applied with a later value date is re-allocated behind this payment.
    out_of_order = any(receipt.value_date > entry.value_date for receipt in receipts)
    after = replay.replay(session, loan, receipts + [Receipt(payment.id, entry.value_date, entry.amount_paise)])
    audit.record(session, actor, "payment.posted", "payment", payment.reference,
                 before={"loan": replay.snapshot(before)},
                 after={**facts, "loan": replay.snapshot(after), "replayed_out_of_order": out_of_order},
                 branch_id=loan.branch_id)
    return Booked(payment, None, after)


def record_history(session: Session, actor, loan_number: str, entries: list[Mapping[str, object]]) -> list[Payment]:
    """Take over a loan's past payments (e.g. from the tracker at go-live): validated like any payment,
    posted without the backdating approval because they were collected before the system existed."""
    require(actor, Perm.ADMINISTER)
    loan = loans.get_for(session, actor, loan_number, lock=True)
    today = clock.today_ist()
    booked = []
    for raw in entries:
        entry = parse_payment(raw, loan, today)
        _check_reference_unused(session, entry)
        payment = Payment(
            reference=_new_reference(), loan_id=loan.id, branch_id=loan.branch_id, borrower_id=loan.borrower_id,
            amount_paise=entry.amount_paise, mode=entry.mode, utr=entry.utr, cheque_bank=entry.cheque_bank,
            receipt_number=entry.receipt_number, value_date=entry.value_date, status="POSTED",
            recorded_by_id=getattr(actor, "id", None))
        _insert(session, payment, entry)
        booked.append(payment)
    loan_snapshot = replay.stored_snapshot(loan)
    after = replay.replay(session, loan)
    audit.record(session, actor, "payments.history_taken_over", "loan", loan.loan_number,
                 before={"loan": loan_snapshot},
                 after={"payments": [describe(p) for p in booked], "loan": replay.snapshot(after)},
                 branch_id=loan.branch_id)
    return booked


def describe(payment: Payment) -> dict:
    return {
        "reference": payment.reference, "loan_number": payment.loan.loan_number if payment.loan else None,
        "amount": money.as_str(payment.amount_paise), "mode": payment.mode, "utr": payment.utr,
        "receipt_number": payment.receipt_number, "value_date": payment.value_date, "status": payment.status,
    }


def _check_cash_limit(session: Session, loan: Loan, entry: PaymentInput) -> None:
    # Lock the borrower so two cash payments on their different loans cannot both slip under the limit.
    session.execute(select(Borrower.id).where(Borrower.id == loan.borrower_id).with_for_update())
    already = session.scalar(
        select(func.coalesce(func.sum(Payment.amount_paise), 0)).where(
            Payment.borrower_id == loan.borrower_id, Payment.mode == "CASH", Payment.status.not_in(RELEASED_STATUSES),
            Payment.value_date == entry.value_date))
    if already + entry.amount_paise >= CASH_DAILY_LIMIT_PAISE:
        raise ValidationError(
            "Cash from one borrower on one day must stay below ₹2,00,000 (Income-tax Act s.269ST).",
            fields={"amount": f"{money.format_inr(already)} in cash already received from this borrower on "
                              f"{entry.value_date.isoformat()}; this would reach the ₹2,00,000 limit"},
            code="cash_limit")


def _existing_with_reference(session: Session, entry: PaymentInput) -> Payment | None:
    if not entry.utr:
        return None
    # The id first: almost every booking finds none, and a whole payment's eager loads cost more to set up
    # than the query itself.
    found = session.scalar(select(Payment.id).where(Payment.utr == entry.utr, Payment.status.not_in(RELEASED_STATUSES)))
    return session.get(Payment, found) if found is not None else None


def _duplicate(existing: Payment) -> Conflict:
    return Conflict(
        f"Reference {existing.utr} is already booked as payment {existing.reference} "
        f"on loan {existing.loan.loan_number}.",
        fields={"reference": f"already used by payment {existing.reference}"}, code="duplicate_utr")


def _check_reference_unused(session: Session, entry: PaymentInput) -> None:
    existing = _existing_with_reference(session, entry)
    if existing is not None:
        raise _duplicate(existing)


def _insert(session: Session, payment: Payment, entry: PaymentInput) -> None:
    """Insert; a concurrent booking of the same UTR or receipt surfaces here as a unique violation."""
    try:
        with session.begin_nested():
            session.add(payment)
            session.flush()
    except IntegrityError:
        existing = _existing_with_reference(session, entry)
        if existing is not None:
            raise _duplicate(existing) from None
        raise Conflict(f"Cash receipt {entry.receipt_number} is already used in this branch.",
                       fields={"receipt_number": "already used in this branch"}, code="duplicate_receipt") from None


def _new_reference() -> str:
    return "KP" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(10))


def get_for(session: Session, actor, reference: str) -> Payment:
    """Load and authorise a payment by its reference; outside the actor's scope it is not found."""
    require(actor, Perm.VIEW_LOANS)
    payment = session.scalar(select(Payment).where(Payment.reference == normalise_reference(reference)))
    if payment is None or not loan_visible(actor, payment.loan):
        raise NotFound(f"No payment {reference}.")
    return payment


def history(session: Session, loan: Loan) -> list[Payment]:
    """The loan's payments, newest value date first, with who recorded each and their reversals' approvals,
    in one query (reversals are rare: joining them adds few rows). Each payment's loan is `loan` itself, from
    the session: its joins (borrower, branch, collector) are not repeated on every row."""
    return list(session.scalars(
        select(Payment).where(Payment.loan_id == loan.id).order_by(Payment.value_date.desc(), Payment.id.desc())
        .options(lazyload(Payment.loan), joinedload(Payment.recorded_by).lazyload("*"),
                 joinedload(Payment.reversals).options(joinedload(Reversal.approval).lazyload("*")))).unique())


def reversed_paise(payment: Payment) -> int:
    return sum(r.amount_paise for r in payment.reversals if r.approval and r.approval.status == "APPROVED")


def pending_reversal_paise(payment: Payment) -> int:
    return sum(r.amount_paise for r in payment.reversals if r.approval and r.approval.status == "PENDING")


def open_to_reverse_paise(payment: Payment) -> int:
    """What a new reversal may still take back: the payment less what is reversed or awaiting approval."""
    return payment.amount_paise - reversed_paise(payment) - pending_reversal_paise(payment)


def reversible(payment: Payment) -> bool:
    """Whether a reversal may be asked for: posted, not locked by reconciliation, something left to take back.
    (approvals.request_reversal refuses each case by name; screens use this to offer the form.)"""
    return payment.status == "POSTED" and payment.reconciled_at is None and open_to_reverse_paise(payment) > 0
