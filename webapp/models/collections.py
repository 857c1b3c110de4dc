"""Collections workflows: priority scores, contact log, promises to pay, escalations."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp import clock
from webapp.db import Base, UTCDateTime
from webapp.models.loans import Loan
from webapp.models.org import User

CHANNELS = ("CALL", "VISIT")
OUTCOMES = ("PAID", "PROMISE_TO_PAY", "NOT_REACHABLE", "REFUSED", "DISPUTE", "WRONG_NUMBER", "OTHER")
PROMISE_STATUSES = ("OPEN", "KEPT", "BROKEN")
ESCALATION_LEVELS = ("MANAGER_REVIEW", "SENIOR_REVIEW", "LEGAL")
ESCALATION_STATUSES = ("OPEN", "CLOSED")


def _in(values) -> str:
    return ", ".join(repr(v) for v in values)


class LoanScore(Base):
    """A loan's collection priority and the factors it is made of (so the screen can say why)."""

    __tablename__ = "loan_scores"
    __table_args__ = (
        # A list sorted by priority joins its loans' scores from this index alone (migration 0012).
        Index("ix_loan_scores_loan_id_score", "loan_id", postgresql_include=["score"]),
    )

    loan_id: Mapped[int] = mapped_column(ForeignKey("loans.id"), primary_key=True)
    business_date: Mapped[date] = mapped_column(Date)
    score: Mapped[int] = mapped_column(Integer, index=True)
    dpd_points: Mapped[int] = mapped_column(Integer)
    overdue_points: Mapped[int] = mapped_column(Integer)
    silence_points: Mapped[int] = mapped_column(Integer)  # days since the last payment
    broken_promise_points: Mapped[int] = mapped_column(Integer)
    roll_points: Mapped[int] = mapped_column(Integer)  # class worse than a month ago
    days_since_payment: Mapped[int] = mapped_column(Integer)
    broken_promises: Mapped[int] = mapped_column(Integer)
    class_month_ago: Mapped[str | None] = mapped_column(String(8))


class Contact(Base):
    """A call or visit to a borrower, with its outcome. Never edited; a correction is a new entry."""

    __tablename__ = "contacts"
    __table_args__ = (
        CheckConstraint(f"channel IN ({_in(CHANNELS)})", name="channel_known"),
        CheckConstraint(f"outcome IN ({_in(OUTCOMES)})", name="outcome_known"),
        Index("ix_contacts_loan_id_contacted_at", "loan_id", "contacted_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loans.id"))  # indexed with contacted_at
    made_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    channel: Mapped[str] = mapped_column(String(8))
    outcome: Mapped[str] = mapped_column(String(16), index=True)
    note: Mapped[str] = mapped_column(Text, default="")
    contacted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    made_by: Mapped[User | None] = relationship(lazy="joined")
    # selectin: a promise joins its loan, and the loan its borrower, branch and collector (see Reversal.approval)
    promise: Mapped["Promise | None"] = relationship(back_populates="contact", lazy="selectin", uselist=False)


class Promise(Base):
    """A promise to pay an amount by a date; day-end marks it KEPT or BROKEN."""

    __tablename__ = "promises"
    __table_args__ = (
        CheckConstraint("amount_paise > 0", name="amount_positive"),
        CheckConstraint(f"status IN ({_in(PROMISE_STATUSES)})", name="status_known"),
        Index("ix_promises_status_promised_for", "status", "promised_for"),
        Index("ix_promises_loan_id_status", "loan_id", "status"),
        Index("ix_promises_branch_id_status_promised_for", "branch_id", "status", "promised_for"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loans.id"))  # indexed with status
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id"))  # the loan's (copied); indexed with status
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), unique=True)
    amount_paise: Mapped[int] = mapped_column(BigInteger)
    made_on: Mapped[date] = mapped_column(Date)  # IST date the promise was made
    promised_for: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(8), default="OPEN")
    settled_on: Mapped[date | None] = mapped_column(Date)  # the day-end that marked it KEPT or BROKEN

    contact: Mapped[Contact] = relationship(back_populates="promise")
    loan: Mapped[Loan] = relationship(lazy="joined")


class Escalation(Base):
    """A loan in a review queue because of its class; closed automatically when the loan is cured."""

    __tablename__ = "escalations"
    __table_args__ = (
        CheckConstraint(f"level IN ({_in(ESCALATION_LEVELS)})", name="level_known"),
        CheckConstraint(f"status IN ({_in(ESCALATION_STATUSES)})", name="status_known"),
        # One open escalation per loan and level: the job can run any number of times.
        Index("uq_escalations_open_loan_level", "loan_id", "level", unique=True,
              postgresql_where=text("status = 'OPEN'"), sqlite_where=text("status = 'OPEN'")),
        Index("ix_escalations_level_status_branch_id", "level", "status", "branch_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loans.id"), index=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id"), index=True)
    level: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(8), default="OPEN")
    reason: Mapped[str] = mapped_column(Text, default="")
    opened_on: Mapped[date] = mapped_column(Date, index=True)
    closed_on: Mapped[date | None] = mapped_column(Date)
    closed_reason: Mapped[str | None] = mapped_column(Text)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    next_action_on: Mapped[date | None] = mapped_column(Date, index=True)
    notice_sent_on: Mapped[date | None] = mapped_column(Date)
    notice_served_on: Mapped[date | None] = mapped_column(Date)

    loan: Mapped[Loan] = relationship(lazy="joined")
    assignee: Mapped[User | None] = relationship(lazy="joined")
    notes: Mapped[list["EscalationNote"]] = relationship(back_populates="escalation", lazy="selectin",
                                                         order_by="EscalationNote.id")


class EscalationNote(Base):
    __tablename__ = "escalation_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    escalation_id: Mapped[int] = mapped_column(ForeignKey("escalations.id"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    escalation: Mapped[Escalation] = relationship(back_populates="notes")
    author: Mapped[User | None] = relationship(lazy="joined")
