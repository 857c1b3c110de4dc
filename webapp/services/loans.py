"""Loans: creation (screen, CSV import, API), scoped reads, the few allowed changes, the live position.

Loan amount, rate, tenure and schedule are fixed at creation: `update_loan` refuses them by name, and
database triggers reject a raw UPDATE or DELETE (see the foundation migration).
"""
from __future__ import annotations

import csv
import io
import re
from itertools import accumulate
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Mapping

from sqlalchemy import func, or_, select, true, union
from sqlalchemy.orm import Session

from webapp import cache, clock, money
from webapp.errors import ImmutableFieldError, NotFound, ValidationError
from webapp.models import Borrower, Branch, Dispute, Escalation, Instalment, Loan, LoanScore, User
from webapp.models.disputes import OPEN_STATUSES as OPEN_DISPUTE_STATUSES
from webapp.models.loans import LANGUAGES
from webapp.permissions import Perm, loan_filter, loan_scope_key, loan_visible, require
from webapp.services import audit, ledger, replay
from webapp.services.audit import Actor, RefusedAttempt
from webapp.services.pagination import Page, paginate
from webapp.services.schedule import ScheduleError, build_schedule, emi_paise

LOAN_NUMBER_RE = re.compile(r"^[A-Z0-9][A-Z0-9/_-]{2,31}$")
PHONE_RE = re.compile(r"^[6-9]\d{9}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
EARLIEST_DATE = date(1990, 1, 1)
MAX_RATE = Decimal("60")
MAX_TENURE = 480
MAX_IMPORT_ROWS = 50_000

CSV_COLUMNS = ("loan_number", "borrower_name", "borrower_phone", "branch_code", "collector_username", "principal",
               "annual_rate", "tenure_months", "disbursed_on", "first_due_on")
CSV_OPTIONAL = ("borrower_language", "borrower_email")
# What PATCH / the admin screen may change: the collector and the borrower's contact details.
CHANGEABLE = ("collector_username", "borrower_phone", "borrower_email", "borrower_language")


@dataclass(frozen=True)
class NewLoan:
    loan_number: str
    borrower_name: str
    borrower_phone: str
    borrower_language: str
    borrower_email: str | None
    branch_code: str
    collector_username: str | None
    principal_paise: int
    annual_rate_bps: int
    tenure_months: int
    disbursed_on: date
    first_due_on: date


# ---------------------------------------------------------------- field rules (one place for each)

def normalise_phone(raw: str) -> str:
    digits = re.sub(r"[\s\-()]", "", raw or "")
    if digits.startswith("+91"):
        digits = digits[3:]
    elif len(digits) == 12 and digits.startswith("91"):
        digits = digits[2:]
    elif len(digits) == 11 and digits.startswith("0"):
        digits = digits[1:]
    if not PHONE_RE.match(digits):
        raise ValueError("must be a 10-digit Indian mobile number starting with 6–9")
    return digits


def normalise_language(raw: str | None) -> str:
    value = (raw or "").strip().lower()
    if not value:
        return "en"
    for code, name in LANGUAGES.items():
        if value in (code, name.lower()):
            return code
    raise ValueError(f"must be one of {', '.join(LANGUAGES)}")


def normalise_email(raw: str | None) -> str | None:
    value = (raw or "").strip()
    if not value:
        return None
    if len(value) > 254 or not EMAIL_RE.match(value):
        raise ValueError("is not an email address")
    return value


def parse_date(raw: str, *, not_after: date | None = None) -> date:
    value = (raw or "").strip()
    if not DATE_RE.match(value):
        raise ValueError("must be a date as YYYY-MM-DD")
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise ValueError("is not a real calendar date") from None
    if parsed < EARLIEST_DATE:
        raise ValueError(f"is before {EARLIEST_DATE.isoformat()}")
    if not_after and parsed > not_after:
        raise ValueError("cannot be in the future")
    return parsed


def parse_dates(args: Mapping[str, str | None], names: tuple[str, ...] = ("date_from", "date_to")) -> dict[str, date]:
    """Optional YYYY-MM-DD filter fields; a bad one is refused by name."""
    values, errors = {}, {}
    for name in names:
        raw = (args.get(name) or "").strip()
        if raw:
            try:
                values[name] = parse_date(raw)
            except ValueError as problem:
                errors[name] = str(problem)
    if errors:
        raise ValidationError("The dates are not valid.", fields=errors)
    return values


def parse_new_loan(raw: Mapping[str, str | None]) -> tuple[NewLoan | None, dict[str, str]]:
    """Validate one loan's fields (form, CSV row or API body); returns the loan or field → problem."""
    errors: dict[str, str] = {}
    values: dict = {}

    def field(name, rule):
        value = raw.get(name)
        try:
            values[name] = rule("" if value is None else str(value).strip())
        except (ValueError, money.MoneyError) as problem:
            errors[name] = str(problem)

    def loan_number(v):
        v = v.upper()
        if not LOAN_NUMBER_RE.match(v):
            raise ValueError("must be 3–32 letters, digits, '/', '-' or '_'")
        return v

    def name(v):
        if not v or len(v) > 120:
            raise ValueError("is required (at most 120 characters)")
        return v

    def branch(v):
        if not v:
            raise ValueError("is required")
        return v.upper()

    def principal(v):
        return money.to_paise(money.parse_rupees(v))

    def rate(v):
        try:
            percent = Decimal(str(v))
        except InvalidOperation:
            raise ValueError("must be a percentage like 12.5") from None
        if not percent.is_finite() or percent < 0 or percent > MAX_RATE:
            raise ValueError("must be between 0 and 60 (percent a year)")
        bps = percent * 100
        if bps != bps.to_integral_value():
            raise ValueError("has more than 2 decimal places")
        return int(bps)

    def tenure(v):
        if not re.fullmatch(r"\d{1,4}", str(v)):
            raise ValueError("must be a whole number of months")
        months = int(v)
        if not 1 <= months <= MAX_TENURE:
            raise ValueError(f"must be between 1 and {MAX_TENURE} months")
        return months

    today = clock.today_ist()
    field("loan_number", loan_number)
    field("borrower_name", name)
    field("borrower_phone", normalise_phone)
    field("borrower_language", normalise_language)
    field("borrower_email", normalise_email)
    field("branch_code", branch)
    field("collector_username", lambda v: v.lower() or None)
    field("principal", principal)
    field("annual_rate", rate)
    field("tenure_months", tenure)
    field("disbursed_on", lambda v: parse_date(v, not_after=today))
    field("first_due_on", parse_date)
    if "disbursed_on" in values and "first_due_on" in values and values["first_due_on"] < values["disbursed_on"]:
        errors["first_due_on"] = "cannot be before the disbursal date"
    if not errors:
        try:
            build_schedule(values["principal"], values["annual_rate"], values["tenure_months"], values["first_due_on"])
        except ScheduleError as problem:
            errors["principal"] = str(problem)
    if errors:
        return None, errors
    return NewLoan(
        loan_number=values["loan_number"], borrower_name=values["borrower_name"],
        borrower_phone=values["borrower_phone"], borrower_language=values["borrower_language"],
        borrower_email=values["borrower_email"], branch_code=values["branch_code"],
        collector_username=values["collector_username"], principal_paise=values["principal"],
        annual_rate_bps=values["annual_rate"], tenure_months=values["tenure_months"],
        disbursed_on=values["disbursed_on"], first_due_on=values["first_due_on"],
    ), {}


# ---------------------------------------------------------------- creation

class _Lookups:
    """Branches, collectors, existing loan numbers and borrowers for a batch, each read once."""

    def __init__(self, session: Session, loans: list[NewLoan]):
        codes = {n.branch_code for n in loans}
        usernames = {n.collector_username for n in loans if n.collector_username}
        numbers = {n.loan_number for n in loans}
        self.branches = {b.code: b for b in session.scalars(select(Branch).where(Branch.code.in_(codes)))}
        self.collectors = {u.username: u for u in session.scalars(select(User).where(User.username.in_(usernames)))}
        self.existing = set(session.scalars(select(Loan.loan_number).where(Loan.loan_number.in_(numbers))))
        phones = {n.borrower_phone for n in loans}
        self.borrowers = {
            (b.phone, b.name.lower()): b for b in session.scalars(select(Borrower).where(Borrower.phone.in_(phones)))
        }

    def problems(self, new: NewLoan) -> dict[str, str]:
        errors = {}
        branch = self.branches.get(new.branch_code)
        if branch is None:
            errors["branch_code"] = f"no branch with code {new.branch_code}"
        if new.collector_username:
            collector = self.collectors.get(new.collector_username)
            if collector is None or collector.role != "collector" or not collector.active:
                errors["collector_username"] = f"no active collector {new.collector_username}"
            elif branch is not None and collector.branch_id != branch.id:
                errors["collector_username"] = f"{new.collector_username} does not work at branch {new.branch_code}"
        if new.loan_number in self.existing:
            errors["loan_number"] = f"loan {new.loan_number} already exists"
        return errors


def create_loan(session: Session, actor, raw: Mapping[str, str | None]) -> Loan:
    require(actor, Perm.CREATE_LOANS)
    new, errors = parse_new_loan(raw)
    if new is None:
        raise ValidationError("The loan is not valid.", fields=errors)
    lookups = _Lookups(session, [new])
    errors = lookups.problems(new)
    if errors:
        raise ValidationError("The loan is not valid.", fields=errors)
    return _insert(session, actor, new, lookups)


def _insert(session: Session, actor, new: NewLoan, lookups: _Lookups) -> Loan:
    branch = lookups.branches[new.branch_code]
    key = (new.borrower_phone, new.borrower_name.lower())
    borrower = lookups.borrowers.get(key)
    if borrower is None:
        borrower = Borrower(name=new.borrower_name, phone=new.borrower_phone,
                            preferred_language=new.borrower_language, email=new.borrower_email)
        session.add(borrower)
        lookups.borrowers[key] = borrower
    schedule = build_schedule(new.principal_paise, new.annual_rate_bps, new.tenure_months, new.first_due_on)
    loan = Loan(
        loan_number=new.loan_number, borrower=borrower, branch=branch,
        collector=lookups.collectors.get(new.collector_username) if new.collector_username else None,
        principal_paise=new.principal_paise, annual_rate_bps=new.annual_rate_bps,
        tenure_months=new.tenure_months, emi_paise=emi_paise(new.principal_paise, new.annual_rate_bps, new.tenure_months),
        disbursed_on=new.disbursed_on, first_due_on=new.first_due_on,
        created_by_id=getattr(actor, "id", None), outstanding_principal_paise=new.principal_paise, bucket="0",
        instalments=[Instalment(seq=s.seq, due_date=s.due_date, principal_due_paise=s.principal_paise,
                                interest_due_paise=s.interest_paise, cumulative_due_paise=cumulative)
                     for s, cumulative in zip(schedule, accumulate(s.total_paise for s in schedule))],
    )
    session.add(loan)
    lookups.existing.add(new.loan_number)
    session.flush()
    replay.replay(session, loan)
    audit.record(session, actor, "loan.created", "loan", loan.loan_number, after=_terms(loan), branch_id=branch.id)
    return loan


def _terms(loan: Loan) -> dict:
    return {
        "loan_number": loan.loan_number, "borrower": loan.borrower.name, "branch": loan.branch.code,
        "collector": loan.collector.username if loan.collector else None,
        "principal": money.as_str(loan.principal_paise), "annual_rate": str(loan.annual_rate_percent),
        "tenure_months": loan.tenure_months, "emi": money.as_str(loan.emi_paise),
        "disbursed_on": loan.disbursed_on, "first_due_on": loan.first_due_on,
    }


@dataclass(frozen=True)
class ImportResult:
    created: int
    loan_numbers: list[str]


def import_csv(session: Session, actor, data: bytes | str, *, filename: str = "upload.csv") -> ImportResult:
    """All-or-nothing: every bad row is reported by row number and column, and nothing is written."""
    require(actor, Perm.CREATE_LOANS)
    text = data.decode("utf-8-sig", errors="strict") if isinstance(data, bytes) else data.lstrip("\ufeff")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise ValidationError("The file is missing required columns.",
                              fields={"header": f"missing column(s): {', '.join(missing)}"})
    reader.fieldnames = header
    errors: dict[str, str] = {}
    parsed: list[tuple[int, NewLoan]] = []
    seen: dict[str, int] = {}
    for row_number, row in enumerate(reader, start=2):  # row 1 is the header
        if row_number - 1 > MAX_IMPORT_ROWS:
            raise ValidationError(f"The file has more than {MAX_IMPORT_ROWS} rows; split it.",
                                  fields={"file": "too many rows"})
        if None in row:
            errors[f"row {row_number}"] = "has more values than the header has columns"
            continue
        new, row_errors = parse_new_loan(row)
        if new is not None and new.loan_number in seen:
            row_errors = {"loan_number": f"duplicates row {seen[new.loan_number]}"}
        for column, problem in row_errors.items():
            errors[f"row {row_number}, {column}"] = problem
        if new is not None and not row_errors:
            seen[new.loan_number] = row_number
            parsed.append((row_number, new))
    if not parsed and not errors:
        raise ValidationError("The file has no loans.", fields={"file": "no data rows"})
    lookups = _Lookups(session, [new for _, new in parsed])
    for row_number, new in parsed:
        for column, problem in lookups.problems(new).items():
            errors[f"row {row_number}, {column}"] = problem
    if errors:
        raise ValidationError(f"Nothing was imported: {len(errors)} problem(s) in {filename}.", fields=errors)
    numbers = [_insert(session, actor, new, lookups).loan_number for _, new in parsed]
    audit.record(session, actor, "loans.imported", "import", filename, after={"loans": len(numbers)})
    return ImportResult(len(numbers), numbers)


# ---------------------------------------------------------------- reads

def get_for(session: Session, actor, loan_number: str, *, lock: bool = False) -> Loan:
    """Load and authorise: a loan outside the actor's scope is simply not found."""
    require(actor, Perm.VIEW_LOANS)
    query = select(Loan).where(Loan.loan_number == (loan_number or "").strip().upper())
    if lock:
        query = query.with_for_update(of=Loan)
    loan = session.scalars(query).unique().one_or_none()
    if loan is None or not loan_visible(actor, loan):
        raise NotFound(f"No loan {loan_number}.")
    return loan


# Highest DPD first is the oldest unpaid due date first, loans not overdue last.
BY_DPD = (Loan.overdue_since.asc().nulls_last(), Loan.overdue_paise.desc())
SORTS = {"dpd": BY_DPD, "overdue": (Loan.overdue_paise.desc(),),
         "number": (Loan.loan_number.asc(),), "disbursed": (Loan.disbursed_on.desc(),),
         "priority": (LoanScore.score.desc().nulls_last(), *BY_DPD)}


def _overdue_since_for(days: int) -> date:
    """The oldest unpaid due date that makes a live DPD of `days` (the inverse of ledger.dpd_on)."""
    return clock.last_business_date() - timedelta(days=days - 1)


def dpd_at_least(days: int):
    """Loans whose live DPD is at least `days`, as a condition on the oldest unpaid due date."""
    return true() if days <= 0 else Loan.overdue_since <= _overdue_since_for(days)


def dpd_at_most(days: int):
    return or_(Loan.overdue_since.is_(None), Loan.overdue_since >= _overdue_since_for(days))


@dataclass(frozen=True)
class ListFilters:
    """The API's extra loan-list filters (screens use q, asset_class, collector and sort)."""

    branch: str = ""
    bucket: str = ""
    status: str = ""
    dpd_min: int | None = None
    dpd_max: int | None = None
    disbursed_from: date | None = None
    disbursed_to: date | None = None


def search_condition(term: str):
    """A search box term. With digits in it, it is a loan number or a phone number, each looked up exactly
    by index; without, it is a part of the borrower's name. (One OR of all three read every loan in scope.)"""
    digits = re.sub(r"\D", "", term)
    if not digits:
        return Loan.borrower_id.in_(select(Borrower.id).where(func.lower(Borrower.name).like(f"%{term.lower()}%")))
    by_number = Loan.loan_number == term.upper()
    if len(digits) < 10:
        return by_number
    by_phone = select(Loan.id).join(Borrower, Borrower.id == Loan.borrower_id).where(Borrower.phone == digits[-10:])
    return Loan.id.in_(union(select(Loan.id).where(by_number), by_phone))


def list_for(session: Session, actor, *, q: str = "", asset_class: str = "", sort: str = "dpd",
             collector: str = "", page: int = 1, per_page: int = 25, filters: ListFilters | None = None) -> Page:
    require(actor, Perm.VIEW_LOANS)
    query = select(Loan).where(loan_filter(actor))
    if filters is not None:
        if filters.branch:
            query = query.join(Branch, Branch.id == Loan.branch_id).where(Branch.code == filters.branch.upper())
        if filters.bucket:
            query = query.where(Loan.bucket == filters.bucket)
        if filters.status:
            query = query.where(Loan.status == filters.status)
        if filters.dpd_min is not None:
            query = query.where(dpd_at_least(filters.dpd_min))
        if filters.dpd_max is not None:
            query = query.where(dpd_at_most(filters.dpd_max))
        if filters.disbursed_from:
            query = query.where(Loan.disbursed_on >= filters.disbursed_from)
        if filters.disbursed_to:
            query = query.where(Loan.disbursed_on <= filters.disbursed_to)
    if collector:
        query = query.join(User, User.id == Loan.collector_id).where(User.username == collector.strip().lower())
    if sort == "priority":
        query = query.outerjoin(LoanScore, LoanScore.loan_id == Loan.id)
    term = (q or "").strip()[:64]
    if term:
        query = query.where(search_condition(term))
    if asset_class:
        query = query.where(Loan.asset_class == asset_class)
    query = query.order_by(*SORTS.get(sort, SORTS["dpd"]), Loan.id)
    # Sort and cut the page on the loans' ids and sort keys alone (index-only where the indexes carry them: a
    # branch's 20,000 loans are not read from the table to show 25), then load those 25 with what they show.
    keys = paginate(session, query.with_only_columns(Loan.id, maintain_column_froms=True), page, per_page,
                    reuse_large_pages=True)
    loaded = {loan.id: loan for loan in session.scalars(select(Loan).where(Loan.id.in_(keys.items)))} \
        if keys.items else {}
    return Page([loaded[loan_id] for loan_id in keys.items], keys.page, keys.per_page, keys.total)


@dataclass(frozen=True)
class ListFlags:
    """What a loan list shows beside each loan: its priority score, its open escalation, an open dispute."""

    score: int | None
    escalation: str | None
    disputed: bool


def flags_for(session: Session, loan_ids: list[int]) -> dict[int, ListFlags]:
    """The flags of a page of loans, in one query. A dispute is open on the loan or one of its payments; an
    escalation shows its latest open level (the nightly job keeps one a loan)."""
    if not loan_ids:
        return {}
    escalation = (select(Escalation.level).where(Escalation.loan_id == Loan.id, Escalation.status == "OPEN")
                  .order_by(Escalation.id.desc()).limit(1).scalar_subquery())
    # The page's ids inside the subquery too: its index lookup stays as small as the page, however many disputes.
    disputed = Loan.id.in_(select(Dispute.loan_id).where(Dispute.loan_id.in_(loan_ids),
                                                         Dispute.status.in_(OPEN_DISPUTE_STATUSES)))
    rows = session.execute(select(Loan.id, LoanScore.score, escalation, disputed)
                           .outerjoin(LoanScore, LoanScore.loan_id == Loan.id).where(Loan.id.in_(loan_ids)))
    return {loan_id: ListFlags(score, level, is_disputed) for loan_id, score, level, is_disputed in rows}


# ---------------------------------------------------------------- the only changes a loan accepts

def update_loan(session: Session, actor, loan_number: str, changes: Mapping[str, object]) -> Loan:
    """Reassign the collector or update the borrower's contact details; refuse anything else by name."""
    loan = get_for(session, actor, loan_number, lock=True)
    refused = sorted(k for k in changes if k not in CHANGEABLE)
    if refused:
        raise ImmutableFieldError(
            f"These fields cannot be changed: {', '.join(refused)}.",
            fields={k: "cannot be changed after the loan is created" for k in refused},
            attempt=RefusedAttempt(Actor.of(actor), "loan.change_refused", "loan", loan.loan_number,
                                   {k: str(v) for k, v in changes.items()}, loan.branch_id),
        )
    require(actor, Perm.ASSIGN_COLLECTOR)
    before, after, errors = {}, {}, {}
    borrower = loan.borrower
    for key, value in changes.items():
        value = "" if value is None else str(value).strip()
        try:
            if key == "collector_username":
                new = _collector_for(session, loan, value)
                before[key], after[key] = (loan.collector.username if loan.collector else None), (new.username if new else None)
                loan.collector = new
            elif key == "borrower_phone":
                before[key], borrower.phone = borrower.phone, normalise_phone(value)
                after[key] = borrower.phone
            elif key == "borrower_email":
                before[key], borrower.email = borrower.email, normalise_email(value)
                after[key] = borrower.email
            elif key == "borrower_language":
                before[key], borrower.preferred_language = borrower.preferred_language, normalise_language(value)
                after[key] = borrower.preferred_language
        except ValueError as problem:
            errors[key] = str(problem)
    if errors:
        raise ValidationError("The change is not valid.", fields=errors)
    session.flush()
    audit.record(session, actor, "loan.updated", "loan", loan.loan_number, before=before, after=after,
                 branch_id=loan.branch_id)
    return loan


def _collector_for(session: Session, loan: Loan, username: str) -> User | None:
    if not username:
        return None
    user = session.scalar(select(User).where(User.username == username.lower()))
    if user is None or user.role != "collector" or not user.active:
        raise ValueError(f"no active collector {username}")
    if user.branch_id != loan.branch_id:
        raise ValueError(f"{username} does not work at branch {loan.branch.code}")
    return user


@dataclass(frozen=True)
class ClassTotal:
    asset_class: str
    loans: int
    outstanding_paise: int
    overdue_paise: int


def portfolio_summary(session: Session, actor) -> list[ClassTotal]:
    """Active loans in scope by asset class: one grouped query, reused for AGGREGATE_CACHE_SECONDS."""
    require(actor, Perm.VIEW_LOANS)

    def totals() -> list[ClassTotal]:
        rows = session.execute(
            select(Loan.asset_class, func.count(), func.coalesce(func.sum(Loan.outstanding_principal_paise), 0),
                   func.coalesce(func.sum(Loan.overdue_paise), 0))
            .where(loan_filter(actor), Loan.status == "ACTIVE")
            .group_by(Loan.asset_class)
        ).all()
        found = {row[0]: ClassTotal(row[0], row[1], int(row[2]), int(row[3])) for row in rows}
        return [found.get(name, ClassTotal(name, 0, 0, 0)) for name in ledger.CLASS_NAMES]

    return cache.remembered(cache.key_of("portfolio", loan_scope_key(actor)), totals)
