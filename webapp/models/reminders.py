"""Payment reminders: the outbox.

One row per reminder the job decided to send: which loan and instalment, under which rule, for which
business date. The unique key (loan, instalment, rule, business date) is the dedupe: the selection is an
INSERT … SELECT … ON CONFLICT DO NOTHING, so a re-run for the same date adds nothing and sends nothing twice.
Delivery moves a row PENDING → SENT, or DEFERRED (outside 08:00–19:00 IST) → SENT, or, after the last
attempt or on a permanent refusal, FAILED. CANCELLED: the instalment was paid before the message went out.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from webapp import clock
from webapp.db import Base, UTCDateTime

REMINDER_STATUSES = ("PENDING", "SENT", "DEFERRED", "FAILED", "CANCELLED")
# Rows the delivery pass picks up once their next_attempt_at has come.
OPEN_STATUSES = ("PENDING", "DEFERRED")
TRANSPORTS = ("log", "smtp", "webhook")
CHANNELS = ("LOG", "EMAIL", "SMS", "WHATSAPP")


def _in(values) -> str:
    return ", ".join(repr(v) for v in values)


class Reminder(Base):
    __tablename__ = "reminders"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(REMINDER_STATUSES)})", name="status_known"),
        CheckConstraint(f"transport IN ({_in(TRANSPORTS)})", name="transport_known"),
        CheckConstraint(f"channel IN ({_in(CHANNELS)})", name="channel_known"),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        CheckConstraint("amount_paise >= 0", name="amount_non_negative"),
        # The dedupe key: a reminder for this instalment under this rule on this date exists at most once.
        Index("uq_reminders_loan_id_instalment_id_rule_business_date", "loan_id", "instalment_id", "rule",
              "business_date", unique=True),
        # The delivery pass: open rows whose time has come, oldest first.
        Index("ix_reminders_status_next_attempt_at", "status", "next_attempt_at"),
        # The admin screen: newest first, optionally by status; and one reminder per loan per date.
        Index("ix_reminders_status_created_at", "status", "created_at"),
        Index("ix_reminders_created_at", "created_at"),
        Index("ix_reminders_business_date_loan_id", "business_date", "loan_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loans.id"))  # first column of the dedupe key
    instalment_id: Mapped[int] = mapped_column(ForeignKey("instalments.id"), index=True)
    rule: Mapped[str] = mapped_column(String(16))  # BEFORE_3, DUE, OVERDUE_7, ...
    business_date: Mapped[date] = mapped_column(Date)  # the IST date the rule was applied for
    amount_paise: Mapped[int] = mapped_column(BigInteger)  # amount due named in the message
    transport: Mapped[str] = mapped_column(String(8))
    channel: Mapped[str] = mapped_column(String(8))
    language: Mapped[str] = mapped_column(String(2))
    recipient: Mapped[str | None] = mapped_column(String(254))  # e-mail address or mobile number; None: unknown
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def final_failure(self) -> bool:
        return self.status == "FAILED"
