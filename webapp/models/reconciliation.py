"""Finance reconciliation: imported bank statements and their lines, matches between bank credits and
payments, unreconcile requests (maker-checker) and the daily close.

* A statement and its lines are facts: never deleted, never edited (a line's `status` is the only thing
  that moves). The same file (SHA-256 of its bytes) is imported once.
* A match links one bank credit line to one or more payments (many-to-one: a cash deposit). Its status
  moves SUGGESTED → CONFIRMED | DISMISSED | SUPERSEDED, MISMATCH → DISMISSED | SUPERSEDED, and
  CONFIRMED → UNRECONCILED only once a second finance user approved an unreconcile request.
* A confirmed match locks its payments (`payments.reconciled_at`): no reversal, no status change.

The triggers of migration 0007_reconciliation enforce all of this in the database too.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp import clock
from webapp.db import Base, UTCDateTime
from webapp.models.org import User
from webapp.models.payments import Payment

FILE_FORMATS = ("CSV", "XLSX")
LINE_MODES = ("NEFT", "RTGS", "IMPS", "UPI", "CASH", "CHEQUE", "OTHER")
DIRECTIONS = ("CREDIT", "DEBIT")
# A credit is UNMATCHED, MATCHED (a confirmed match holds it) or MISMATCH (same UTR, other amount); a debit
# is always DEBIT: imported, shown, never matched to collections.
LINE_STATUSES = ("UNMATCHED", "MATCHED", "MISMATCH", "DEBIT")
UTR_SOURCES = ("REFERENCE", "NARRATION")
MATCH_KINDS = ("UTR", "AMOUNT_DATE", "CASH_DEPOSIT", "MANUAL", "FROM_LINE")
MATCH_STATUSES = ("SUGGESTED", "CONFIRMED", "DISMISSED", "SUPERSEDED", "MISMATCH", "UNRECONCILED")
# A match in one of these statuses holds its line: at most one per line (partial unique index).
HOLDING_STATUSES = ("CONFIRMED", "MISMATCH")
FINAL_MATCH_STATUSES = ("DISMISSED", "SUPERSEDED", "UNRECONCILED")
UNRECONCILE_STATUSES = ("PENDING", "APPROVED", "REJECTED")

IMMUTABLE_LINE_COLUMNS = ("statement_id", "row_number", "txn_date", "value_date", "narration", "bank_reference",
                          "utr", "utr_source", "mode", "direction", "amount_paise", "balance_paise", "fingerprint",
                          "created_at")
IMMUTABLE_MATCH_COLUMNS = ("line_id", "kind", "amount_paise", "created_by_id", "created_at")


def _in(values) -> str:
    return ", ".join(repr(v) for v in values)


class BankStatement(Base):
    """One imported statement file. Never changes after import."""

    __tablename__ = "bank_statements"
    __table_args__ = (
        CheckConstraint(f"file_format IN ({_in(FILE_FORMATS)})", name="file_format_known"),
        CheckConstraint("length(sha256) = 64", name="sha256_hex"),
        CheckConstraint("period_from <= period_to", name="period_ordered"),
        CheckConstraint("line_count = credit_count + debit_count AND line_count > 0", name="counts_add_up"),
        Index("ix_bank_statements_bank_account_number_period_to", "bank", "account_number", "period_to"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)  # human key: BS + 10 characters
    bank: Mapped[str] = mapped_column(String(16))  # the layout key in BANK_LAYOUTS, e.g. HDFC
    account_number: Mapped[str | None] = mapped_column(String(34))  # from the preamble, when the layout has it
    filename: Mapped[str] = mapped_column(String(255))
    file_format: Mapped[str] = mapped_column(String(4))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)  # the same file is imported once
    size_bytes: Mapped[int] = mapped_column(Integer)
    period_from: Mapped[date] = mapped_column(Date, index=True)
    period_to: Mapped[date] = mapped_column(Date, index=True)
    line_count: Mapped[int] = mapped_column(Integer)
    credit_count: Mapped[int] = mapped_column(Integer)
    debit_count: Mapped[int] = mapped_column(Integer)
    credit_total_paise: Mapped[int] = mapped_column(BigInteger)
    debit_total_paise: Mapped[int] = mapped_column(BigInteger)
    opening_balance_paise: Mapped[int | None] = mapped_column(BigInteger)
    closing_balance_paise: Mapped[int | None] = mapped_column(BigInteger)
    skipped_duplicates: Mapped[int] = mapped_column(Integer, default=0)  # lines already imported (overlap)
    warnings: Mapped[str | None] = mapped_column(Text)  # JSON list: balance gaps and other non-fatal findings
    imported_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, index=True)

    imported_by: Mapped[User | None] = relationship(lazy="joined")


class StatementLine(Base):
    """One transaction of a statement: a credit (matched to collections) or a debit (never matched)."""

    __tablename__ = "statement_lines"
    __table_args__ = (
        CheckConstraint("amount_paise > 0", name="amount_positive"),
        CheckConstraint(f"mode IN ({_in(LINE_MODES)})", name="mode_known"),
        CheckConstraint(f"direction IN ({_in(DIRECTIONS)})", name="direction_known"),
        CheckConstraint(f"status IN ({_in(LINE_STATUSES)})", name="status_known"),
        CheckConstraint("(direction = 'DEBIT') = (status = 'DEBIT')", name="debits_never_match"),
        CheckConstraint(f"utr_source IS NULL OR utr_source IN ({_in(UTR_SOURCES)})", name="utr_source_known"),
        CheckConstraint("(utr IS NULL) = (utr_source IS NULL)", name="utr_has_source"),
        Index("uq_statement_lines_statement_id_row_number", "statement_id", "row_number", unique=True),
        Index("ix_statement_lines_status_value_date", "status", "value_date"),
        Index("ix_statement_lines_value_date_mode", "value_date", "mode"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("bank_statements.id"))  # indexed with row_number
    row_number: Mapped[int] = mapped_column(Integer)  # the row in the file, as a spreadsheet numbers it
    txn_date: Mapped[date] = mapped_column(Date)
    value_date: Mapped[date] = mapped_column(Date)  # the transaction date when the bank gives none
    narration: Mapped[str] = mapped_column(Text)
    bank_reference: Mapped[str | None] = mapped_column(String(64))  # the reference column, as written
    utr: Mapped[str | None] = mapped_column(String(32), index=True)  # normalised like payments.utr
    utr_source: Mapped[str | None] = mapped_column(String(10))
    mode: Mapped[str] = mapped_column(String(8))  # from the narration's keywords
    direction: Mapped[str] = mapped_column(String(6))
    amount_paise: Mapped[int] = mapped_column(BigInteger)
    balance_paise: Mapped[int | None] = mapped_column(BigInteger)
    # SHA-256 of (bank, account, dates, narration, reference, amounts, balance, occurrence): an overlapping
    # export of the same account brings the same line again; it is skipped, never counted twice.
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    statement: Mapped[BankStatement] = relationship(lazy="joined", innerjoin=True)


class ReconciliationMatch(Base):
    """A bank credit line and the payment(s) it pays: suggested, confirmed, dismissed, or a mismatch."""

    __tablename__ = "reconciliation_matches"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_in(MATCH_KINDS)})", name="kind_known"),
        CheckConstraint(f"status IN ({_in(MATCH_STATUSES)})", name="status_known"),
        CheckConstraint("amount_paise > 0", name="amount_positive"),
        CheckConstraint("status IN ('SUGGESTED', 'MISMATCH') OR (decided_at IS NOT NULL)", name="decided_when_decided"),
        # One confirmed match or open mismatch per bank line.
        Index("uq_reconciliation_matches_line_id_holding", "line_id", unique=True,
              postgresql_where=text(f"status IN ({_in(HOLDING_STATUSES)})"),
              sqlite_where=text(f"status IN ({_in(HOLDING_STATUSES)})")),
        Index("ix_reconciliation_matches_status_created_at", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("statement_lines.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(12))
    amount_paise: Mapped[int] = mapped_column(BigInteger)  # the payments' total
    note: Mapped[str | None] = mapped_column(Text)  # why it was dismissed, or what the matcher saw
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    line: Mapped[StatementLine] = relationship(lazy="joined", innerjoin=True)
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id], lazy="joined")
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id], lazy="joined")
    items: Mapped[list["ReconciliationMatchPayment"]] = relationship(
        back_populates="match", lazy="selectin", order_by="ReconciliationMatchPayment.id")

    @property
    def payments(self) -> list[Payment]:
        return [item.payment for item in self.items]


class ReconciliationMatchPayment(Base):
    """One payment of a match (several for a cash deposit). Never changed or deleted."""

    __tablename__ = "reconciliation_match_payments"
    __table_args__ = (
        Index("uq_reconciliation_match_payments_match_id_payment_id", "match_id", "payment_id", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    match_id: Mapped[int] = mapped_column(ForeignKey("reconciliation_matches.id"))  # indexed with payment_id
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)

    match: Mapped[ReconciliationMatch] = relationship(back_populates="items")
    payment: Mapped[Payment] = relationship(lazy="joined", innerjoin=True)


class UnreconcileRequest(Base):
    """Maker-checker: one finance user asks, with a reason, to release a confirmed match; another decides."""

    __tablename__ = "unreconcile_requests"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(UNRECONCILE_STATUSES)})", name="status_known"),
        CheckConstraint("checker_id IS NULL OR checker_id <> maker_id", name="maker_is_not_checker"),
        CheckConstraint("(status = 'PENDING') = (checker_id IS NULL AND decided_at IS NULL)", name="decision_complete"),
        Index("uq_unreconcile_requests_match_id_pending", "match_id", unique=True,
              postgresql_where=text("status = 'PENDING'"), sqlite_where=text("status = 'PENDING'")),
        Index("ix_unreconcile_requests_status_created_at", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    match_id: Mapped[int] = mapped_column(ForeignKey("reconciliation_matches.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="PENDING")
    maker_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    checker_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    decision_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    match: Mapped[ReconciliationMatch] = relationship(lazy="joined", innerjoin=True)
    maker: Mapped[User] = relationship(foreign_keys=[maker_id], lazy="joined", innerjoin=True)
    checker: Mapped[User | None] = relationship(foreign_keys=[checker_id], lazy="joined")


class ReconciliationDay(Base):
    """A business date finance closed: who, when, and the figures at that moment. Never changes."""

    __tablename__ = "reconciliation_days"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    business_date: Mapped[date] = mapped_column(Date, unique=True)
    closed_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    summary: Mapped[str] = mapped_column(Text)  # canonical JSON of the day's figures at close
    note: Mapped[str | None] = mapped_column(Text)

    closed_by: Mapped[User] = relationship(lazy="joined", innerjoin=True)
