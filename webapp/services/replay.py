"""The ledger in the database: a loan's receipts, its live position, and the replay that stores it.

Payments are the facts; allocations, instalment paid amounts and statuses, and the loan's position are
derived, rewritten for the one loan whenever its money changes (DESIGN.md §3 "Replay").
"""
from __future__ import annotations

from collections import Counter

from flask import current_app
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from webapp import clock, money
from webapp.models import Allocation, Approval, Loan, Payment, Reversal
from webapp.services import ledger
from webapp.services.schedule import ScheduledInstalment


def schedule_of(loan: Loan) -> list[ScheduledInstalment]:
    return [ScheduledInstalment(i.seq, i.due_date, i.principal_due_paise, i.interest_due_paise)
            for i in loan.instalments]


def receipts_of(session: Session, loan: Loan) -> list[ledger.Receipt]:
    """Posted payments net of approved reversals, in creation order (one query)."""
    reversed_paise = (
        select(func.coalesce(func.sum(Reversal.amount_paise), 0))
        .join(Approval, Approval.reversal_id == Reversal.id)
        .where(Reversal.payment_id == Payment.id, Approval.status == "APPROVED")
        .scalar_subquery()
    )
    rows = session.execute(
        select(Payment.id, Payment.value_date, Payment.amount_paise - reversed_paise)
        .where(Payment.loan_id == loan.id, Payment.status == "POSTED")
        .order_by(Payment.id)
    ).all()
    return [ledger.Receipt(pid, value_date, net) for pid, value_date, net in rows if net > 0]


def position_for(loan: Loan, receipts: list[ledger.Receipt]) -> ledger.Position:
    """The live position (DESIGN.md §4) for a given set of receipts: pure, used for previews too."""
    config = current_app.config
    return ledger.compute_position(
        schedule_of(loan), receipts, clock.last_business_date(), receipts_until=clock.today_ist(),
        order=config["ALLOCATION_ORDER"], buckets=config["BUCKETS"],
    )


def live_position(session: Session, loan: Loan) -> ledger.Position:
    return position_for(loan, receipts_of(session, loan))


def snapshot(position: ledger.Position) -> dict:
    """What audit entries record as a loan's position before and after a change."""
    return {
        "dpd": position.dpd, "asset_class": position.asset_class, "bucket": position.bucket,
        "overdue": money.as_str(position.overdue_paise),
        "outstanding_principal": money.as_str(position.outstanding_principal_paise),
        "advance": money.as_str(position.advance_paise), "status": "CLOSED" if position.closed else "ACTIVE",
    }


def stored_snapshot(loan: Loan) -> dict:
    """The position as last stored on the loan (before a change is replayed)."""
    return {
        "dpd": loan.dpd, "asset_class": loan.asset_class, "bucket": loan.bucket,
        "overdue": money.as_str(loan.overdue_paise),
        "outstanding_principal": money.as_str(loan.outstanding_principal_paise), "status": loan.status,
    }


def replay(session: Session, loan: Loan, receipts: list[ledger.Receipt] | None = None) -> ledger.Position:
    """Re-run allocation for this loan from its first payment and store everything derived from it.

    `receipts`: the loan's receipts when the caller already holds them under the loan's lock (a booking adds
    its payment to those it read); otherwise they are read here."""
    position = live_position(session, loan) if receipts is None else position_for(loan, receipts)
    loan.outstanding_principal_paise = position.outstanding_principal_paise
    loan.overdue_paise = position.overdue_paise
    loan.overdue_since = position.overdue_since
    loan.asset_class = position.asset_class
    loan.bucket = position.bucket
    loan.position_date = position.as_of
    loan.status = "CLOSED" if position.closed else "ACTIVE"
    by_seq = {row.seq: row for row in position.instalments}
    instalment_ids = {}
    for instalment in loan.instalments:
        row = by_seq[instalment.seq]
        instalment.principal_paid_paise = row.principal_paid
        instalment.interest_paid_paise = row.interest_paid
        instalment.status = row.status
        instalment_ids[instalment.seq] = instalment.id
    session.flush()
    _store_allocations(session, loan.id, [(a.key, instalment_ids[a.seq], a.component, a.amount_paise)
                                          for a in position.allocations])
    return position


def _store_allocations(session: Session, loan_id: int, wanted: list[tuple[int, int, str, int]]) -> None:
    """Make the loan's allocation rows equal `wanted` (payment, instalment, component, paise), touching only
    the rows that differ: a payment after all others adds its own rows and leaves the rest as they are."""
    missing = Counter(wanted)
    stale = []
    for row_id, *allocation in session.execute(
            select(Allocation.id, Allocation.payment_id, Allocation.instalment_id, Allocation.component,
                   Allocation.amount_paise).where(Allocation.loan_id == loan_id)):
        if missing[tuple(allocation)] > 0:
            missing[tuple(allocation)] -= 1
        else:
            stale.append(row_id)
    if stale:
        session.execute(delete(Allocation).where(Allocation.id.in_(stale)))
    new_rows = [{"loan_id": loan_id, "payment_id": payment_id, "instalment_id": instalment_id,
                 "component": component, "amount_paise": paise}
                for payment_id, instalment_id, component, paise in missing.elements()]
    if new_rows:
        session.execute(Allocation.__table__.insert(), new_rows)
