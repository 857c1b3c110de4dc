"""Disputes raised on a loan or one of its payments, and the evidence files attached to them.

Lifecycle OPEN → UNDER_REVIEW → RESOLVED_UPHELD | RESOLVED_REJECTED. A resolved dispute never changes
again and no dispute or evidence row is ever deleted: the service refuses it and triggers (migration
0004_disputes) refuse it in the database too. New information after resolution is a new dispute that
`supersedes` the old one.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp import clock
from webapp.db import Base, UTCDateTime
from webapp.models.loans import Loan
from webapp.models.org import User
from webapp.models.payments import Approval, Payment

DISPUTE_CATEGORIES = {
    "PAYMENT_NOT_CREDITED": "Payment not credited",
    "WRONG_AMOUNT": "Wrong amount",
    "WRONG_LOAN": "Wrong loan",
    "CHARGES": "Charges",
    "CONDUCT_COMPLAINT": "Conduct complaint",
    "OTHER": "Other",
}
OPEN_STATUSES = ("OPEN", "UNDER_REVIEW")
RESOLVED_STATUSES = ("RESOLVED_UPHELD", "RESOLVED_REJECTED")
DISPUTE_STATUSES = OPEN_STATUSES + RESOLVED_STATUSES
# The content types evidence may have, each recognised from the file's first bytes (never its name).
EVIDENCE_TYPES = ("application/pdf", "image/jpeg", "image/png")

# Fixed when the dispute is raised; the triggers refuse a change even while the dispute is open.
IMMUTABLE_DISPUTE_COLUMNS = ("reference", "loan_id", "payment_id", "branch_id", "category", "description",
                             "raised_by_id", "created_at", "supersedes_id")


def _in(values) -> str:
    return ", ".join(repr(v) for v in values)


class Dispute(Base):
    __tablename__ = "disputes"
    __table_args__ = (
        CheckConstraint(f"category IN ({_in(DISPUTE_CATEGORIES)})", name="category_known"),
        CheckConstraint(f"status IN ({_in(DISPUTE_STATUSES)})", name="status_known"),
        # Whoever raised a dispute never reviews or resolves it.
        CheckConstraint("reviewer_id IS NULL OR reviewer_id <> raised_by_id", name="reviewer_is_not_raiser"),
        CheckConstraint("resolved_by_id IS NULL OR resolved_by_id <> raised_by_id", name="resolver_is_not_raiser"),
        CheckConstraint("status = 'OPEN' OR (reviewer_id IS NOT NULL AND review_started_at IS NOT NULL)",
                        name="reviewed_before_resolved"),
        CheckConstraint(f"(status IN ({_in(RESOLVED_STATUSES)})) = (resolved_by_id IS NOT NULL "
                        "AND resolved_at IS NOT NULL AND resolution_note IS NOT NULL)", name="resolution_complete"),
        CheckConstraint("reversal_approval_id IS NULL OR (status = 'RESOLVED_UPHELD' AND payment_id IS NOT NULL)",
                        name="reversal_only_when_upheld"),
        Index("ix_disputes_status_branch_id_created_at", "status", "branch_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)  # human key: KD + 10 characters
    loan_id: Mapped[int] = mapped_column(ForeignKey("loans.id"), index=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), index=True)  # None: the loan itself
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id"), index=True)  # the loan's (copied)
    category: Mapped[str] = mapped_column(String(24), index=True)
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="OPEN", index=True)
    raised_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, index=True)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    review_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution_note: Mapped[str | None] = mapped_column(Text)
    # The reversal request an upheld payment dispute created (an item of the approvals inbox).
    reversal_approval_id: Mapped[int | None] = mapped_column(ForeignKey("approvals.id"), index=True, unique=True)
    # The resolved dispute this one reopens with new information.
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("disputes.id"), index=True)

    loan: Mapped[Loan] = relationship(lazy="joined", innerjoin=True)
    payment: Mapped[Payment | None] = relationship(lazy="selectin")  # see Reversal.approval
    raised_by: Mapped[User] = relationship(foreign_keys=[raised_by_id], lazy="joined")
    # Shown on the dispute's own page only: loaded when asked for, so lists stay light.
    reviewer: Mapped[User | None] = relationship(foreign_keys=[reviewer_id], lazy="select")
    resolved_by: Mapped[User | None] = relationship(foreign_keys=[resolved_by_id], lazy="select")
    reversal_approval: Mapped[Approval | None] = relationship(lazy="select")
    supersedes: Mapped["Dispute | None"] = relationship(remote_side=[id], lazy="select")
    evidence: Mapped[list["DisputeEvidence"]] = relationship(back_populates="dispute", lazy="selectin",
                                                             order_by="DisputeEvidence.id")

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def category_label(self) -> str:
        return DISPUTE_CATEGORIES.get(self.category, self.category)


class DisputeEvidence(Base):
    """One evidence file: stored outside static/ under a random name, with its SHA-256 recorded."""

    __tablename__ = "dispute_evidence"
    __table_args__ = (
        CheckConstraint(f"content_type IN ({_in(EVIDENCE_TYPES)})", name="content_type_known"),
        CheckConstraint("size_bytes > 0", name="size_positive"),
        CheckConstraint("length(sha256) = 64", name="sha256_hex"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dispute_id: Mapped[int] = mapped_column(ForeignKey("disputes.id"), index=True)
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)  # random hex; the file's name on disk
    original_name: Mapped[str] = mapped_column(String(255))  # as uploaded, for display only
    content_type: Mapped[str] = mapped_column(String(32))  # detected from the content
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    dispute: Mapped[Dispute] = relationship(back_populates="evidence")
    uploaded_by: Mapped[User] = relationship(lazy="joined")
