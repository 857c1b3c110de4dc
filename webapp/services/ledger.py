"""The loan position as of any date: a pure function of the schedule and the payments (DESIGN.md §3, §4).

Allocation: money is applied in value-date order (ties by creation order) to the oldest due instalment
first, inside it in the configured component order; money beyond what is due is held as advance and
applied to instalments as they fall due. When the advance covers every remaining instalment the loan is
paid off and closes.

DPD(D) = D − oldest unpaid due date + 1 at the day-end of D (0 when nothing is due and unpaid).
Classes follow DPD, except that NPA is sticky: it ends only when every arrear is paid.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Hashable, Iterable, Sequence

from webapp.services.schedule import ScheduledInstalment

COMPONENTS = ("charges", "interest", "principal")
DEFAULT_ORDER = ("charges", "interest", "principal")
# (class, lowest DPD) in rising order; NPA is "more than 90 days".
CLASS_THRESHOLDS = (("STANDARD", 0), ("SMA-0", 1), ("SMA-1", 31), ("SMA-2", 61), ("NPA", 91))
CLASS_NAMES = tuple(name for name, _ in CLASS_THRESHOLDS)
DEFAULT_BUCKETS = "0,1-30,31-60,61-90,91-180,181+"


@dataclass(frozen=True)
class Receipt:
    """Money applied to a loan: a posted payment net of approved reversals."""

    key: Hashable
    value_date: date
    amount_paise: int


@dataclass(frozen=True)
class Allocation:
    key: Hashable
    seq: int
    component: str
    amount_paise: int


@dataclass(slots=True)
class InstalmentPosition:
    seq: int
    due_date: date
    principal_due: int
    interest_due: int
    principal_paid: int = 0
    interest_paid: int = 0
    status: str = "DUE"

    @property
    def total_due(self) -> int:
        return self.principal_due + self.interest_due

    @property
    def unpaid(self) -> int:
        return self.total_due - self.principal_paid - self.interest_paid


@dataclass
class Position:
    as_of: date
    instalments: list[InstalmentPosition]
    allocations: list[Allocation] = field(default_factory=list)
    advance_paise: int = 0
    outstanding_principal_paise: int = 0
    overdue_paise: int = 0
    dpd: int = 0
    asset_class: str = "STANDARD"
    class_since: date | None = None
    overdue_since: date | None = None
    bucket: str = "0"
    closed: bool = False


def dpd_on(day: date, overdue_since: date | None) -> int:
    """DPD(day) = day − oldest unpaid due date + 1; 0 when nothing is unpaid."""
    return (day - overdue_since).days + 1 if overdue_since else 0


def class_for_dpd(dpd: int) -> str:
    name = "STANDARD"
    for candidate, lowest in CLASS_THRESHOLDS:
        if dpd >= lowest:
            name = candidate
    return name


def parse_buckets(spec: str) -> list[tuple[str, int, int | None]]:
    """'0,1-30,31-60,181+' → [(label, low, high or None)], checked to cover 0.. without gaps."""
    buckets, expected_low = [], 0
    parts = [p.strip() for p in spec.split(",")]
    if any(p.endswith("+") for p in parts[:-1]):
        raise ValueError("only the last bucket may be open-ended")
    for part in parts:
        if part.endswith("+"):
            low, high = int(part[:-1]), None
        elif "-" in part:
            low, high = (int(x) for x in part.split("-", 1))
        else:
            low = high = int(part)
        if low != expected_low or (high is not None and high < low):
            raise ValueError(f"bucket {part!r} leaves a gap or overlaps: buckets must cover 0 upwards in order")
        buckets.append((part, low, high))
        expected_low = (high or 0) + 1
    if buckets[-1][2] is not None:
        raise ValueError("the last bucket must be open-ended, like '181+'")
    return buckets


def bucket_for_dpd(dpd: int, spec: str = DEFAULT_BUCKETS) -> str:
    for label, low, high in parse_buckets(spec):
        if dpd >= low and (high is None or dpd <= high):
            return label
    raise ValueError(f"no bucket for DPD {dpd}")


def compute_position(
    schedule: Sequence[ScheduledInstalment],
    receipts: Iterable[Receipt],
    as_of: date,
    *,
    receipts_until: date | None = None,
    order: Sequence[str] = DEFAULT_ORDER,
    buckets: str = DEFAULT_BUCKETS,
) -> Position:
    """Position at the day-end of `as_of`.

    Receipts with value date up to `receipts_until` (default `as_of`) count; the live position uses
    as_of = last business date and receipts_until = today, so money received today shows at once.
    `receipts` must be in creation order; they are applied stably by value date.
    """
    receipts_until = receipts_until or as_of
    rows = [InstalmentPosition(s.seq, s.due_date, s.principal_paise, s.interest_paise) for s in schedule]
    counted = sorted((r for r in receipts if r.value_date <= receipts_until), key=lambda r: r.value_date)
    position = Position(as_of=as_of, instalments=rows)

    # Event dates: each receipt (money after as_of counts on as_of) and each due date up to as_of.
    events = sorted({min(r.value_date, as_of) for r in counted} | {i.due_date for i in rows if i.due_date <= as_of})
    state = _Timeline()
    receipt_iter = iter(counted)
    pending = next(receipt_iter, None)
    held: list[list] = []  # advance as FIFO of [receipt key, paise], so allocations name their payment
    unpaid = sum(row.total_due for row in rows)  # of the whole loan, kept as money is applied
    # The instalment fields each component is paid into. No charges are levied yet; their slot in the order
    # keeps the configured order honest.
    parts = [(component, f"{component}_due", f"{component}_paid") for component in order if component != "charges"]
    for index, day in enumerate(events):
        while pending is not None and min(pending.value_date, as_of) <= day:
            held.append([pending.key, pending.amount_paise])
            pending = next(receipt_iter, None)
        unpaid -= _apply_held(position, held, day, parts, unpaid)
        segment_end = events[index + 1] - timedelta(days=1) if index + 1 < len(events) else as_of
        state.advance(_oldest_unpaid(rows, day), day, segment_end)

    position.advance_paise = sum(amount for _, amount in held)
    for row in rows:
        row.status = _instalment_status(row, as_of)
    position.overdue_paise = sum(r.unpaid for r in rows if r.due_date <= as_of)
    position.outstanding_principal_paise = sum(r.principal_due - r.principal_paid for r in rows)
    position.overdue_since = _oldest_unpaid(rows, as_of)
    position.dpd = dpd_on(as_of, position.overdue_since)
    position.closed = all(r.unpaid == 0 for r in rows)
    position.asset_class = state.asset_class
    position.class_since = state.since
    position.bucket = bucket_for_dpd(position.dpd, buckets)
    return position


def _apply_held(position: Position, held: list[list], day: date, parts: Sequence[tuple[str, str, str]],
                unpaid: int) -> int:
    """Apply held money to instalments due by `day`, oldest first and in the order of `parts` (component, due
    field, paid field) inside each, or to every instalment when it pays off the loan's `unpaid`; returns the
    paise applied."""
    rows = position.instalments
    available = sum(amount for _, amount in held)
    if available == 0:
        return 0
    payable = rows if available >= unpaid else [r for r in rows if r.due_date <= day]
    applied = 0
    for row in payable:
        if row.unpaid == 0:
            continue
        for component, due_attr, paid_attr in parts:
            while held and getattr(row, due_attr) > getattr(row, paid_attr):
                take = min(getattr(row, due_attr) - getattr(row, paid_attr), held[0][1])
                setattr(row, paid_attr, getattr(row, paid_attr) + take)
                position.allocations.append(Allocation(held[0][0], row.seq, component, take))
                applied += take
                held[0][1] -= take
                if held[0][1] == 0:
                    held.pop(0)
            if not held:
                return applied
    return applied


def _oldest_unpaid(rows: Sequence[InstalmentPosition], day: date) -> date | None:
    for row in rows:
        if row.due_date <= day and row.unpaid > 0:
            return row.due_date
    return None


def _instalment_status(row: InstalmentPosition, as_of: date) -> str:
    if row.unpaid == 0:
        return "PAID"
    if row.due_date > as_of:
        return "DUE"
    return "PARTIALLY_PAID" if row.principal_paid + row.interest_paid > 0 else "OVERDUE"


class _Timeline:
    """Asset class through the day-ends of a segment in which the oldest unpaid due date is fixed."""

    def __init__(self) -> None:
        self.asset_class = "STANDARD"
        self.since: date | None = None

    def _set(self, name: str, day: date) -> None:
        if name != self.asset_class:
            self.asset_class, self.since = name, day

    def advance(self, oldest_unpaid: date | None, start: date, end: date) -> None:
        if oldest_unpaid is None:
            self._set("STANDARD", start)  # every arrear paid: NPA, too, is cured
            return
        if self.asset_class == "NPA":
            return  # sticky until all arrears are paid
        self._set(class_for_dpd(dpd_on(start, oldest_unpaid)), start)
        for name, lowest in CLASS_THRESHOLDS[1:]:
            crossing = oldest_unpaid + timedelta(days=lowest - 1)
            if start < crossing <= end:
                self._set(name, crossing)
