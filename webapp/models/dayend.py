"""Day-end: the official per-loan history, the record of every job run, and the kill switches."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp import clock
from webapp.db import Base, UTCDateTime
from webapp.models.org import User

RUN_STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "SKIPPED")
FLAGS = ("CRON_ENABLED", "ESCALATION_ENABLED", "SCORING_ENABLED", "REMINDERS_ENABLED")


class DayendPosition(Base):
    """A loan's official position at the day-end of one business date.

    Compact on purpose (about 60 bytes a row) and, on PostgreSQL, partitioned by month of business date, so a
    million loans a day stay manageable and old months can be detached. No foreign key: it is derived data
    written in bulk; `kisht integrity check` looks for orphans.
    """

    __tablename__ = "dayend_positions"
    __table_args__ = ({"postgresql_partition_by": "RANGE (business_date)"},)

    business_date: Mapped[date] = mapped_column(Date, primary_key=True)
    loan_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dpd: Mapped[int] = mapped_column(Integer)
    asset_class: Mapped[str] = mapped_column(String(8))
    bucket: Mapped[str] = mapped_column(String(16))
    overdue_paise: Mapped[int] = mapped_column(BigInteger)
    overdue_since: Mapped[date | None] = mapped_column(Date)  # oldest unpaid due date
    class_since: Mapped[date | None] = mapped_column(Date)  # first day-end of the current class


class CronRun(Base):
    """One attempt at one job for one business date, with its outcome and counts."""

    __tablename__ = "cron_runs"
    __table_args__ = (
        CheckConstraint(f"status IN ({', '.join(repr(s) for s in RUN_STATUSES)})", name="status_known"),
        Index("uq_cron_runs_job_business_date_attempt", "job", "business_date", "attempt", unique=True),
        # The database guard: at most one RUNNING attempt per job and date, with or without Redis.
        Index("uq_cron_runs_one_running", "job", "business_date", unique=True,
              postgresql_where=text("status = 'RUNNING'"), sqlite_where=text("status = 'RUNNING'")),
        Index("ix_cron_runs_started_at", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job: Mapped[str] = mapped_column(String(32))
    business_date: Mapped[date] = mapped_column(Date, index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10), index=True)
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker: Mapped[str] = mapped_column(String(120), default="")
    loans_processed: Mapped[int] = mapped_column(Integer, default=0)
    batches_done: Mapped[int] = mapped_column(Integer, default=0)
    batches_total: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[str | None] = mapped_column(Text)  # JSON: counts per class and bucket, transitions
    error: Mapped[str | None] = mapped_column(Text)

    @property
    def duration_seconds(self) -> float | None:
        end = self.finished_at or self.heartbeat_at
        return (end - self.started_at).total_seconds() if end else None


class FeatureFlag(Base):
    """A kill switch. The environment variable of the same name, when set, overrides the stored value."""

    __tablename__ = "feature_flags"
    __table_args__ = (CheckConstraint(f"name IN ({', '.join(repr(f) for f in FLAGS)})", name="name_known"),)

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")

    updated_by: Mapped[User | None] = relationship(lazy="joined")
