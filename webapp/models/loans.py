"""Borrowers, loans and their immutable instalment schedules.

Loan terms (amount, rate, tenure, EMI, dates) and the schedule never change after insert: services
refuse it and database triggers (see the migration) reject a raw UPDATE or DELETE. The position
columns (outstanding, overdue, DPD, class, bucket, status) are derived data, written only by the
ledger and day-end services.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String,
                        UniqueConstraint, false)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp import clock
from webapp.db import Base, UTCDateTime
from webapp.models.org import Branch, User
from webapp.services.ledger import dpd_on

LANGUAGES = {"en": "English", "hi": "Hindi", "mr": "Marathi", "gu": "Gujarati", "ta": "Tamil", "te": "Telugu",
             "kn": "Kannada", "bn": "Bengali"}
LOAN_STATUSES = ("ACTIVE", "CLOSED")
INSTALMENT_STATUSES = ("DUE", "PARTIALLY_PAID", "PAID", "OVERDUE")
ASSET_CLASSES = ("STANDARD", "SMA-0", "SMA-1", "SMA-2", "NPA")

# Columns fixed at creation; the single list read by the service refusal and the database triggers.
IMMUTABLE_LOAN_COLUMNS = (
    "loan_number", "borrower_id", "branch_id", "principal_paise", "annual_rate_bps", "tenure_months",
    "emi_paise", "disbursed_on", "first_due_on", "created_at", "created_by_id",
)
IMMUTABLE_INSTALMENT_COLUMNS = ("loan_id", "seq", "due_date", "principal_due_paise", "interest_due_paise",
                                "cumulative_due_paise")


class Borrower(Base):
    __tablename__ = "borrowers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), index=True)
    phone: Mapped[str] = mapped_column(String(10), index=True)  # 10-digit Indian mobile number
    preferred_language: Mapped[str] = mapped_column(String(2), default="en")
    email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class Loan(Base):
    __tablename__ = "loans"
    __table_args__ = (
        CheckConstraint("principal_paise > 0", name="principal_positive"),
        CheckConstraint("annual_rate_bps >= 0 AND annual_rate_bps <= 6000", name="rate_range"),
        CheckConstraint("tenure_months >= 1 AND tenure_months <= 480", name="tenure_range"),
        CheckConstraint("first_due_on >= disbursed_on", name="first_due_after_disbursal"),
        CheckConstraint(f"status IN ({', '.join(repr(s) for s in LOAN_STATUSES)})", name="status_known"),
        CheckConstraint(f"asset_class IN ({', '.join(repr(c) for c in ASSET_CLASSES)})", name="class_known"),
        # Lists sort by DPD, i.e. by the oldest unpaid due date (ascending, loans not overdue last).
        # Carries the other sort keys of a branch's lists (and the id to join scores on): a manager's
        # priority list reads the branch's loans from this index alone (migration 0012).
        Index("ix_loans_branch_id_overdue_since", "branch_id", "overdue_since",
              postgresql_include=["overdue_paise", "id"]),
        Index("ix_loans_collector_id_overdue_since", "collector_id", "overdue_since",
              postgresql_include=["overdue_paise", "id"]),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    loan_number: Mapped[str] = mapped_column(String(32), unique=True)
    borrower_id: Mapped[int] = mapped_column(ForeignKey("borrowers.id"), index=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id"), index=True)
    collector_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    principal_paise: Mapped[int] = mapped_column(BigInteger)
    annual_rate_bps: Mapped[int] = mapped_column(Integer)  # 12.50 % = 1250
    tenure_months: Mapped[int] = mapped_column(Integer)
    emi_paise: Mapped[int] = mapped_column(BigInteger)
    disbursed_on: Mapped[date] = mapped_column(Date, index=True)
    first_due_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    # Derived position, refreshed by the ledger (live) and day-end (official).
    status: Mapped[str] = mapped_column(String(8), default="ACTIVE", index=True)
    outstanding_principal_paise: Mapped[int] = mapped_column(BigInteger)
    overdue_paise: Mapped[int] = mapped_column(BigInteger, default=0, index=True)
    # The oldest unpaid due date, not the DPD: DPD grows every day by itself (see `dpd`), so storing it
    # would rewrite every overdue loan every night.
    overdue_since: Mapped[date | None] = mapped_column(Date, index=True)
    asset_class: Mapped[str] = mapped_column(String(8), default="STANDARD", index=True)
    bucket: Mapped[str] = mapped_column(String(16), index=True)
    position_date: Mapped[date | None] = mapped_column(Date)
    # Set by the disputes service when a conduct complaint is raised on the loan, never cleared: it puts
    # the loan in legal's scope (webapp/permissions.py) whatever its class, with its disputes' history.
    has_conduct_complaint: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false(), index=True)

    borrower: Mapped[Borrower] = relationship(lazy="joined")
    branch: Mapped[Branch] = relationship(lazy="joined")
    collector: Mapped[User | None] = relationship(foreign_keys=[collector_id], lazy="joined")
    # Loaded when a page needs the schedule (one query); lists of loans never do. Code that walks many
    # loans' schedules asks for selectinload(Loan.instalments).
    instalments: Mapped[list["Instalment"]] = relationship(
        back_populates="loan", order_by="Instalment.seq", lazy="select"
    )

    @property
    def dpd(self) -> int:
        """Live days past due as of the last business date (DESIGN.md §4)."""
        return dpd_on(clock.last_business_date(), self.overdue_since)

    @property
    def annual_rate_percent(self) -> Decimal:
        return (Decimal(self.annual_rate_bps) / 100).quantize(Decimal("0.01"))


class Instalment(Base):
    __tablename__ = "instalments"
    __table_args__ = (
        UniqueConstraint("loan_id", "seq"),
        CheckConstraint("seq >= 1", name="seq_positive"),
        CheckConstraint("principal_due_paise >= 0 AND interest_due_paise >= 0", name="dues_non_negative"),
        CheckConstraint("principal_paid_paise <= principal_due_paise", name="principal_paid_le_due"),
        CheckConstraint("interest_paid_paise <= interest_due_paise", name="interest_paid_le_due"),
        CheckConstraint(f"status IN ({', '.join(repr(s) for s in INSTALMENT_STATUSES)})", name="status_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loans.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    due_date: Mapped[date] = mapped_column(Date, index=True)
    principal_due_paise: Mapped[int] = mapped_column(BigInteger)
    interest_due_paise: Mapped[int] = mapped_column(BigInteger)
    # Sum of total dues of this and every earlier instalment: fixed with the schedule, lets day-end find
    # the oldest unpaid instalment for a total received with one comparison.
    cumulative_due_paise: Mapped[int] = mapped_column(BigInteger)
    # Derived by the ledger's allocation.
    principal_paid_paise: Mapped[int] = mapped_column(BigInteger, default=0)
    interest_paid_paise: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default="DUE", index=True)

    loan: Mapped[Loan] = relationship(back_populates="instalments")

    @property
    def total_due_paise(self) -> int:
        return self.principal_due_paise + self.interest_due_paise

    @property
    def paid_paise(self) -> int:
        return self.principal_paid_paise + self.interest_paid_paise
