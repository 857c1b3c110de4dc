"""Shadow month (checklist 21–22): the Excel tracker beside the system, compared per business date.

* **Import.** A tracker workbook for business date D is read by its layout (webapp/tracker_layouts.py):
  all or nothing, every problem named by row and column. Re-importing D adds version n+1; earlier versions
  stay (append-only tables) and the audit log says which version replaced which.
* **The system side** for D: DPD and bucket are the official day-end result (dayend_positions for D);
  outstanding principal is the ledger's (the per-loan allocation function, `ledger.compute_position`, over
  posted payments net of approved reversals with value date ≤ D — the same money day-end counts);
  collections are those payments with value date D. Loans in the portfolio on D are those disbursed on or
  before D that are not paid off by D, plus any loan that collected money on D.
* **Variance.** Outstanding and collections: |Σ system − Σ tracker| / Σ tracker, met below 0.1 %; bucket
  counts in the tracker's own labels (the layout maps each system bucket to one), met when every count is
  equal; DPD difference per loan on both sides, met when the largest is below one day (so every DPD agrees).
  A comparison is stored each time it runs (after each import, or "compare again"); the dashboard reads
  the latest of each date.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Mapping

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from webapp import clock, money
from webapp.errors import NotFound, ValidationError
from webapp.models import (Approval, CronRun, DayendPosition, Loan, Payment, Reversal, ShadowComparison, ShadowImport,
                           ShadowIssue, ShadowRow, User)
from webapp.models.shadow import ISSUE_KINDS, ISSUE_STATUSES
from webapp.permissions import Perm, require
from webapp.services import audit, ledger
from webapp.services.pagination import Page
from webapp.services.replay import schedule_of

MAX_ROWS = 100_000
MAX_REPORTED_ERRORS = 50
XLSX_MAGIC = b"PK\x03\x04"
THRESHOLD = Decimal("0.001")  # 0.1 %
FILTERS = ("all", "differs", "outstanding", "dpd", "bucket", "collection", "only_system", "only_tracker")


# ---------------------------------------------------------------- reading a tracker (pure)

@dataclass(frozen=True)
class TrackerLine:
    row_number: int
    loan_number: str
    outstanding_paise: int
    dpd: int
    bucket: str
    collection_paise: int


@dataclass
class ParsedTracker:
    sheet: str
    lines: list[TrackerLine] = field(default_factory=list)


def layout_of(key: str) -> dict:
    layouts = current_app.config["TRACKER_LAYOUTS"]
    if key not in layouts:
        raise ValidationError("Choose the tracker layout.",
                              fields={"layout": f"must be one of {', '.join(layouts)}"})
    return layouts[key]


def layout_choices() -> list[tuple[str, str]]:
    return [(key, layout["label"]) for key, layout in current_app.config["TRACKER_LAYOUTS"].items()]


def _norm(text) -> str:
    return " ".join(str(text or "").split()).casefold()


def _pick_sheet(workbook, layout: dict, business_date: date):
    wanted = {business_date.strftime(p).casefold() for p in layout.get("sheet_titles") or []}
    for sheet in workbook.worksheets:
        if sheet.title.strip().casefold() in wanted:
            return sheet
    if len(workbook.worksheets) == 1:
        return workbook.worksheets[0]
    names = ", ".join(s.title for s in workbook.worksheets)
    expected = ", ".join(sorted({business_date.strftime(p) for p in layout.get("sheet_titles") or []}))
    raise ValidationError(f"The workbook has no sheet for {business_date:%d %b %Y}.",
                          fields={"file": f"expected a sheet named like {expected}; the sheets are {names}"})


def _rupees_cell(value) -> int:
    """A money cell (number or text) → paise; at most 2 decimals, zero allowed, never negative."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return 0
    if isinstance(value, bool):
        raise money.MoneyError("is not an amount")
    if isinstance(value, float):
        value = repr(value)  # the shortest text that reads back as this float: 84640.9, not 84640.899999…
    return money.to_paise(money.parse_rupees(value, allow_zero=True))


def _dpd_cell(value) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("is required")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError("is not a whole number of days") from None
    if number != number.to_integral_value() or number < 0 or number > 100_000:
        raise ValueError("must be a whole number of days, 0 or more")
    return int(number)


def parse_tracker(data: bytes, layout: dict, business_date: date) -> ParsedTracker:
    """Every row of the day's sheet, or a ValidationError listing each problem as 'row N, <column>'."""
    import openpyxl

    if not data:
        raise ValidationError("The file is empty.", fields={"file": "is empty"})
    if not data.startswith(XLSX_MAGIC):
        raise ValidationError("The tracker must be an Excel .xlsx workbook.",
                              fields={"file": "is not an .xlsx workbook (save it as Excel Workbook, .xlsx)"})
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as problem:
        raise ValidationError("The workbook cannot be read.", fields={"file": f"is not a readable .xlsx ({problem})"}) from None
    try:
        sheet = _pick_sheet(workbook, layout, business_date)
        rows = sheet.iter_rows(values_only=True)
        columns = layout["columns"]
        wanted = {role: _norm(header) for role, header in columns.items()}
        positions: dict[str, int] = {}
        header_row = 0
        for number, row in enumerate(rows, start=1):
            if number > layout.get("header_search_rows", 10):
                break
            cells = [_norm(c) for c in row]
            if wanted["loan_number"] in cells:
                header_row = number
                for role, header in wanted.items():
                    if header in cells:
                        positions[role] = cells.index(header)
                break
        if not header_row:
            raise ValidationError("The header row was not found.", fields={
                "file": f"no row in the first {layout.get('header_search_rows', 10)} of sheet {sheet.title!r} "
                        f"has the column {columns['loan_number']!r}"})
        missing = [columns[r] for r in ("loan_number", "outstanding", "dpd", "bucket", "collection")
                   if r not in positions]
        if missing:
            raise ValidationError("Columns are missing from the tracker.", fields={
                "file": f"row {header_row} of sheet {sheet.title!r} has no column {', '.join(repr(m) for m in missing)}"})
        buckets = layout["buckets"]
        by_label = {_norm(label): label for label in buckets}
        by_label.update({_norm(alias): target for alias, target in (layout.get("bucket_aliases") or {}).items()})
        parsed = ParsedTracker(sheet.title)
        errors: dict[str, str] = {}
        seen: dict[str, int] = {}

        def cell(row, role):
            index = positions[role]
            return row[index] if index < len(row) else None

        for number, row in enumerate(rows, start=header_row + 1):
            if all(v is None or (isinstance(v, str) and not v.strip()) for v in row):
                continue
            if len(parsed.lines) >= MAX_ROWS:
                raise ValidationError("The tracker is too long.", fields={"file": f"more than {MAX_ROWS} rows"})
            problems = {}
            loan_number = str(cell(row, "loan_number") or "").strip().upper()
            if not loan_number:
                problems[columns["loan_number"]] = "is required"
            elif len(loan_number) > 32:
                problems[columns["loan_number"]] = "is longer than 32 characters"
            elif loan_number in seen:
                problems[columns["loan_number"]] = f"{loan_number} is already on row {seen[loan_number]}"
            amounts = {}
            for role in ("outstanding", "collection"):
                try:
                    amounts[role] = _rupees_cell(cell(row, role))
                except money.MoneyError as problem:
                    problems[columns[role]] = f"{cell(row, role)!r} {problem}"
            dpd = None
            try:
                dpd = _dpd_cell(cell(row, "dpd"))
            except ValueError as problem:
                problems[columns["dpd"]] = str(problem)
            raw_bucket = _norm(cell(row, "bucket"))
            bucket = by_label.get(raw_bucket)
            if bucket is None:
                problems[columns["bucket"]] = (f"{cell(row, 'bucket')!r} is not a bucket of this layout "
                                               f"({', '.join(buckets)})" if raw_bucket else "is required")
            for column, problem in problems.items():
                if len(errors) < MAX_REPORTED_ERRORS:
                    errors[f"row {number}, {column}"] = problem
            if not problems:
                seen[loan_number] = number
                parsed.lines.append(TrackerLine(number, loan_number, amounts["outstanding"], dpd, bucket,
                                                amounts["collection"]))
        if errors:
            raise ValidationError(f"The tracker has {len(errors)}{'+' if len(errors) >= MAX_REPORTED_ERRORS else ''} "
                                  f"problem(s); nothing was imported.", fields=errors)
        if not parsed.lines:
            raise ValidationError("The tracker has no loans.", fields={"file": f"sheet {sheet.title!r} has no rows under the header"})
        return parsed
    finally:
        workbook.close()


def template_xlsx(layout_key: str) -> bytes:
    """An empty tracker in the layout, with one example row, for finance to fill in."""
    import openpyxl
    from openpyxl.styles import Font

    layout = layout_of(layout_key)
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    patterns = layout.get("sheet_titles") or ["%Y-%m-%d"]
    sheet.title = clock.last_business_date().strftime(patterns[0])[:31]
    order = ("loan_number", "customer", "branch", "collector", "emi", "outstanding", "dpd", "bucket", "collection")
    header = [layout["columns"][r] for r in order if r in layout["columns"]]
    sheet.append(header)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    example = {"loan_number": "KL0001", "customer": "Ravi Kumar", "branch": "Pune Camp", "collector": "asha",
               "emi": 8884.88, "outstanding": 84640.90, "dpd": 0, "bucket": next(iter(layout["buckets"])),
               "collection": 0}
    sheet.append([example[r] for r in order if r in layout["columns"]])
    notes = workbook.create_sheet("How to fill")
    notes.append(["One sheet per business date, named like: " + ", ".join(patterns)])
    notes.append(["Amounts in rupees with at most 2 decimals; DPD in whole days; buckets: " + ", ".join(layout["buckets"])])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# ---------------------------------------------------------------- import

def parse_business_date(raw) -> date:
    text = str(raw or "").strip()
    if not text:
        raise ValidationError("Give the business date of the tracker.", fields={"date": "is required (YYYY-MM-DD)"})
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValidationError("The business date is not valid.", fields={"date": f"{text!r} is not a date (YYYY-MM-DD)"}) from None
    if day >= clock.today_ist():
        raise ValidationError("The tracker can be compared only for a date whose day has ended (IST).",
                              fields={"date": f"must be before {clock.today_ist().isoformat()}"})
    return day


@dataclass(frozen=True)
class Imported:
    shadow_import: ShadowImport
    comparison: ShadowComparison
    replaced_version: int | None


def import_tracker(session: Session, actor, *, data: bytes, filename: str, business_date, layout: str) -> Imported:
    """Store a tracker version for the date and compare it with the system at once (all or nothing)."""
    require(actor, Perm.SHADOW_IMPORT)
    day = business_date if isinstance(business_date, date) else parse_business_date(business_date)
    layout_key = (layout or "").strip().upper() or next(iter(current_app.config["TRACKER_LAYOUTS"]))
    parsed = parse_tracker(data, layout_of(layout_key), day)
    previous = session.scalar(select(func.max(ShadowImport.version)).where(ShadowImport.business_date == day))
    digest = hashlib.sha256(data).hexdigest()
    who = audit.Actor.of(actor)
    record = ShadowImport(
        business_date=day, version=(previous or 0) + 1, layout=layout_key, filename=(filename or "tracker.xlsx")[:255],
        sheet=parsed.sheet[:64], sha256=digest, row_count=len(parsed.lines),
        outstanding_paise=sum(l.outstanding_paise for l in parsed.lines),
        collections_paise=sum(l.collection_paise for l in parsed.lines),
        imported_by_id=who.id, imported_by_label=who.label, imported_at=clock.now())
    session.add(record)
    session.flush()
    session.execute(ShadowRow.__table__.insert(), [
        {"import_id": record.id, "row_number": l.row_number, "loan_number": l.loan_number,
         "outstanding_paise": l.outstanding_paise, "dpd": l.dpd, "bucket": l.bucket,
         "collection_paise": l.collection_paise} for l in parsed.lines])
    comparison = _store_comparison(session, record)
    audit.record(session, actor, "shadow.tracker_imported", "shadow_import", f"{day.isoformat()} v{record.version}",
                 before={"version": previous} if previous else None,
                 after={"business_date": day, "version": record.version, "replaces_version": previous,
                        "filename": record.filename, "sheet": record.sheet, "sha256": digest, "rows": record.row_count,
                        "outstanding": money.as_str(record.outstanding_paise),
                        "collections": money.as_str(record.collections_paise), "converged": comparison.converged})
    return Imported(record, comparison, previous)


def current_import(session: Session, day: date) -> ShadowImport | None:
    return session.scalar(select(ShadowImport).where(ShadowImport.business_date == day)
                          .order_by(ShadowImport.version.desc()).limit(1))


def versions(session: Session, day: date) -> list[ShadowImport]:
    return list(session.scalars(select(ShadowImport).where(ShadowImport.business_date == day)
                                .order_by(ShadowImport.version.desc())))


# ---------------------------------------------------------------- the system side and the variance

@dataclass
class LoanDiff:
    loan_number: str
    in_system: bool
    in_tracker: bool
    system_outstanding: int | None = None
    tracker_outstanding: int | None = None
    system_dpd: int | None = None
    tracker_dpd: int | None = None
    system_bucket: str | None = None  # in the tracker's labels
    tracker_bucket: str | None = None
    system_collection: int | None = None
    tracker_collection: int | None = None
    tracker_row: int | None = None

    @property
    def differs(self) -> list[str]:
        if not self.in_system:
            return ["only_tracker"]
        if not self.in_tracker:
            return ["only_system"]
        out = []
        if self.system_outstanding != self.tracker_outstanding:
            out.append("outstanding")
        if self.system_dpd != self.tracker_dpd:
            out.append("dpd")
        if self.system_bucket != self.tracker_bucket:
            out.append("bucket")
        if self.system_collection != self.tracker_collection:
            out.append("collection")
        return out

    @property
    def outstanding_diff(self) -> int | None:
        return _difference(self.system_outstanding, self.tracker_outstanding)

    @property
    def dpd_diff(self) -> int | None:
        return _difference(self.system_dpd, self.tracker_dpd)

    @property
    def collection_diff(self) -> int | None:
        return _difference(self.system_collection, self.tracker_collection)


def _difference(system: int | None, tracker: int | None) -> int | None:
    """System minus tracker; None when either side has no figure (a loan present on one side only)."""
    return None if system is None or tracker is None else system - tracker


@dataclass
class Variance:
    business_date: date
    dayend_ran: bool
    system_outstanding: int
    tracker_outstanding: int
    system_collections: int
    tracker_collections: int
    buckets: list[tuple[str, int, int]]  # label, system, tracker
    dpd_max: int
    dpd_mean: Decimal
    only_system: int
    only_tracker: int
    loans: list[LoanDiff]

    @staticmethod
    def ratio(system: int, tracker: int) -> Decimal | None:
        if tracker == 0:
            return Decimal(0) if system == 0 else None
        return Decimal(abs(system - tracker)) / Decimal(tracker)

    @property
    def outstanding_ratio(self) -> Decimal | None:
        return self.ratio(self.system_outstanding, self.tracker_outstanding)

    @property
    def collections_ratio(self) -> Decimal | None:
        return self.ratio(self.system_collections, self.tracker_collections)

    @property
    def outstanding_ok(self) -> bool:
        r = self.outstanding_ratio
        return r is not None and r < THRESHOLD

    @property
    def collections_ok(self) -> bool:
        r = self.collections_ratio
        return r is not None and r < THRESHOLD

    @property
    def buckets_ok(self) -> bool:
        return all(s == t for _, s, t in self.buckets)

    @property
    def dpd_ok(self) -> bool:
        return self.dpd_max < 1

    @property
    def converged(self) -> bool:
        return self.dayend_ran and self.outstanding_ok and self.collections_ok and self.buckets_ok and self.dpd_ok


def _system_bucket_map(layout: dict) -> dict[str, str]:
    return {system: label for label, systems in layout["buckets"].items() for system in systems}


def system_side(session: Session, day: date) -> tuple[bool, dict[str, dict]]:
    """Per loan number on business date D: outstanding principal, DPD, bucket (system labels), collections."""
    config = current_app.config
    dayend_ran = session.scalar(select(func.count()).select_from(CronRun).where(
        CronRun.job == "dayend", CronRun.business_date == day, CronRun.status == "SUCCEEDED")) > 0
    reversed_paise = (select(func.coalesce(func.sum(Reversal.amount_paise), 0))
                      .join(Approval, Approval.reversal_id == Reversal.id)
                      .where(Reversal.payment_id == Payment.id, Approval.status == "APPROVED").scalar_subquery())
    receipts: dict[int, list[ledger.Receipt]] = defaultdict(list)
    collected: Counter = Counter()
    for loan_id, pid, value_date, net in session.execute(
            select(Payment.loan_id, Payment.id, Payment.value_date, Payment.amount_paise - reversed_paise)
            .where(Payment.status == "POSTED", Payment.value_date <= day).order_by(Payment.id)):
        if net > 0:
            receipts[loan_id].append(ledger.Receipt(pid, value_date, net))
            if value_date == day:
                collected[loan_id] += net
    official = {row.loan_id: row for row in session.scalars(
        select(DayendPosition).where(DayendPosition.business_date == day))} if dayend_ran else {}
    out: dict[str, dict] = {}
    for loan in session.scalars(select(Loan).options(selectinload(Loan.instalments))
                                .where(Loan.disbursed_on <= day).order_by(Loan.id)):
        position = ledger.compute_position(schedule_of(loan), receipts.get(loan.id, []), day,
                                           order=config["ALLOCATION_ORDER"], buckets=config["BUCKETS"])
        if position.closed and not collected.get(loan.id):
            continue
        stored = official.get(loan.id)
        out[loan.loan_number] = {
            "outstanding": position.outstanding_principal_paise,
            "dpd": stored.dpd if stored is not None else position.dpd,
            "bucket": stored.bucket if stored is not None else position.bucket,
            "collection": collected.get(loan.id, 0),
        }
    return dayend_ran, out


def variance(session: Session, shadow_import: ShadowImport) -> Variance:
    layout = current_app.config["TRACKER_LAYOUTS"].get(shadow_import.layout)
    if layout is None:
        raise ValidationError(f"Tracker layout {shadow_import.layout} is no longer configured.",
                              fields={"layout": "is not in TRACKER_LAYOUTS"})
    to_label = _system_bucket_map(layout)
    day = shadow_import.business_date
    dayend_ran, system = system_side(session, day)
    tracker = {r.loan_number: r for r in session.scalars(
        select(ShadowRow).where(ShadowRow.import_id == shadow_import.id))}
    loans: list[LoanDiff] = []
    system_buckets, tracker_buckets = Counter(), Counter()
    for number in sorted(set(system) | set(tracker)):
        s, t = system.get(number), tracker.get(number)
        diff = LoanDiff(number, s is not None, t is not None)
        if s is not None:
            diff.system_outstanding, diff.system_dpd = s["outstanding"], s["dpd"]
            diff.system_bucket, diff.system_collection = to_label.get(s["bucket"], s["bucket"]), s["collection"]
            system_buckets[diff.system_bucket] += 1
        if t is not None:
            diff.tracker_outstanding, diff.tracker_dpd, diff.tracker_bucket = t.outstanding_paise, t.dpd, t.bucket
            diff.tracker_collection, diff.tracker_row = t.collection_paise, t.row_number
            tracker_buckets[t.bucket] += 1
        loans.append(diff)
    both = [abs(d.dpd_diff) for d in loans if d.dpd_diff is not None]
    labels = list(layout["buckets"]) + sorted(set(system_buckets) | set(tracker_buckets) - set(layout["buckets"]))
    return Variance(
        business_date=day, dayend_ran=dayend_ran,
        system_outstanding=sum(d.system_outstanding or 0 for d in loans),
        tracker_outstanding=sum(d.tracker_outstanding or 0 for d in loans),
        system_collections=sum(d.system_collection or 0 for d in loans),
        tracker_collections=sum(d.tracker_collection or 0 for d in loans),
        buckets=[(label, system_buckets[label], tracker_buckets[label]) for label in labels],
        dpd_max=max(both, default=0),
        dpd_mean=(Decimal(sum(both)) / len(both)).quantize(Decimal("0.01")) if both else Decimal("0.00"),
        only_system=sum(1 for d in loans if not d.in_tracker), only_tracker=sum(1 for d in loans if not d.in_system),
        loans=loans)


def _store_comparison(session: Session, shadow_import: ShadowImport) -> ShadowComparison:
    v = variance(session, shadow_import)
    figures = {"buckets": [[label, s, t] for label, s, t in v.buckets], "dpd_max": v.dpd_max,
               "dpd_mean": str(v.dpd_mean), "only_system": v.only_system, "only_tracker": v.only_tracker,
               "loans_differing": sum(1 for d in v.loans if d.differs), "loans": len(v.loans),
               "outstanding_ratio": None if v.outstanding_ratio is None else str(v.outstanding_ratio),
               "collections_ratio": None if v.collections_ratio is None else str(v.collections_ratio),
               "version": shadow_import.version}
    comparison = ShadowComparison(
        import_id=shadow_import.id, business_date=v.business_date, compared_at=clock.now(), dayend_ran=v.dayend_ran,
        system_outstanding_paise=v.system_outstanding, tracker_outstanding_paise=v.tracker_outstanding,
        system_collections_paise=v.system_collections, tracker_collections_paise=v.tracker_collections,
        outstanding_ok=v.outstanding_ok, collections_ok=v.collections_ok, buckets_ok=v.buckets_ok, dpd_ok=v.dpd_ok,
        converged=v.converged, figures=json.dumps(figures, sort_keys=True))
    session.add(comparison)
    session.flush()
    return comparison


def compare_again(session: Session, actor, day_text) -> ShadowComparison:
    """Compare the date's current tracker with the system as it is now (after a late day-end, a correction)."""
    require(actor, Perm.SHADOW_IMPORT)
    day, shadow_import = _imported(session, day_text)
    comparison = _store_comparison(session, shadow_import)
    audit.record(session, actor, "shadow.compared", "shadow_import", f"{day.isoformat()} v{shadow_import.version}",
                 after={"converged": comparison.converged, "outstanding_ok": comparison.outstanding_ok,
                        "collections_ok": comparison.collections_ok, "buckets_ok": comparison.buckets_ok,
                        "dpd_ok": comparison.dpd_ok})
    return comparison


def parse_day(raw) -> date:
    try:
        return date.fromisoformat(str(raw or "").strip())
    except ValueError:
        raise NotFound(f"No business date {raw!r}.") from None


@dataclass
class DayView:
    shadow_import: ShadowImport
    variance: Variance
    versions: list[ShadowImport]
    page: Page
    filter: str
    q: str


def _imported(session: Session, day_text) -> tuple[date, ShadowImport]:
    """The date asked for and its current tracker import; NotFound when none was imported."""
    day = parse_day(day_text)
    shadow_import = current_import(session, day)
    if shadow_import is None:
        raise NotFound(f"No tracker has been imported for {day:%d %b %Y}.")
    return day, shadow_import


def _chosen_differences(session: Session, actor, day_text, args: Mapping[str, str]):
    """The date's current tracker import, its variance, the filter asked for and the loans it keeps."""
    require(actor, Perm.VIEW_SHADOW)
    day, shadow_import = _imported(session, day_text)
    v = variance(session, shadow_import)
    chosen, q = parse_filter(args)
    return day, shadow_import, v, chosen, q, filtered(v.loans, chosen, q)


def day_view(session: Session, actor, day_text, args: Mapping[str, str], page: int, per_page: int) -> DayView:
    day, shadow_import, v, chosen, q, rows = _chosen_differences(session, actor, day_text, args)
    start = (page - 1) * per_page
    return DayView(shadow_import, v, versions(session, day), Page(rows[start:start + per_page], page, per_page, len(rows)),
                   chosen, q)


def parse_filter(args: Mapping[str, str]) -> tuple[str, str]:
    chosen = (args.get("show") or "differs").strip().lower()
    if chosen not in FILTERS:
        raise ValidationError("Unknown filter.", fields={"show": f"must be one of {', '.join(FILTERS)}"})
    return chosen, (args.get("q") or "").strip().upper()[:32]


def filtered(loans: list[LoanDiff], chosen: str, q: str) -> list[LoanDiff]:
    out = []
    for d in loans:
        if q and q not in d.loan_number:
            continue
        kinds = d.differs
        if chosen == "all" or (chosen == "differs" and kinds) or chosen in kinds:
            out.append(d)
    return out


EXPORT_HEADER = ["Loan number", "Tracker row", "On", "Differs in", "System outstanding", "Tracker outstanding",
                 "Outstanding difference", "System DPD", "Tracker DPD", "DPD difference", "System bucket",
                 "Tracker bucket", "System collection", "Tracker collection", "Collection difference"]


def export_rows(session: Session, actor, day_text, args: Mapping[str, str]) -> tuple[str, list[str], list[list]]:
    day, shadow_import, _v, _chosen, _q, chosen_rows = _chosen_differences(session, actor, day_text, args)
    rupees = lambda p: None if p is None else money.to_rupees(p)  # noqa: E731
    rows = [[d.loan_number, d.tracker_row, "both" if d.in_system and d.in_tracker else "system" if d.in_system else "tracker",
             " ".join(d.differs), rupees(d.system_outstanding), rupees(d.tracker_outstanding), rupees(d.outstanding_diff),
             d.system_dpd, d.tracker_dpd, d.dpd_diff, d.system_bucket, d.tracker_bucket, rupees(d.system_collection),
             rupees(d.tracker_collection), rupees(d.collection_diff)] for d in chosen_rows]
    return f"Shadow month variance {day.isoformat()} (tracker v{shadow_import.version})", EXPORT_HEADER, rows


# ---------------------------------------------------------------- convergence dashboard

@dataclass(frozen=True)
class DayResult:
    business_date: date
    comparison: ShadowComparison | None
    version: int | None
    figures: dict

    @property
    def converged(self) -> bool:
        return bool(self.comparison and self.comparison.converged)


@dataclass
class Dashboard:
    date_from: date
    date_to: date
    days: list[DayResult]
    streak: int
    needed: int
    open_issues: list[ShadowIssue]
    open_issue_count: int
    chart: dict


def latest_comparisons(session: Session, date_from: date, date_to: date) -> dict[date, ShadowComparison]:
    """The latest comparison of each date in the range (a month is a few dozen rows)."""
    latest: dict[date, ShadowComparison] = {}
    for comparison in session.scalars(select(ShadowComparison).where(
            ShadowComparison.business_date >= date_from, ShadowComparison.business_date <= date_to)
            .order_by(ShadowComparison.id)):
        latest[comparison.business_date] = comparison
    return latest


def converged_streak(session: Session, until: date | None = None) -> tuple[int, date | None]:
    """Consecutive business dates, ending with the latest compared one (≤ until), whose comparison converged."""
    until = until or clock.last_business_date()
    last = session.scalar(select(func.max(ShadowComparison.business_date))
                          .where(ShadowComparison.business_date <= until))
    if last is None:
        return 0, None
    latest = latest_comparisons(session, last - timedelta(days=400), last)
    streak, day = 0, last
    while day in latest and latest[day].converged:
        streak, day = streak + 1, day - timedelta(days=1)
    return streak, last


def parse_range(args: Mapping[str, str], default_days: int = 31) -> tuple[date, date]:
    errors = {}
    parsed = {}
    for name in ("date_from", "date_to"):
        text = (args.get(name) or "").strip()
        if text:
            try:
                parsed[name] = date.fromisoformat(text)
            except ValueError:
                errors[name] = f"{text!r} is not a date (YYYY-MM-DD)"
    if errors:
        raise ValidationError("The dates are not valid.", fields=errors)
    date_to = parsed.get("date_to") or clock.last_business_date()
    date_from = parsed.get("date_from") or date_to - timedelta(days=default_days - 1)
    if date_from > date_to:
        raise ValidationError("The dates are not valid.", fields={"date_from": "must not be after date_to"})
    if (date_to - date_from).days > 366:
        raise ValidationError("The dates are not valid.", fields={"date_from": "the range is at most a year"})
    return date_from, date_to


def dashboard(session: Session, actor, args: Mapping[str, str]) -> Dashboard:
    require(actor, Perm.VIEW_SHADOW)
    date_from, date_to = parse_range(args)
    latest = latest_comparisons(session, date_from, date_to)
    import_versions = dict(session.execute(select(ShadowImport.id, ShadowImport.version).where(
        ShadowImport.id.in_([c.import_id for c in latest.values()]))).all()) if latest else {}
    days = []
    day = date_to
    while day >= date_from:
        comparison = latest.get(day)
        days.append(DayResult(day, comparison, import_versions.get(comparison.import_id) if comparison else None,
                              json.loads(comparison.figures) if comparison else {}))
        day -= timedelta(days=1)
    streak, _ = converged_streak(session)
    open_query = select(ShadowIssue).where(ShadowIssue.status.in_(("OPEN", "IN_PROGRESS")))
    open_count = session.scalar(select(func.count()).select_from(open_query.subquery()))
    open_issues = list(session.scalars(open_query.order_by(ShadowIssue.created_at.desc()).limit(10)))
    return Dashboard(date_from, date_to, days, streak, current_app.config["SHADOW_CONVERGED_DAYS"], open_issues,
                     open_count or 0, trend_chart(list(reversed(days))))


def trend_chart(days: list[DayResult], width: int = 720, height: int = 240) -> dict:
    """Coordinates for a server-rendered SVG: outstanding and collections variance (%) per day, the 0.1 %
    line, and a pass/fail mark per day. Values above 1 % are drawn at the top edge (and say so)."""
    left, right, top, bottom = 48, 12, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    ceiling = Decimal("1.0")  # percent
    n = max(len(days), 1)
    step = plot_w / max(n - 1, 1)

    def y_of(percent: Decimal) -> float:
        return round(top + plot_h - float(min(percent, ceiling) / ceiling) * plot_h, 1)

    series = {"outstanding": [], "collections": []}
    marks = []
    for index, day in enumerate(days):
        x = round(left + index * step, 1) if n > 1 else left + plot_w / 2
        label = day.business_date.strftime("%d %b")
        if day.comparison is None:
            marks.append({"x": x, "state": "none", "label": label})
            continue
        for name in series:
            raw = day.figures.get(f"{name}_ratio")
            percent = None if raw is None else Decimal(raw) * 100
            series[name].append({"x": x, "y": y_of(percent) if percent is not None else top,
                                 "value": "n/a" if percent is None else f"{percent.quantize(Decimal('0.001'))} %",
                                 "clipped": percent is None or percent > ceiling, "label": label})
        marks.append({"x": x, "state": "pass" if day.converged else "fail", "label": label})
    return {
        "width": width, "height": height, "left": left, "top": top, "plot_w": plot_w, "plot_h": plot_h,
        "bottom_y": top + plot_h, "threshold_y": y_of(Decimal("0.1")),
        "gridlines": [{"y": y_of(Decimal(p)), "label": f"{p} %"} for p in ("0", "0.25", "0.5", "0.75", "1.0")],
        "series": {name: {"points": pts, "path": " ".join(f"{p['x']},{p['y']}" for p in pts)} for name, pts in series.items()},
        "marks": marks, "label_every": max(1, n // 8),
    }


# ---------------------------------------------------------------- issue log

def _user_by_username(session: Session, username: str, field_name: str = "assignee") -> User | None:
    username = (username or "").strip()
    if not username:
        return None
    user = session.scalar(select(User).where(User.username == username, User.active.is_(True)))
    if user is None:
        raise ValidationError("The assignee is not valid.", fields={field_name: f"no active user {username!r}"})
    return user


def describe_issue(issue: ShadowIssue) -> dict:
    return {"business_date": issue.business_date, "loan_number": issue.loan_number, "kind": issue.kind,
            "title": issue.title, "status": issue.status, "assignee": issue.assignee.username if issue.assignee else None,
            "resolution": issue.resolution}


def raise_issue(session: Session, actor, raw: Mapping[str, str]) -> ShadowIssue:
    require(actor, Perm.WORK_SHADOW_ISSUES)
    errors = {}
    day = None
    try:
        day = date.fromisoformat((raw.get("business_date") or "").strip())
    except ValueError:
        errors["business_date"] = "is required (YYYY-MM-DD)"
    kind = (raw.get("kind") or "").strip().upper()
    if kind not in ISSUE_KINDS:
        errors["kind"] = f"must be one of {', '.join(ISSUE_KINDS)}"
    loan_number = (raw.get("loan_number") or "").strip().upper() or None
    if kind and kind != "SUMMARY" and not loan_number:
        errors["loan_number"] = "is required for a loan's variance"
    title = " ".join((raw.get("title") or "").split())
    if not title or len(title) > 200:
        errors["title"] = "is required (at most 200 characters)"
    detail = (raw.get("detail") or "").strip()
    if len(detail) > 4000:
        errors["detail"] = "is at most 4000 characters"
    if errors:
        raise ValidationError("The issue is not valid.", fields=errors)
    if current_import(session, day) is None:
        raise ValidationError("The issue is not valid.", fields={"business_date": f"no tracker was imported for {day}"})
    assignee = _user_by_username(session, raw.get("assignee") or "")
    now = clock.now()
    issue = ShadowIssue(business_date=day, loan_number=loan_number, kind=kind, title=title, detail=detail, status="OPEN",
                        assignee_id=assignee.id if assignee else None, raised_by_id=getattr(actor, "id", None),
                        created_at=now, updated_at=now)
    session.add(issue)
    session.flush()
    session.refresh(issue)
    audit.record(session, actor, "shadow.issue_raised", "shadow_issue", issue.id, after=describe_issue(issue))
    return issue


def get_issue(session: Session, actor, issue_id, *, lock: bool = False) -> ShadowIssue:
    require(actor, Perm.VIEW_SHADOW)
    try:
        number = int(str(issue_id))
    except ValueError:
        raise NotFound(f"No issue {issue_id}.") from None
    query = select(ShadowIssue).where(ShadowIssue.id == number)
    issue = session.scalar(query.with_for_update(of=ShadowIssue) if lock else query)
    if issue is None:
        raise NotFound(f"No issue {issue_id}.")
    return issue


def update_issue(session: Session, actor, issue_id, raw: Mapping[str, str]) -> ShadowIssue:
    """Assign, move the status, write the resolution. Closing (RESOLVED / WONT_FIX) needs a resolution."""
    require(actor, Perm.WORK_SHADOW_ISSUES)
    issue = get_issue(session, actor, issue_id, lock=True)
    before = describe_issue(issue)
    errors = {}
    status = (raw.get("status") or issue.status).strip().upper()
    if status not in ISSUE_STATUSES:
        errors["status"] = f"must be one of {', '.join(ISSUE_STATUSES)}"
    resolution = (raw.get("resolution") if raw.get("resolution") is not None else issue.resolution or "").strip()
    if len(resolution) > 4000:
        errors["resolution"] = "is at most 4000 characters"
    if status in ("RESOLVED", "WONT_FIX") and not resolution:
        errors["resolution"] = "is required to close an issue"
    if errors:
        raise ValidationError("The issue cannot be changed.", fields=errors)
    if "assignee" in raw:
        assignee = _user_by_username(session, raw.get("assignee") or "")
        issue.assignee_id = assignee.id if assignee else None
    issue.status, issue.resolution, issue.updated_at = status, resolution, clock.now()
    issue.resolved_at = clock.now() if status in ("RESOLVED", "WONT_FIX") else None
    session.flush()
    session.refresh(issue)
    after = describe_issue(issue)
    if after == before:
        raise ValidationError("Nothing to change.", fields={"status": "is unchanged, and so are the assignee and resolution"})
    audit.record(session, actor, "shadow.issue_updated", "shadow_issue", issue.id, before=before, after=after)
    return issue


def issue_list(session: Session, actor, args: Mapping[str, str], page: int, per_page: int) -> Page:
    from webapp.services.pagination import paginate

    require(actor, Perm.VIEW_SHADOW)
    query = select(ShadowIssue)
    status = (args.get("status") or "").strip().upper()
    if status == "ACTIVE":
        query = query.where(ShadowIssue.status.in_(("OPEN", "IN_PROGRESS")))
    elif status:
        if status not in ISSUE_STATUSES:
            raise ValidationError("Unknown status.", fields={"status": f"must be ACTIVE or one of {', '.join(ISSUE_STATUSES)}"})
        query = query.where(ShadowIssue.status == status)
    return paginate(session, query.order_by(ShadowIssue.created_at.desc(), ShadowIssue.id.desc()), page, per_page)


ISSUE_HEADER = ["Id", "Business date", "Loan number", "Kind", "Title", "Detail", "Status", "Assignee", "Raised by",
                "Raised at", "Resolution", "Resolved at"]


def issue_export_rows(session: Session, actor, args: Mapping[str, str]) -> tuple[str, list[str], list[list]]:
    page = issue_list(session, actor, args, 1, 1_000_000)
    rows = [[i.id, i.business_date, i.loan_number, i.kind, i.title, i.detail, i.status,
             i.assignee.username if i.assignee else "", i.raised_by.username if i.raised_by else "",
             clock.to_ist(i.created_at).isoformat(), i.resolution,
             clock.to_ist(i.resolved_at).isoformat() if i.resolved_at else ""] for i in page.items]
    return "Shadow month issue log", ISSUE_HEADER, rows


def assignable_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).where(User.active.is_(True), User.role.in_(("finance", "admin", "manager")))
                                .order_by(User.username)))
