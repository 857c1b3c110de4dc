"""Shadow month and go-live: the Excel tracker's rows per business date, the comparisons with the system,
the issue log, the record of simulations and integrity checks, and the go/no-go answers and sign-offs.

Tracker imports and their rows, comparisons, check runs and go-live answers are append-only (migration
0010_shadow adds the guard triggers): re-importing a date adds a new version, a new answer supersedes the
previous one, and nothing is ever rewritten. Issues are the one table whose rows change (status, assignee,
resolution), every change audited.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp import clock
from webapp.db import Base, UTCDateTime
from webapp.models.org import User

ISSUE_STATUSES = ("OPEN", "IN_PROGRESS", "RESOLVED", "WONT_FIX")
ISSUE_KINDS = ("OUTSTANDING", "DPD", "BUCKET", "COLLECTION", "ONLY_SYSTEM", "ONLY_TRACKER", "SUMMARY")
CHECK_KINDS = ("SIMULATION", "INTEGRITY")
ANSWER_KINDS = ("ITEM", "SIGNOFF")


def _in(values) -> str:
    return ", ".join(repr(v) for v in values)


class ShadowImport(Base):
    """One version of the tracker for one business date. The highest version of a date is the current one."""

    __tablename__ = "shadow_imports"
    __table_args__ = (UniqueConstraint("business_date", "version"),
                      CheckConstraint("version >= 1", name="version_positive"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    business_date: Mapped[date] = mapped_column(Date, index=True)
    version: Mapped[int] = mapped_column(Integer)
    layout: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str] = mapped_column(String(255))
    sheet: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    row_count: Mapped[int] = mapped_column(Integer)
    outstanding_paise: Mapped[int] = mapped_column(BigInteger)
    collections_paise: Mapped[int] = mapped_column(BigInteger)
    imported_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    imported_by_label: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    imported_by: Mapped[User | None] = relationship(lazy="joined")


class ShadowRow(Base):
    """One loan's line in one tracker version, as the tracker says it (money in paise)."""

    __tablename__ = "shadow_rows"
    __table_args__ = (UniqueConstraint("import_id", "loan_number"),
                      CheckConstraint("outstanding_paise >= 0", name="outstanding_non_negative"),
                      CheckConstraint("collection_paise >= 0", name="collection_non_negative"),
                      CheckConstraint("dpd >= 0", name="dpd_non_negative"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("shadow_imports.id"))  # indexed by the unique pair
    row_number: Mapped[int] = mapped_column(Integer)  # the spreadsheet row
    loan_number: Mapped[str] = mapped_column(String(32))
    outstanding_paise: Mapped[int] = mapped_column(BigInteger)
    dpd: Mapped[int] = mapped_column(Integer)
    bucket: Mapped[str] = mapped_column(String(16))  # the tracker's own label
    collection_paise: Mapped[int] = mapped_column(BigInteger)


class ShadowComparison(Base):
    """The variance of one tracker version against the system, as computed at `compared_at`.

    Each comparison is kept; the dashboard reads the latest for each date. `figures` is JSON (bucket counts,
    DPD differences, counts of loans on one side only); the pass/fail of each criterion is a column so the
    go/no-go board can count consecutive converged days with one query.
    """

    __tablename__ = "shadow_comparisons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("shadow_imports.id"), index=True)
    business_date: Mapped[date] = mapped_column(Date, index=True)
    compared_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    dayend_ran: Mapped[bool] = mapped_column(Boolean)
    system_outstanding_paise: Mapped[int] = mapped_column(BigInteger)
    tracker_outstanding_paise: Mapped[int] = mapped_column(BigInteger)
    system_collections_paise: Mapped[int] = mapped_column(BigInteger)
    tracker_collections_paise: Mapped[int] = mapped_column(BigInteger)
    outstanding_ok: Mapped[bool] = mapped_column(Boolean)
    collections_ok: Mapped[bool] = mapped_column(Boolean)
    buckets_ok: Mapped[bool] = mapped_column(Boolean)
    dpd_ok: Mapped[bool] = mapped_column(Boolean)
    converged: Mapped[bool] = mapped_column(Boolean)
    figures: Mapped[str] = mapped_column(Text)


class ShadowIssue(Base):
    """An item of the shadow month's issue log, raised from a variance row (or the day's summary)."""

    __tablename__ = "shadow_issues"
    __table_args__ = (CheckConstraint(f"status IN ({_in(ISSUE_STATUSES)})", name="status_known"),
                      CheckConstraint(f"kind IN ({_in(ISSUE_KINDS)})", name="kind_known"),
                      Index("ix_shadow_issues_status_business_date", "status", "business_date"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    business_date: Mapped[date] = mapped_column(Date, index=True)
    loan_number: Mapped[str | None] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(12), default="OPEN")
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    raised_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    resolution: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id], lazy="joined")
    raised_by: Mapped[User | None] = relationship(foreign_keys=[raised_by_id], lazy="joined")


class CheckRun(Base):
    """One failure simulation or integrity check and its outcome (`detail` is JSON)."""

    __tablename__ = "check_runs"
    __table_args__ = (CheckConstraint(f"kind IN ({_in(CHECK_KINDS)})", name="kind_known"),
                      Index("ix_check_runs_kind_name_finished_at", "kind", "name", "finished_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(String(40))
    passed: Mapped[bool] = mapped_column(Boolean)
    summary: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    run_by: Mapped[str] = mapped_column(String(64))


class GoliveAnswer(Base):
    """A person's answer to a go/no-go row, or a sign-off. The latest per key holds; earlier ones stay."""

    __tablename__ = "golive_answers"
    __table_args__ = (CheckConstraint(f"kind IN ({_in(ANSWER_KINDS)})", name="kind_known"),
                      Index("ix_golive_answers_key_id", "key", "id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    key: Mapped[str] = mapped_column(String(40))
    holds: Mapped[bool] = mapped_column(Boolean)  # yes / signed; False withdraws it
    signatory_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)  # the named person
    signed_on: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text, default="")
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    signatory: Mapped[User | None] = relationship(foreign_keys=[signatory_id], lazy="joined")
    recorded_by: Mapped[User | None] = relationship(foreign_keys=[recorded_by_id], lazy="joined")
