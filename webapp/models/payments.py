"""Payments (the facts), reversals, the approval inbox, derived allocations and idempotency records.

A payment's amount, dates, mode, reference and maker never change after insert; corrections are
reversals, approved by a second person. Triggers (migration 0002) enforce this in the database too.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp import clock
from webapp.db import Base, UTCDateTime
from webapp.models.loans import Instalment, Loan
from webapp.models.org import User

MODES = ("CASH", "UPI", "NEFT", "RTGS", "IMPS", "CHEQUE")
PAYMENT_STATUSES = ("POSTED", "PENDING_APPROVAL", "REJECTED", "REVERSED")
# Statuses whose payment no longer holds its UTR or receipt number (it never booked, or was taken back).
RELEASED_STATUSES = ("REJECTED", "REVERSED")
REVERSAL_REASONS = {"CHEQUE_BOUNCE": "Cheque bounce", "WRONG_LOAN": "Wrong loan", "DUPLICATE": "Duplicate",
                    "BANK_RETURN": "Bank return", "OTHER": "Other"}
APPROVAL_KINDS = ("BACKDATED_PAYMENT", "REVERSAL")
APPROVAL_STATUSES = ("PENDING", "APPROVED", "REJECTED")

IMMUTABLE_PAYMENT_COLUMNS = ("reference", "loan_id", "branch_id", "borrower_id", "amount_paise", "mode", "utr",
                             "cheque_bank", "receipt_number", "value_date", "created_at", "recorded_by_id")


def _in(values) -> str:
    return ", ".join(repr(v) for v in values)


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount_paise > 0", name="amount_positive"),
        CheckConstraint(f"mode IN ({_in(MODES)})", name="mode_known"),
        CheckConstraint(f"status IN ({_in(PAYMENT_STATUSES)})", name="status_known"),
        CheckConstraint("mode = 'CASH' OR utr IS NOT NULL", name="reference_unless_cash"),
        # A UTR books money once; a rejected or fully reversed entry frees it for a corrected one.
        Index("uq_payments_utr_live", "utr", unique=True,
              postgresql_where=text(f"utr IS NOT NULL AND status NOT IN ({_in(RELEASED_STATUSES)})"),
              sqlite_where=text(f"utr IS NOT NULL AND status NOT IN ({_in(RELEASED_STATUSES)})")),
        Index("uq_payments_cash_receipt_live", "branch_id", "receipt_number", unique=True,
              postgresql_where=text(f"receipt_number IS NOT NULL AND status NOT IN ({_in(RELEASED_STATUSES)})"),
              sqlite_where=text(f"receipt_number IS NOT NULL AND status NOT IN ({_in(RELEASED_STATUSES)})")),
        Index("ix_payments_loan_id_value_date", "loan_id", "value_date"),
        Index("ix_payments_borrower_id_value_date", "borrower_id", "value_date"),
        # Day-end's money received per loan, read from the index alone (migration 0008).
        Index("ix_payments_posted_by_loan", "loan_id", postgresql_include=["id", "value_date", "amount_paise"],
              postgresql_where=text("status = 'POSTED'"), sqlite_where=text("status = 'POSTED'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)  # human key, printed on the receipt
    loan_id: Mapped[int] = mapped_column(ForeignKey("loans.id"))  # indexed with value_date
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id"), index=True)
    borrower_id: Mapped[int] = mapped_column(ForeignKey("borrowers.id"))  # indexed with value_date
    amount_paise: Mapped[int] = mapped_column(BigInteger)
    mode: Mapped[str] = mapped_column(String(8), index=True)
    utr: Mapped[str | None] = mapped_column(String(32))  # normalised reference (cheques: BANK-NNNNNN)
    cheque_bank: Mapped[str | None] = mapped_column(String(11))
    receipt_number: Mapped[str | None] = mapped_column(String(32))
    value_date: Mapped[date] = mapped_column(Date, index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, index=True)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    # Set when a confirmed reconciliation match holds the payment: from then on it is locked (no reversal,
    # no status change) until an approved unreconcile releases it (migration 0007_reconciliation).
    reconciled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)

    loan: Mapped[Loan] = relationship(lazy="joined", innerjoin=True)
    recorded_by: Mapped[User | None] = relationship(lazy="joined")
    reversals: Mapped[list["Reversal"]] = relationship(back_populates="payment", lazy="selectin",
                                                       order_by="Reversal.id")


class Reversal(Base):
    """A request to take back part or all of a posted payment; effective once its approval is approved."""

    __tablename__ = "reversals"
    __table_args__ = (
        CheckConstraint("amount_paise > 0", name="amount_positive"),
        CheckConstraint(f"reason IN ({_in(REVERSAL_REASONS)})", name="reason_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    amount_paise: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    payment: Mapped[Payment] = relationship(back_populates="reversals")
    # selectin, not joined, for the to-one relations whose targets join their own (a payment brings its loan, the
    # loan's borrower, branch and collector, and who recorded it): one join of them all took PostgreSQL 10-40 ms
    # to plan for a 3 ms run.
    approval: Mapped["Approval"] = relationship(back_populates="reversal", lazy="selectin", uselist=False)


class Approval(Base):
    """An item of the maker-checker inbox: a backdated payment or a reversal awaiting a second person."""

    __tablename__ = "approvals"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_in(APPROVAL_KINDS)})", name="kind_known"),
        CheckConstraint(f"status IN ({_in(APPROVAL_STATUSES)})", name="status_known"),
        CheckConstraint("checker_id IS NULL OR checker_id <> maker_id", name="maker_is_not_checker"),
        CheckConstraint("(kind = 'REVERSAL') = (reversal_id IS NOT NULL)", name="reversal_for_reversals"),
        Index("ix_approvals_status_branch_id_created_at", "status", "branch_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    reversal_id: Mapped[int | None] = mapped_column(ForeignKey("reversals.id"), index=True, unique=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id"), index=True)
    status: Mapped[str] = mapped_column(String(10), default="PENDING", index=True)
    maker_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    checker_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    decision_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, index=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    payment: Mapped[Payment] = relationship(lazy="selectin")  # see Reversal.approval
    reversal: Mapped[Reversal | None] = relationship(back_populates="approval", lazy="joined")
    maker: Mapped[User | None] = relationship(foreign_keys=[maker_id], lazy="joined")
    checker: Mapped[User | None] = relationship(foreign_keys=[checker_id], lazy="joined")


class Allocation(Base):
    """Derived: which payment paid which component of which instalment. Every replay makes them what it
    allocates, rewriting only the rows that differ."""

    __tablename__ = "allocations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loans.id"), index=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    instalment_id: Mapped[int] = mapped_column(ForeignKey("instalments.id"), index=True)
    component: Mapped[str] = mapped_column(String(10))
    amount_paise: Mapped[int] = mapped_column(BigInteger)

    instalment: Mapped[Instalment] = relationship(lazy="joined")


class IdempotencyRecord(Base):
    """A submission's key, the fingerprint of its request and the response it got, replayed verbatim."""

    __tablename__ = "idempotency_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer, default=0)
    body: Mapped[str] = mapped_column(Text, default="")
    content_type: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, index=True)
