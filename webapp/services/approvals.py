"""Maker-checker: backdated payments and reversals wait in an inbox for a second person (DESIGN.md §5, §6).

The maker can never decide their own item (service and a CHECK constraint). Approving replays the loan;
the audit entry records the loan's position before and after.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, lazyload, load_only, selectinload

from webapp import clock, money
from webapp.errors import Conflict, Forbidden, NotFound, ValidationError
from webapp.models import Approval, Branch, Loan, Payment, Reversal, User
from webapp.models.payments import REVERSAL_REASONS
from webapp.permissions import MATRIX, Perm, can, loan_visible, require
from webapp.services import audit, ledger, loans, payments, replay
from webapp.services.pagination import Page, paginate

DECISION_PERMISSION = {"BACKDATED_PAYMENT": Perm.APPROVE_BACKDATED, "REVERSAL": Perm.APPROVE_REVERSAL}
MAX_REASON = 500


# ---------------------------------------------------------------- reversals are requested here

def request_reversal(session: Session, actor, payment_reference: str, raw: Mapping[str, object]) -> Approval:
    """A finance user or manager asks to take back part or all of a posted payment, with a reason."""
    require(actor, Perm.REQUEST_REVERSAL)
    payment = payments.get_for(session, actor, payment_reference)
    loans.get_for(session, actor, payment.loan.loan_number, lock=True)  # serialise with postings ...
    session.expire(payment, ["reversals", "reconciled_at", "status"])  # ... and read them under that lock
    _refuse_if_reconciled(actor, payment, "request a reversal")
    if payment.status != "POSTED":
        raise Conflict(f"Payment {payment.reference} is {payment.status.replace('_', ' ').lower()}; "
                       "only posted payments can be reversed.", code="not_posted")
    errors: dict[str, str] = {}
    reason = str(raw.get("reason") or "").strip().upper()
    if reason not in REVERSAL_REASONS:
        errors["reason"] = f"must be one of {', '.join(REVERSAL_REASONS)}"
    note = str(raw.get("note") or "").strip()
    if len(note) > MAX_REASON:
        errors["note"] = f"must be at most {MAX_REASON} characters"
    elif reason == "OTHER" and not note:
        errors["note"] = "is required when the reason is OTHER"
    open_paise = payments.open_to_reverse_paise(payment)
    if open_paise <= 0:
        raise Conflict(f"Payment {payment.reference} is already reversed or awaiting reversal in full.",
                       code="nothing_to_reverse")
    amount = open_paise if not str(raw.get("amount") or "").strip() else None
    if amount is None:
        try:
            amount = money.to_paise(money.parse_rupees(raw.get("amount")))
        except money.MoneyError as problem:
            errors["amount"] = str(problem)
    if "amount" not in errors and amount > open_paise:
        errors["amount"] = (f"is more than the {money.format_inr(open_paise)} of this payment not already "
                            "reversed or awaiting reversal")
    if errors:
        raise ValidationError("The reversal is not valid.", fields=errors)
    # Through the relationships, so the payment's reversals in this session include the new one.
    reversal = Reversal(payment=payment, amount_paise=amount, reason=reason, note=note,
                        requested_by_id=getattr(actor, "id", None))
    approval = Approval(kind="REVERSAL", payment=payment, reversal=reversal, branch_id=payment.branch_id,
                        maker_id=getattr(actor, "id", None))
    session.add(approval)
    session.flush()
    audit.record(session, actor, "reversal.requested", "payment", payment.reference,
                 after={"approval_id": approval.id, "amount": money.as_str(amount), "reason": reason, "note": note},
                 branch_id=payment.branch_id)
    return approval


def _refuse_if_reconciled(actor, payment, attempted: str) -> None:
    """A reconciled payment is locked (matched to a bank credit): say so, and audit the refused attempt."""
    if payment.reconciled_at is None:
        return
    raise Conflict(
        f"Payment {payment.reference} is reconciled with the bank statement and cannot be reversed or changed. "
        "Finance must first unreconcile it (asked with a reason, approved by a second finance user).",
        code="payment_reconciled",
        attempt=audit.RefusedAttempt(audit.Actor.of(actor), "payment.change_refused", "payment", payment.reference,
                                     {"action": attempted, "reconciled_at": payment.reconciled_at},
                                     payment.branch_id))


# ---------------------------------------------------------------- the inbox

def _visible_kinds(actor) -> list[str]:
    return [kind for kind, perm in DECISION_PERMISSION.items() if can(actor, perm)]


def _inbox_filter(actor):
    """Approvals an actor may see: their branch's for managers; every reversal for finance."""
    kinds = _visible_kinds(actor)
    condition = Approval.kind.in_(kinds)
    if actor.role == "manager":
        condition = condition & (Approval.branch_id == actor.branch_id)
    return condition


@dataclass(frozen=True)
class InboxFilters:
    status: str = "PENDING"
    kind: str = ""
    maker: str = ""
    date_from: date | None = None
    date_to: date | None = None
    branch: str = ""  # a branch code (the API's filter; managers only ever see their own branch)


def parse_filters(args: Mapping[str, str]) -> InboxFilters:
    dates = loans.parse_dates(args)
    status = (args.get("status") or "PENDING").upper()
    return InboxFilters(status=status if status in ("PENDING", "APPROVED", "REJECTED") else "PENDING",
                        kind=(args.get("kind") or "").upper(), maker=(args.get("maker") or "").strip().lower()[:64],
                        **dates)


# What an inbox row shows (the screen and the API): the payment with its loan's number, the reversal, maker and
# checker, and none of their own relations; by default a payment brings its loan's borrower, branch and
# collector, who recorded it and its reversals, and each user their branch.
INBOX_ROW = (
    selectinload(Approval.payment).options(
        joinedload(Payment.loan).options(load_only(Loan.loan_number), lazyload("*")), lazyload("*")),
    joinedload(Approval.reversal).lazyload("*"),
    joinedload(Approval.maker).lazyload("*"),
    joinedload(Approval.checker).lazyload("*"),
)


def inbox(session: Session, actor, filters: InboxFilters, page: int, per_page: int) -> Page:
    if not _visible_kinds(actor):
        raise Forbidden("You do not have permission to do that.")
    query = select(Approval).where(_inbox_filter(actor), Approval.status == filters.status)
    if filters.kind:
        query = query.where(Approval.kind == filters.kind)
    if filters.maker:
        query = query.join(User, User.id == Approval.maker_id).where(User.username == filters.maker)
    if filters.branch:
        query = query.join(Branch, Branch.id == Approval.branch_id).where(Branch.code == filters.branch.upper())
    if filters.date_from:
        query = query.where(Approval.created_at >= clock.start_of_ist_day(filters.date_from))
    if filters.date_to:
        query = query.where(Approval.created_at < clock.start_of_ist_day(filters.date_to, plus_days=1))
    return paginate(session, query.order_by(Approval.created_at, Approval.id).options(*INBOX_ROW), page, per_page)


def get_for(session: Session, actor, approval_id, *, lock: bool = False) -> Approval:
    if not _visible_kinds(actor):
        raise Forbidden("You do not have permission to do that.")
    try:
        ident = int(approval_id)
    except (TypeError, ValueError):
        raise NotFound(f"No approval {approval_id}.") from None
    query = select(Approval).where(Approval.id == ident, _inbox_filter(actor))
    if lock:
        query = query.with_for_update(of=Approval)
    approval = session.scalars(query).unique().one_or_none()
    if approval is None or not loan_visible(actor, approval.payment.loan):
        raise NotFound(f"No approval {approval_id}.")
    return approval


@dataclass(frozen=True)
class Impact:
    before: ledger.Position
    after: ledger.Position


def impact(session: Session, approval: Approval) -> Impact:
    """The loan's live position now, and as it would be if this item were approved."""
    loan = approval.payment.loan
    receipts = replay.receipts_of(session, loan)
    before = replay.position_for(loan, receipts)
    if approval.kind == "BACKDATED_PAYMENT":
        payment = approval.payment
        changed = receipts + [ledger.Receipt(payment.id, payment.value_date, payment.amount_paise)]
        changed.sort(key=lambda r: r.key)  # creation order
    else:
        changed = [ledger.Receipt(r.key, r.value_date, r.amount_paise - approval.reversal.amount_paise)
                   if r.key == approval.payment_id else r for r in receipts]
        changed = [r for r in changed if r.amount_paise > 0]
    return Impact(before, replay.position_for(loan, changed))


# ---------------------------------------------------------------- deciding

def decide(session: Session, actor, approval_ids: Iterable, *, approve: bool, reason: str) -> list[Approval]:
    """Approve or reject one or several items, all or nothing, with one mandatory reason."""
    reason = (reason or "").strip()
    ids = list(dict.fromkeys(str(i) for i in approval_ids))
    errors = {}
    if not reason:
        errors["reason"] = "is required"
    elif len(reason) > MAX_REASON:
        errors["reason"] = f"must be at most {MAX_REASON} characters"
    if not ids:
        errors["approvals"] = "choose at least one item"
    if errors:
        raise ValidationError("The decision is not valid.", fields=errors)
    decided = []
    for approval_id in ids:
        approval = get_for(session, actor, approval_id, lock=True)
        require(actor, DECISION_PERMISSION[approval.kind])
        if approval.status != "PENDING":
            raise Conflict(f"Approval {approval.id} was already {approval.status.lower()}.", code="already_decided")
        if approval.maker_id is not None and approval.maker_id == getattr(actor, "id", None):
            raise Forbidden(f"Approval {approval.id}: you cannot decide an entry you made yourself.")
        decided.append(_decide_one(session, actor, approval, approve, reason))
    return decided


def _decide_one(session: Session, actor, approval: Approval, approve: bool, reason: str) -> Approval:
    payment = approval.payment
    loan = loans.get_for(session, actor, payment.loan.loan_number, lock=True)
    if approve and approval.kind == "REVERSAL":
        session.refresh(payment, ["reconciled_at"])
        _refuse_if_reconciled(actor, payment, f"approve reversal {approval.id}")
    before = replay.live_position(session, loan)
    approval.status = "APPROVED" if approve else "REJECTED"
    approval.checker_id = getattr(actor, "id", None)
    approval.decision_reason = reason
    approval.decided_at = clock.now()
    if approval.kind == "BACKDATED_PAYMENT":
        payment.status = "POSTED" if approve else "REJECTED"
    elif approve and payments.reversed_paise(payment) == payment.amount_paise:
        payment.status = "REVERSED"  # fully taken back: it frees its UTR for a corrected booking
    session.flush()
    after = replay.replay(session, loan) if approve else before
    action = f"{'reversal' if approval.kind == 'REVERSAL' else 'backdated_payment'}.{approval.status.lower()}"
    details = {"approval_id": approval.id, "reason": reason, "maker_id": approval.maker_id,
               "payment": payments.describe(payment)}
    if approval.reversal is not None:
        details["reversal_amount"] = money.as_str(approval.reversal.amount_paise)
    audit.record(session, actor, action, "payment", payment.reference,
                 before={"loan": replay.snapshot(before)}, after={**details, "loan": replay.snapshot(after)},
                 branch_id=loan.branch_id)
    if approve:
        audit.record(session, actor, "ledger.replayed", "loan", loan.loan_number,
                     before=replay.snapshot(before), after=replay.snapshot(after), branch_id=loan.branch_id)
    return approval


def decidable_by(actor, approval: Approval) -> bool:
    """Whether the screen should offer this actor the approve/reject buttons."""
    perm = DECISION_PERMISSION[approval.kind]
    return (approval.status == "PENDING" and perm in MATRIX.get(actor.role, ())
            and approval.maker_id != getattr(actor, "id", None))
