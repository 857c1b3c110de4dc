"""Disputes (DESIGN.md §5, §6): raised on a loan or one of its payments, with evidence; reviewed and resolved
by a second person; immutable once resolved.

* Raise: any role with `raise_dispute`, on a loan in its scope. A conduct complaint also sets
  `loans.has_conduct_complaint`, which puts the loan in legal's scope for good.
* Review and resolve: a manager of the loan's branch, or legal for conduct complaints; never the person
  who raised it (here and a CHECK constraint). OPEN → UNDER_REVIEW → RESOLVED_UPHELD | RESOLVED_REJECTED.
* An upheld dispute on a payment may ask for a reversal through `approvals.request_reversal`: the usual
  maker-checker, decided by another person in the approvals inbox. The dispute keeps the link.
* Once resolved nothing changes (here, and triggers in the database); new information is a new dispute
  that supersedes the old one.

Every transition is audited on entity ("dispute", reference); the dispute page's timeline is read back
from those entries.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from typing import Iterable, Mapping

from flask import current_app
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, joinedload, lazyload, load_only, selectinload

from webapp import clock, money
from webapp.errors import Conflict, DomainError, Forbidden, NotFound, Unauthorized, ValidationError
from webapp.models import AuditEntry, Dispute, DisputeEvidence, Loan, Payment, User
from webapp.models.disputes import DISPUTE_CATEGORIES, DISPUTE_STATUSES, OPEN_STATUSES
from webapp.permissions import Perm, can, in_scope, loan_visible, require
from webapp.services import approvals, audit, evidence, loans, payments
from webapp.services.audit import Actor, RefusedAttempt
from webapp.services.evidence import Upload
from webapp.services.pagination import Page, paginate

MAX_DESCRIPTION = 2000
MAX_NOTE = 2000
MAX_REVERSAL_NOTE = approvals.MAX_REASON
# Who reviews and resolves: conduct complaints go to legal, everything else to a manager of the loan's branch.
RESOLVER_ROLE = {"CONDUCT_COMPLAINT": "legal"}
DEFAULT_RESOLVER_ROLE = "manager"
OUTCOMES = ("UPHELD", "REJECTED")
# The reversal reason a resolver starts from, by dispute category.
DEFAULT_REVERSAL_REASON = {"WRONG_LOAN": "WRONG_LOAN"}
STATUS_FILTERS = ("UNRESOLVED", *DISPUTE_STATUSES, "ALL")


class EvidenceCorrupt(DomainError):
    """A stored evidence file no longer matches the checksum recorded at upload (or has gone)."""

    status = 500
    code = "evidence_corrupt"


# ---------------------------------------------------------------- access

def _require_access(actor) -> None:
    """Dispute screens are for the roles that raise or resolve disputes."""
    if not getattr(actor, "is_authenticated", False):
        raise Unauthorized("Please sign in.")
    if not (can(actor, Perm.RAISE_DISPUTE) or can(actor, Perm.RESOLVE_DISPUTE)):
        raise Forbidden("You do not have permission to do that.")


def get_for(session: Session, actor, reference: str, *, lock: bool = False) -> Dispute:
    """Load and authorise: a dispute whose loan is outside the actor's scope is simply not found."""
    _require_access(actor)
    query = select(Dispute).where(Dispute.reference == (reference or "").strip().upper())
    if lock:
        query = query.with_for_update(of=Dispute)
    dispute = session.scalars(query).unique().one_or_none()
    if dispute is None or not loan_visible(actor, dispute.loan):
        raise NotFound(f"No dispute {reference}.")
    return dispute


def resolver_problem(actor, dispute: Dispute) -> str | None:
    """Why `actor` may not review or resolve `dispute`, or None when they may."""
    if not can(actor, Perm.RESOLVE_DISPUTE):
        return "your role does not review or resolve disputes"
    if getattr(actor, "id", None) is not None and dispute.raised_by_id == actor.id:
        return "you raised this dispute; another person must review and resolve it"
    role = RESOLVER_ROLE.get(dispute.category, DEFAULT_RESOLVER_ROLE)
    if role == "legal" and actor.role != "legal":
        return "conduct complaints are reviewed and resolved by legal"
    if role == "manager" and (actor.role != "manager" or actor.branch_id != dispute.branch_id):
        return "this dispute is reviewed and resolved by a manager of the loan's branch"
    return None


def can_review(actor, dispute: Dispute) -> bool:
    """Whether a screen should offer `actor` the review and resolve actions on `dispute`."""
    return dispute.is_open and resolver_problem(actor, dispute) is None


def _check_resolver(actor, dispute: Dispute) -> None:
    problem = resolver_problem(actor, dispute)
    if problem:
        raise Forbidden(f"Dispute {dispute.reference}: {problem}.")


def _refuse_if_resolved(actor, dispute: Dispute, attempted: str) -> None:
    """A resolved dispute never changes: say why, and keep the refused attempt in the audit log."""
    if dispute.is_open:
        return
    outcome = "upheld" if dispute.status == "RESOLVED_UPHELD" else "rejected"
    when = clock.to_ist(dispute.resolved_at).strftime("%d %b %Y") if dispute.resolved_at else "earlier"
    raise Conflict(
        f"Dispute {dispute.reference} was resolved ({outcome}) on {when} and can no longer change. "
        "For new information, raise a new dispute that supersedes it.",
        code="dispute_resolved",
        attempt=RefusedAttempt(Actor.of(actor), "dispute.change_refused", "dispute", dispute.reference,
                               {"action": attempted, "status": dispute.status}, dispute.branch_id),
    )


def _user(session: Session, actor) -> User:
    return session.get(User, actor.id)


# ---------------------------------------------------------------- raise, evidence

def _text(raw: Mapping[str, object], name: str) -> str:
    value = raw.get(name)
    return "" if value is None else str(value).strip()


def _check_uploads(uploads: Iterable[Upload], already: int) -> tuple[list[evidence.Checked], list[str]]:
    max_files = current_app.config["EVIDENCE_MAX_FILES"]
    max_bytes = current_app.config["EVIDENCE_MAX_BYTES"]
    uploads = list(uploads)
    if already + len(uploads) > max_files:
        held = f" ({already} already attached)" if already else ""
        return [], [f"at most {max_files} files per dispute{held}"]
    checked, problems = [], []
    for upload in uploads:
        item, problem = evidence.check(upload, max_bytes)
        if problem:
            problems.append(problem)
        else:
            checked.append(item)
    return checked, problems


def raise_dispute(session: Session, actor, loan_number: str, raw: Mapping[str, object],
                  uploads: Iterable[Upload] = ()) -> Dispute:
    """Raise a dispute on a loan, or on one of its payments (`payment`: its reference), with evidence files.

    Fields: `category`, `description`, optional `payment` and `supersedes` (a resolved dispute of the loan).
    """
    require(actor, Perm.RAISE_DISPUTE)
    loan = loans.get_for(session, actor, loan_number, lock=True)  # serialises the duplicate check below
    errors: dict[str, str] = {}
    category = _text(raw, "category").upper()
    if category not in DISPUTE_CATEGORIES:
        errors["category"] = f"must be one of {', '.join(DISPUTE_CATEGORIES)}"
    description = _text(raw, "description")
    if not description:
        errors["description"] = "is required"
    elif len(description) > MAX_DESCRIPTION:
        errors["description"] = f"must be at most {MAX_DESCRIPTION} characters"
    payment = None
    payment_reference = _text(raw, "payment")
    if payment_reference:
        payment = session.scalar(select(Payment).where(
            Payment.reference == payments.normalise_reference(payment_reference), Payment.loan_id == loan.id))
        if payment is None:
            errors["payment"] = f"{payment_reference} is not a payment of loan {loan.loan_number}"
    supersedes = None
    supersedes_reference = _text(raw, "supersedes").upper()
    if supersedes_reference:
        supersedes = on_loan(session, loan, supersedes_reference)
        if supersedes is None:
            errors["supersedes"] = f"{supersedes_reference} is not a dispute of loan {loan.loan_number}"
        elif supersedes.is_open:
            errors["supersedes"] = (f"dispute {supersedes.reference} is still open; add the new information "
                                    "to it instead")
    checked, problems = _check_uploads(uploads, already=0)
    if problems:
        errors["evidence"] = "; ".join(problems)
    if errors:
        raise ValidationError("The dispute is not valid.", fields=errors)
    same = Dispute.payment_id == payment.id if payment is not None else Dispute.payment_id.is_(None)
    duplicate = session.scalar(select(Dispute.reference).where(
        Dispute.loan_id == loan.id, same, Dispute.category == category, Dispute.status.in_(OPEN_STATUSES)).limit(1))
    if duplicate:
        about = f"payment {payment.reference}" if payment is not None else f"loan {loan.loan_number}"
        raise Conflict(f"Dispute {duplicate} about {about} in this category is still open; add to it instead.",
                       fields={"category": f"already open as dispute {duplicate}"}, code="duplicate_dispute")
    stored = _store(checked)
    try:
        dispute = Dispute(reference=_new_reference(), loan=loan, payment=payment, branch_id=loan.branch_id,
                          category=category, description=description, status="OPEN",
                          raised_by=_user(session, actor), supersedes=supersedes, created_at=clock.now())
        session.add(dispute)
        flagged = category == "CONDUCT_COMPLAINT" and not loan.has_conduct_complaint
        if flagged:
            loan.has_conduct_complaint = True  # legal sees this loan from now on
        session.flush()
        audit.record(session, actor, "dispute.raised", "dispute", dispute.reference,
                     after={**describe(dispute), "loan_put_in_legal_scope": flagged}, branch_id=loan.branch_id)
        _record_evidence(session, actor, dispute, stored)
    except BaseException:
        evidence.discard([name for _, name in stored])  # nothing will refer to them: the transaction rolls back
        raise
    return dispute


def add_evidence(session: Session, actor, reference: str, uploads: Iterable[Upload]) -> list[DisputeEvidence]:
    """More files for an open dispute (up to the per-dispute limit)."""
    require(actor, Perm.RAISE_DISPUTE)
    dispute = get_for(session, actor, reference, lock=True)
    _refuse_if_resolved(actor, dispute, "add evidence")
    uploads = list(uploads)
    if not uploads:
        raise ValidationError("No evidence was added.", fields={"evidence": "choose at least one file"})
    checked, problems = _check_uploads(uploads, already=len(dispute.evidence))
    if problems:
        raise ValidationError("The evidence is not valid.", fields={"evidence": "; ".join(problems)})
    stored = _store(checked)
    try:
        return _record_evidence(session, actor, dispute, stored)
    except BaseException:
        evidence.discard([name for _, name in stored])
        raise


def _store(checked: list[evidence.Checked]) -> list[tuple[evidence.Checked, str]]:
    """Write the files first, before any audit entry: the audit chain's lock is not held during disk writes."""
    stored: list[tuple[evidence.Checked, str]] = []
    try:
        for item in checked:
            stored.append((item, evidence.write(item)))
    except BaseException:
        evidence.discard([name for _, name in stored])
        raise
    return stored


def _record_evidence(session: Session, actor, dispute: Dispute,
                     stored: list[tuple[evidence.Checked, str]]) -> list[DisputeEvidence]:
    rows = []
    for item, stored_name in stored:
        row = DisputeEvidence(dispute=dispute, stored_name=stored_name, original_name=item.original_name,
                              content_type=item.content_type, size_bytes=item.size, sha256=item.sha256,
                              uploaded_by=_user(session, actor), created_at=clock.now())
        session.add(row)
        session.flush()
        audit.record(session, actor, "dispute.evidence_added", "dispute", dispute.reference,
                     after=describe_evidence(row), branch_id=dispute.branch_id)
        rows.append(row)
    return rows


def evidence_for(session: Session, actor, reference: str, evidence_id) -> tuple[DisputeEvidence, bytes]:
    """One evidence file of a dispute in scope, its bytes checked against the SHA-256 recorded at upload."""
    dispute = get_for(session, actor, reference)
    try:
        ident = int(str(evidence_id))
    except ValueError:
        raise NotFound(f"No evidence {evidence_id} on dispute {dispute.reference}.") from None
    item = next((row for row in dispute.evidence if row.id == ident), None)
    if item is None:
        raise NotFound(f"No evidence {evidence_id} on dispute {dispute.reference}.")
    data = evidence.read_verified(item.stored_name, item.sha256)
    if data is None:
        raise EvidenceCorrupt(
            f"Evidence file {item.original_name} is missing or no longer matches the checksum recorded when it "
            "was uploaded, so it is not served. The incident has been logged; tell the administrator.",
            attempt=RefusedAttempt(Actor.of(actor), "dispute.evidence_integrity_failed", "dispute",
                                   dispute.reference, {"evidence_id": item.id, "sha256": item.sha256},
                                   dispute.branch_id))
    return item, data


# ---------------------------------------------------------------- review and resolution

def start_review(session: Session, actor, reference: str) -> Dispute:
    require(actor, Perm.RESOLVE_DISPUTE)
    dispute = get_for(session, actor, reference, lock=True)
    _refuse_if_resolved(actor, dispute, "start review")
    _check_resolver(actor, dispute)
    if dispute.status != "OPEN":
        raise Conflict(f"Dispute {dispute.reference} is already under review by {dispute.reviewer.name}.",
                       code="already_under_review")
    dispute.status = "UNDER_REVIEW"
    dispute.reviewer = _user(session, actor)
    dispute.review_started_at = clock.now()
    session.flush()
    audit.record(session, actor, "dispute.review_started", "dispute", dispute.reference,
                 before={"status": "OPEN"}, after={"status": dispute.status, "reviewer": actor.username},
                 branch_id=dispute.branch_id)
    return dispute


def resolve(session: Session, actor, reference: str, *, outcome: str, note: str,
            reversal: Mapping[str, object] | None = None) -> Dispute:
    """Uphold or reject a dispute under review, with a note; an upheld payment dispute may ask for a reversal.

    `reversal` (only with UPHELD, only for a payment dispute): `amount` (empty for all that is left),
    `reason` (a reversal reason; default by category). It becomes an item of the approvals inbox that
    someone else must approve.
    """
    require(actor, Perm.RESOLVE_DISPUTE)
    dispute = get_for(session, actor, reference, lock=True)
    _refuse_if_resolved(actor, dispute, "resolve")
    _check_resolver(actor, dispute)
    if dispute.status == "OPEN":
        raise Conflict(f"Start the review of dispute {dispute.reference} before resolving it.",
                       code="review_not_started")
    errors: dict[str, str] = {}
    outcome = (outcome or "").strip().upper()
    if outcome not in OUTCOMES:
        errors["outcome"] = "must be UPHELD or REJECTED"
    note = (note or "").strip()
    if not note:
        errors["note"] = "is required"
    elif len(note) > MAX_NOTE:
        errors["note"] = f"must be at most {MAX_NOTE} characters"
    if reversal is not None:
        if outcome != "UPHELD":
            errors["reversal"] = "only an upheld dispute can ask for a reversal"
        elif dispute.payment is None:
            errors["reversal"] = "this dispute is about the loan, not one of its payments"
        elif not can(actor, Perm.REQUEST_REVERSAL):
            errors["reversal"] = "your role cannot request reversals; ask a manager or finance"
        elif dispute.payment.status != "POSTED":
            status = dispute.payment.status.replace("_", " ").lower()
            errors["reversal"] = f"payment {dispute.payment.reference} is {status}; only posted payments are reversed"
        elif payments.open_to_reverse_paise(dispute.payment) <= 0:
            errors["reversal"] = (f"nothing of payment {dispute.payment.reference} is left to reverse "
                                  "(already reversed or awaiting approval)")
    if errors:
        raise ValidationError("The resolution is not valid.", fields=errors)
    approval = None
    if reversal is not None:
        reason = _text(reversal, "reason").upper() or DEFAULT_REVERSAL_REASON.get(dispute.category, "OTHER")
        try:
            approval = approvals.request_reversal(session, actor, dispute.payment.reference, {
                "amount": _text(reversal, "amount"), "reason": reason,
                "note": f"Dispute {dispute.reference} upheld: {note}"[:MAX_REVERSAL_NOTE]})
        except ValidationError as refused:
            raise ValidationError("The reversal is not valid.",
                                  fields={f"reversal_{name}": problem for name, problem in refused.fields.items()}) \
                from None
    before = {"status": dispute.status}
    dispute.status = f"RESOLVED_{outcome}"
    dispute.resolved_by = _user(session, actor)
    dispute.resolved_at = clock.now()
    dispute.resolution_note = note
    dispute.reversal_approval = approval
    session.flush()
    audit.record(session, actor, f"dispute.resolved_{outcome.lower()}", "dispute", dispute.reference,
                 before=before, after={"status": dispute.status, "note": note, "resolver": actor.username,
                                       "reversal_approval_id": approval.id if approval else None},
                 branch_id=dispute.branch_id)
    if approval is not None:
        audit.record(session, actor, "dispute.reversal_requested", "dispute", dispute.reference,
                     after={"approval_id": approval.id, "payment": dispute.payment.reference,
                            "amount": money.as_str(approval.reversal.amount_paise),
                            "reason": approval.reversal.reason}, branch_id=dispute.branch_id)
    return dispute


# ---------------------------------------------------------------- descriptions, flags, reads

def describe(dispute: Dispute) -> dict:
    return {
        "reference": dispute.reference, "loan_number": dispute.loan.loan_number,
        "payment": dispute.payment.reference if dispute.payment else None, "category": dispute.category,
        "description": dispute.description, "status": dispute.status,
        "raised_by": dispute.raised_by.username if dispute.raised_by else None,
        "supersedes": dispute.supersedes.reference if dispute.supersedes else None,
    }


def describe_evidence(row: DisputeEvidence) -> dict:
    return {"evidence_id": row.id, "file": row.original_name, "content_type": row.content_type,
            "size_bytes": row.size_bytes, "sha256": row.sha256}


def _new_reference() -> str:
    return "KD" + "".join(secrets.choice(payments.REFERENCE_ALPHABET) for _ in range(10))


def disputed_payment_ids(session: Session, payment_ids: Iterable[int | None]) -> set[int]:
    """Of these payments, the ones with an open dispute: one query."""
    ids = {i for i in payment_ids if i is not None}
    if not ids:
        return set()
    return set(session.scalars(select(Dispute.payment_id).where(
        Dispute.payment_id.in_(ids), Dispute.status.in_(OPEN_STATUSES)).distinct()))


@dataclass(frozen=True)
class OpenOnLoan:
    """A loan's open disputes, for flagging the loan page and its payment history (one query)."""

    count: int
    payment_ids: frozenset[int]

    @property
    def any(self) -> bool:
        return self.count > 0


def open_on_loan(session: Session, loan: Loan) -> OpenOnLoan:
    rows = session.execute(select(Dispute.payment_id).where(Dispute.loan_id == loan.id,
                                                            Dispute.status.in_(OPEN_STATUSES))).all()
    return OpenOnLoan(len(rows), frozenset(row[0] for row in rows if row[0] is not None))


LOAN_PAGE_LIMIT = 20


def for_loan(session: Session, loan: Loan, limit: int = LOAN_PAGE_LIMIT) -> list[Dispute]:
    """The loan's disputes, newest first (the loan page; its caller has already authorised the loan), with
    their payments and who raised them, none of their relations' own: the loan is the caller's."""
    return list(session.scalars(select(Dispute).where(Dispute.loan_id == loan.id)
                                .options(lazyload("*"), selectinload(Dispute.payment).lazyload("*"),
                                         joinedload(Dispute.raised_by).lazyload("*"))
                                .order_by(Dispute.created_at.desc(), Dispute.id.desc()).limit(limit)).unique())


def on_loan(session: Session, loan: Loan, reference: str) -> Dispute | None:
    """One dispute of an already authorised loan, by reference."""
    return session.scalars(select(Dispute).where(Dispute.loan_id == loan.id,
                                                 Dispute.reference == (reference or "").strip().upper())).first()


def of_approval(session: Session, approval) -> Dispute | None:
    """The upheld dispute whose resolution asked for this reversal, if any (the approval page says so)."""
    return session.scalars(select(Dispute).where(Dispute.reversal_approval_id == approval.id)).first()


def superseded_by(session: Session, dispute: Dispute) -> list[Dispute]:
    return list(session.scalars(select(Dispute).where(Dispute.supersedes_id == dispute.id)
                                .order_by(Dispute.id)).unique())


@dataclass(frozen=True)
class TimelineEntry:
    occurred_at: datetime
    actor: str
    action: str
    before: dict | None
    after: dict | None

    @property
    def label(self) -> str:
        return ACTION_LABELS.get(self.action, self.action)


ACTION_LABELS = {
    "dispute.raised": "Raised", "dispute.evidence_added": "Evidence added",
    "dispute.review_started": "Review started", "dispute.resolved_upheld": "Resolved: upheld",
    "dispute.resolved_rejected": "Resolved: rejected", "dispute.reversal_requested": "Reversal requested",
    "dispute.change_refused": "Change refused (resolved)",
    "dispute.evidence_integrity_failed": "Evidence failed its checksum",
}


def timeline(session: Session, dispute: Dispute) -> list[TimelineEntry]:
    """The dispute's history from its audit entries, oldest first: one query."""
    rows = session.scalars(select(AuditEntry).where(AuditEntry.entity_type == "dispute",
                                                    AuditEntry.entity_id == dispute.reference)
                           .order_by(AuditEntry.seq))
    return [TimelineEntry(row.occurred_at, row.actor_label, row.action,
                          json.loads(row.before) if row.before else None,
                          json.loads(row.after) if row.after else None) for row in rows]


# ---------------------------------------------------------------- ageing, queue

@dataclass(frozen=True)
class Band:
    key: str
    label: str
    low: int  # days, inclusive
    high: int | None  # days, inclusive; None: open-ended (overdue)

    @property
    def overdue(self) -> bool:
        return self.high is None


def bands() -> list[Band]:
    """Age bands from DISPUTE_SLA_DAYS (default 7,15,30): 0–7, 8–15, 16–30 days, and overdue beyond."""
    result, low = [], 0
    for days in current_app.config["DISPUTE_SLA_DAYS"]:
        result.append(Band(f"{low}-{days}", f"{low}–{days} days", low, days))
        low = days + 1
    result.append(Band("overdue", f"over {low - 1} days: overdue", low, None))
    return result


def age_days(dispute: Dispute, today: date | None = None) -> int:
    return ((today or clock.today_ist()) - clock.to_ist(dispute.created_at).date()).days


def band_of(dispute: Dispute, today: date | None = None) -> Band:
    age = age_days(dispute, today)
    return next(b for b in bands() if b.high is None or age <= b.high)


def _band_condition(band: Band, today: date):
    """Age in whole IST days = today − the IST date raised; as a condition on the indexed created_at."""
    condition = Dispute.created_at < clock.start_of_ist_day(today, plus_days=1 - band.low)
    if band.high is not None:
        condition = condition & (Dispute.created_at >= clock.start_of_ist_day(today, plus_days=-band.high))
    return condition


@dataclass(frozen=True)
class BandCount:
    band: Band
    count: int


def open_by_age(session: Session, actor) -> list[BandCount]:
    """Open disputes in the actor's scope by age band: one grouped query."""
    _require_access(actor)
    today, all_bands = clock.today_ist(), bands()
    counts = [func.coalesce(func.sum(case((_band_condition(b, today), 1), else_=0)), 0) for b in all_bands]
    row = session.execute(in_scope(select(*counts).select_from(Dispute), actor, Dispute)
                          .where(Dispute.status.in_(OPEN_STATUSES))).one()
    return [BandCount(band, int(count)) for band, count in zip(all_bands, row)]


def oldest_open(session: Session, actor, limit: int = 10) -> list[Dispute]:
    """The actor's oldest open disputes (the manager's home), oldest first, with their loan numbers and
    none of their other relations (a dispute's eager loads bring its payment, users and evidence)."""
    _require_access(actor)
    return list(session.scalars(in_scope(select(Dispute), actor, Dispute).where(Dispute.status.in_(OPEN_STATUSES))
                                .options(lazyload("*"),
                                         joinedload(Dispute.loan).options(load_only(Loan.loan_number), lazyload("*")))
                                .order_by(Dispute.created_at, Dispute.id).limit(limit)).unique())


def overdue_open(session: Session, actor, limit: int = 20) -> list[Dispute]:
    """Open disputes past the last SLA in the actor's scope (they surface in the escalation queue)."""
    _require_access(actor)
    overdue = bands()[-1]
    return list(session.scalars(in_scope(select(Dispute), actor, Dispute)
                                .where(Dispute.status.in_(OPEN_STATUSES), _band_condition(overdue, clock.today_ist()))
                                .order_by(Dispute.created_at, Dispute.id).limit(limit)).unique())


@dataclass(frozen=True)
class QueueFilters:
    status: str = "UNRESOLVED"
    category: str = ""
    age: str = ""
    loan: str = ""


def parse_queue_filters(args: Mapping[str, str]) -> QueueFilters:
    errors = {}
    status = (args.get("status") or "UNRESOLVED").strip().upper()
    if status not in STATUS_FILTERS:
        errors["status"] = f"must be one of {', '.join(STATUS_FILTERS)}"
    category = (args.get("category") or "").strip().upper()
    if category and category not in DISPUTE_CATEGORIES:
        errors["category"] = f"must be one of {', '.join(DISPUTE_CATEGORIES)}"
    age = (args.get("age") or "").strip().lower()
    if age and age not in {b.key for b in bands()}:
        errors["age"] = f"must be one of {', '.join(b.key for b in bands())}"
    if errors:
        raise ValidationError("The filters are not valid.", fields=errors)
    return QueueFilters(status=status, category=category, age=age, loan=(args.get("loan") or "").strip().upper()[:32])


def queue(session: Session, actor, filters: QueueFilters, page: int, per_page: int) -> Page:
    """Disputes in the actor's scope (manager: branch; legal: NPA and conduct-complaint loans; collector:
    their loans; finance: all), oldest first, filtered by status, category, age band and loan."""
    _require_access(actor)
    query = in_scope(select(Dispute), actor, Dispute)
    if filters.status == "UNRESOLVED":
        query = query.where(Dispute.status.in_(OPEN_STATUSES))
    elif filters.status != "ALL":
        query = query.where(Dispute.status == filters.status)
    if filters.category:
        query = query.where(Dispute.category == filters.category)
    if filters.age:
        band = next(b for b in bands() if b.key == filters.age)
        query = query.where(_band_condition(band, clock.today_ist()))
    if filters.loan:
        loan_id = select(Loan.id).where(Loan.loan_number == filters.loan).scalar_subquery()
        query = query.where(Dispute.loan_id == loan_id)
    return paginate(session, query.order_by(Dispute.created_at, Dispute.id), page, per_page)


def default_reversal_reason(dispute: Dispute) -> str:
    return DEFAULT_REVERSAL_REASON.get(dispute.category, "OTHER")

