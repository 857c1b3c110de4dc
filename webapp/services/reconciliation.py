"""Finance reconciliation (DESIGN.md §6 "reconciliation": finance only): bank statements against payments.

* Import: a statement file is read by its bank's layout (`statements.read_statement`), refused when the
  same bytes were imported before (SHA-256, unique), all or nothing. Lines an overlapping export already
  brought are skipped by fingerprint. Balance gaps are warnings on the statement. Matching runs after.
* Matching (`run_matching`), over every open bank credit:
  1. UTR first: the line's UTR names a POSTED, unreconciled payment without a pending reversal →
     amounts equal: a confirmed match at once (kind UTR); amounts differ: a MISMATCH item, never a match.
  2. Otherwise suggestions, never automatic: POSTED payments of the same amount whose value date is
     within RECON_WINDOW_DAYS of the line's (AMOUNT_DATE); and for a cash deposit, the CASH payments one
     collector recorded on one value date (up to RECON_WINDOW_DAYS before the deposit) that add up to
     the credit (CASH_DEPOSIT). A finance user confirms or dismisses each.
  Debit lines are imported and shown but never matched.
* A confirmed match sets `payments.reconciled_at`: the payment is locked (no reversal, no status change;
  here, in approvals, and by triggers) until an unreconcile, asked with a reason by one finance user, is
  approved by another.
* A bank credit with no payment can become one: `payment_from_line` books it through
  `payments.record_payment` (value date and UTR from the line, so it is idempotent by UTR) and matches it.
* Daily close: a date is closed by a finance user once a statement covers it and it has no open
  mismatch; the figures at that moment are kept with the close.

Every write is audited. Services flush; the caller owns the transaction.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Iterable, Mapping

from flask import current_app
from sqlalchemy import and_, case, event, func, inspect, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webapp import cache, clock, money
from webapp.errors import Conflict, Forbidden, NotFound, ValidationError
from webapp.models import (Approval, BankStatement, Loan, Payment, ReconciliationDay, ReconciliationMatch,
                           ReconciliationMatchPayment, Reversal, StatementLine, UnreconcileRequest)
from webapp.models.payments import MODES as PAYMENT_MODES
from webapp.models.reconciliation import LINE_MODES
from webapp.permissions import Perm, require
from webapp.services import audit, loans, payments, statements
from webapp.services.pagination import Page, paginate

ELECTRONIC = statements.ELECTRONIC
MAX_REASON = 500
MAX_RANGE_DAYS = 92
EXPORT_LIMIT = 50_000
LOCK_KEY = 727_001  # PostgreSQL advisory lock: reconciliation writes run one at a time
KIND_LABELS = {"UTR": "UTR and amount", "AMOUNT_DATE": "Same amount, near date", "CASH_DEPOSIT": "Cash deposit",
               "MANUAL": "Matched by hand", "FROM_LINE": "Payment booked from the bank line"}


def _require(actor) -> None:
    require(actor, Perm.RECONCILE)


def _serialise(session: Session) -> None:
    """One reconciliation write at a time (PostgreSQL; SQLite writers are serialised anyway)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})


def _new_reference() -> str:
    return "BS" + "".join(secrets.choice(payments.REFERENCE_ALPHABET) for _ in range(10))


def _actor_id(actor) -> int | None:
    return getattr(actor, "id", None)


def _int_id(raw, what: str) -> int:
    try:
        return int(str(raw))
    except (TypeError, ValueError):
        raise NotFound(f"No {what} {raw}.") from None


def _by_id(session: Session, actor, model, raw_id, what: str, *, lock: bool):
    """One row of `model` by its id (finance only), optionally locked; NotFound names `what`."""
    _require(actor)
    query = select(model).where(model.id == _int_id(raw_id, what))
    if lock:
        query = query.with_for_update(of=model)
    row = session.scalars(query).unique().one_or_none()
    if row is None:
        raise NotFound(f"No {what} {raw_id}.")
    return row


def _reason(raw, *, required: bool, name: str = "reason") -> str:
    value = (raw or "").strip()
    if required and not value:
        raise ValidationError("A reason is required.", fields={name: "is required"})
    if len(value) > MAX_REASON:
        raise ValidationError("The reason is too long.", fields={name: f"must be at most {MAX_REASON} characters"})
    return value


# ---------------------------------------------------------------- descriptions (audit, exports)

def describe_line(line: StatementLine) -> dict:
    return {"line_id": line.id, "statement": line.statement.reference if line.statement else None,
            "row": line.row_number, "value_date": line.value_date, "mode": line.mode, "direction": line.direction,
            "amount": money.as_str(line.amount_paise), "utr": line.utr, "status": line.status}


def describe_match(match: ReconciliationMatch) -> dict:
    return {"match_id": match.id, "kind": match.kind, "status": match.status,
            "amount": money.as_str(match.amount_paise), "line": describe_line(match.line),
            "payments": [payments.describe(p) for p in match.payments]}


def _branch_of(match: ReconciliationMatch) -> int | None:
    branches = {p.branch_id for p in match.payments}
    return branches.pop() if len(branches) == 1 else None


# ---------------------------------------------------------------- import

@dataclass(frozen=True)
class MatchRun:
    considered: int = 0
    matched: int = 0
    mismatches: int = 0
    suggestions: int = 0
    superseded: int = 0


@dataclass(frozen=True)
class Imported:
    statement: BankStatement
    run: MatchRun


def bank_choices() -> list[tuple[str, str]]:
    return [(key, layout["label"]) for key, layout in current_app.config["BANK_LAYOUTS"].items()]


def _fingerprints(parsed: statements.ParsedStatement) -> list[str]:
    """Identify each line across files of the same account; identical lines in one file are told apart by
    their occurrence, so an overlapping export repeats exactly the same fingerprints."""
    seen: dict[str, int] = defaultdict(int)
    out = []
    for line in parsed.lines:
        facts = "|".join(str(v) for v in (parsed.bank, parsed.account_number or "", line.txn_date, line.value_date,
                                          line.narration, line.bank_reference or "", line.direction,
                                          line.amount_paise, line.balance_paise))
        seen[facts] += 1
        out.append(hashlib.sha256(f"{facts}|{seen[facts]}".encode()).hexdigest())
    return out


def import_statement(session: Session, actor, *, bank: str, data: bytes, filename: str) -> Imported:
    _require(actor)
    layouts = current_app.config["BANK_LAYOUTS"]
    bank = (bank or "").strip().upper()
    if bank not in layouts:
        raise ValidationError("Choose the bank the statement comes from.",
                              fields={"bank": f"must be one of {', '.join(layouts)}"})
    filename = (filename or "statement").strip()[-255:] or "statement"
    _serialise(session)
    digest = hashlib.sha256(data or b"").hexdigest()
    _refuse_same_file(session, digest)
    parsed = statements.read_statement(data, bank, layouts[bank], max_lines=current_app.config["STATEMENT_MAX_LINES"])
    fingerprints = _fingerprints(parsed)
    known = set()
    for start in range(0, len(fingerprints), 500):
        known |= set(session.scalars(select(StatementLine.fingerprint).where(
            StatementLine.fingerprint.in_(fingerprints[start:start + 500]))))
    fresh = [(line, fp) for line, fp in zip(parsed.lines, fingerprints) if fp not in known]
    if not fresh:
        raise Conflict("Every line of this file was imported before (an overlapping export); nothing is new.",
                       fields={"file": "all lines already imported"}, code="nothing_new")
    warnings = list(parsed.warnings) + _gap_since_previous(session, parsed)
    if known:
        warnings.append(f"{len(known)} line(s) were already imported from an earlier statement of this account "
                        "(overlapping export) and were skipped")
    credits = [line for line, _ in fresh if line.direction == "CREDIT"]
    statement = BankStatement(
        reference=_new_reference(), bank=bank, account_number=parsed.account_number, filename=filename,
        file_format=parsed.file_format, sha256=digest, size_bytes=len(data), period_from=parsed.period_from,
        period_to=parsed.period_to, line_count=len(fresh), credit_count=len(credits),
        debit_count=len(fresh) - len(credits), credit_total_paise=sum(l.amount_paise for l in credits),
        debit_total_paise=sum(l.amount_paise for l, _ in fresh if l.direction == "DEBIT"),
        opening_balance_paise=parsed.opening_balance_paise, closing_balance_paise=parsed.closing_balance_paise,
        skipped_duplicates=len(known), warnings=json.dumps(warnings, ensure_ascii=False) if warnings else None,
        imported_by_id=_actor_id(actor))
    try:
        with session.begin_nested():
            session.add(statement)
            session.flush()
    except IntegrityError:
        _refuse_same_file(session, digest)
        raise
    session.execute(StatementLine.__table__.insert(), [{
        "statement_id": statement.id, "row_number": l.row_number, "txn_date": l.txn_date, "value_date": l.value_date,
        "narration": l.narration, "bank_reference": l.bank_reference, "utr": l.utr, "utr_source": l.utr_source,
        "mode": l.mode, "direction": l.direction, "amount_paise": l.amount_paise, "balance_paise": l.balance_paise,
        "fingerprint": fp, "status": "UNMATCHED" if l.direction == "CREDIT" else "DEBIT", "created_at": clock.now(),
    } for l, fp in fresh])
    _drop_days_after_commit(session, {l.value_date for l, _ in fresh})  # a core insert: no flush event sees it
    audit.record(session, actor, "reconciliation.statement_imported", "bank_statement", statement.reference,
                 after=describe_statement(statement) | {"warnings": warnings})
    run = run_matching(session, actor)
    return Imported(statement, run)


def describe_statement(statement: BankStatement) -> dict:
    return {"reference": statement.reference, "bank": statement.bank, "account_number": statement.account_number,
            "filename": statement.filename, "format": statement.file_format, "sha256": statement.sha256,
            "period_from": statement.period_from, "period_to": statement.period_to, "lines": statement.line_count,
            "credits": statement.credit_count, "credit_total": money.as_str(statement.credit_total_paise),
            "debits": statement.debit_count, "debit_total": money.as_str(statement.debit_total_paise),
            "skipped_duplicates": statement.skipped_duplicates}


def _refuse_same_file(session: Session, digest: str) -> None:
    existing = session.scalar(select(BankStatement).where(BankStatement.sha256 == digest))
    if existing is not None:
        who = existing.imported_by.username if existing.imported_by else "the system"
        raise Conflict(f"This file was already imported as statement {existing.reference} on "
                       f"{clock.to_ist(existing.created_at):%d %b %Y} by {who}.",
                       fields={"file": f"already imported as {existing.reference}"}, code="duplicate_statement")


def _gap_since_previous(session: Session, parsed: statements.ParsedStatement) -> list[str]:
    """The account's last imported closing balance should be this file's opening balance."""
    opening = parsed.opening_balance_paise
    if opening is None:
        return []
    previous = session.scalar(
        select(BankStatement).where(BankStatement.bank == parsed.bank,
                                    BankStatement.account_number.is_(None) if parsed.account_number is None
                                    else BankStatement.account_number == parsed.account_number,
                                    BankStatement.period_to < parsed.lines[0].value_date,
                                    BankStatement.closing_balance_paise.is_not(None))
        .order_by(BankStatement.period_to.desc(), BankStatement.id.desc()).limit(1))
    if previous is None or previous.closing_balance_paise == opening:
        return []
    return [f"the opening balance {money.format_inr(opening)} does not follow statement {previous.reference}'s "
            f"closing balance {money.format_inr(previous.closing_balance_paise)} (to {previous.period_to:%d %b %Y}): "
            f"a gap of {money.format_inr(opening - previous.closing_balance_paise)}"]


# ---------------------------------------------------------------- matching

def compatible_modes(line_mode: str, payment_mode: str) -> bool:
    """Whether a payment of this mode can be a suggestion for a bank line of that mode."""
    if line_mode == "CASH":
        return payment_mode == "CASH"
    if line_mode == "CHEQUE":
        return payment_mode == "CHEQUE"
    if line_mode in ELECTRONIC:
        return payment_mode in ELECTRONIC
    return payment_mode != "CASH"


def _pending_reversal_ids(session: Session, payment_ids: Iterable[int]) -> set[int]:
    ids = list(set(payment_ids))
    found: set[int] = set()
    for start in range(0, len(ids), 500):
        found |= set(session.scalars(
            select(Reversal.payment_id).join(Approval, Approval.reversal_id == Reversal.id)
            .where(Reversal.payment_id.in_(ids[start:start + 500]), Approval.status == "PENDING")))
    return found


def _in_open_mismatch_ids(session: Session) -> set[int]:
    return set(session.scalars(
        select(ReconciliationMatchPayment.payment_id).join(ReconciliationMatch)
        .where(ReconciliationMatch.status == "MISMATCH")))


def _new_match(session: Session, actor, line: StatementLine, kind: str, status: str, chosen: list[Payment],
               note: str | None = None) -> ReconciliationMatch:
    match = ReconciliationMatch(line=line, kind=kind, status=status, amount_paise=sum(p.amount_paise for p in chosen),
                                note=note, created_by_id=_actor_id(actor))
    match.items = [ReconciliationMatchPayment(payment=p) for p in chosen]
    session.add(match)
    session.flush()
    return match


def run_matching(session: Session, actor) -> MatchRun:
    """Match every open bank credit: UTR first (confirmed or a mismatch), then suggestions."""
    _require(actor)
    _serialise(session)
    window = timedelta(days=current_app.config["RECON_WINDOW_DAYS"])
    lines = list(session.scalars(
        select(StatementLine).where(StatementLine.direction == "CREDIT",
                                    StatementLine.status.in_(("UNMATCHED", "MISMATCH")))
        .order_by(StatementLine.value_date, StatementLine.id)))
    if not lines:
        return MatchRun()
    line_ids = [l.id for l in lines]
    history: dict[int, list[ReconciliationMatch]] = defaultdict(list)
    for start in range(0, len(line_ids), 500):
        for m in session.scalars(select(ReconciliationMatch).where(
                ReconciliationMatch.line_id.in_(line_ids[start:start + 500]))):
            history[m.line_id].append(m)
    utrs = sorted({l.utr for l in lines if l.utr})
    by_utr: dict[str, Payment] = {}
    for start in range(0, len(utrs), 500):
        for p in session.scalars(select(Payment).where(Payment.utr.in_(utrs[start:start + 500]),
                                                       Payment.status.not_in(payments.RELEASED_STATUSES))):
            by_utr[p.utr] = p
    low = min(l.value_date for l in lines) - window
    high = max(l.value_date for l in lines) + window
    on_bank_lines = select(StatementLine.utr).where(StatementLine.direction == "CREDIT",
                                                    StatementLine.utr.is_not(None))
    candidates = list(session.scalars(
        select(Payment).where(Payment.status == "POSTED", Payment.reconciled_at.is_(None),
                              Payment.value_date.between(low, high),
                              or_(Payment.utr.is_(None), Payment.utr.not_in(on_bank_lines)))
        .order_by(Payment.value_date, Payment.id)))
    by_amount: dict[int, list[Payment]] = defaultdict(list)
    cash_groups: dict[tuple, list[Payment]] = defaultdict(list)
    for p in candidates:
        by_amount[p.amount_paise].append(p)
        if p.mode == "CASH":
            cash_groups[(p.recorded_by_id, p.value_date)].append(p)
    blocked = _pending_reversal_ids(session, [p.id for p in candidates] + [p.id for p in by_utr.values()])
    blocked |= _in_open_mismatch_ids(session)
    taken: set[int] = set()
    counts = defaultdict(int)
    counts["considered"] = len(lines)

    def free(p: Payment) -> bool:
        return p.status == "POSTED" and p.reconciled_at is None and p.id not in blocked and p.id not in taken

    def seen(line: StatementLine, ids: set[int], kind: str | None = None) -> bool:
        return any({i.payment_id for i in m.items} == ids and (kind is None or m.kind == kind
                                                                or m.status in ("DISMISSED", "UNRECONCILED"))
                   for m in history[line.id])

    for line in lines:
        # Stale suggestions (a payment reversed, reconciled elsewhere, …) are superseded.
        for m in history[line.id]:
            if m.status == "SUGGESTED" and not all(free(p) for p in m.payments):
                m.status, m.decided_at, m.note = "SUPERSEDED", clock.now(), "a payment is no longer available"
                counts["superseded"] += 1
        if line.status == "MISMATCH":
            open_mismatch = next((m for m in history[line.id] if m.status == "MISMATCH"), None)
            paid = open_mismatch.payments[0] if open_mismatch and open_mismatch.payments else None
            if paid is not None and paid.status == "POSTED" and paid.reconciled_at is None:
                taken.add(paid.id)
                continue  # still a mismatch: someone must correct the payment or dismiss the item
            if open_mismatch is not None:
                open_mismatch.status, open_mismatch.decided_at = "SUPERSEDED", clock.now()
                open_mismatch.note = "the payment is no longer posted"
                counts["superseded"] += 1
            session.flush()
            line.status = "UNMATCHED"
            session.flush()
        if line.utr:
            payment = by_utr.get(line.utr)
            if payment is not None:
                if free(payment) and not seen(line, {payment.id}, "UTR"):
                    if payment.amount_paise == line.amount_paise:
                        match = _new_match(session, actor, line, "UTR", "SUGGESTED", [payment])
                        _confirm(session, actor, match, automatic=True)
                        taken.add(payment.id)
                        counts["matched"] += 1
                    else:
                        match = _new_match(session, actor, line, "UTR", "MISMATCH", [payment], note=(
                            f"the bank credited {money.format_inr(line.amount_paise)}; payment {payment.reference} "
                            f"is for {money.format_inr(payment.amount_paise)}"))
                        line.status = "MISMATCH"
                        session.flush()
                        taken.add(payment.id)
                        counts["mismatches"] += 1
                        audit.record(session, actor, "reconciliation.mismatch_found", "reconciliation_match",
                                     match.id, after=describe_match(match), branch_id=payment.branch_id)
                continue  # the UTR belongs to a payment: no guessing by amount
        for payment in by_amount.get(line.amount_paise, ()):
            if (free(payment) and abs((payment.value_date - line.value_date).days) <= window.days
                    and compatible_modes(line.mode, payment.mode) and not seen(line, {payment.id})):
                history[line.id].append(_new_match(session, actor, line, "AMOUNT_DATE", "SUGGESTED", [payment]))
                counts["suggestions"] += 1
        if line.mode == "CASH":
            for (_, collected_on), group in cash_groups.items():
                if not line.value_date - window <= collected_on <= line.value_date:
                    continue
                group = [p for p in group if free(p)]
                ids = {p.id for p in group}
                if (len(group) > 1 and sum(p.amount_paise for p in group) == line.amount_paise
                        and not seen(line, ids)):
                    history[line.id].append(_new_match(session, actor, line, "CASH_DEPOSIT", "SUGGESTED", group))
                    counts["suggestions"] += 1
    session.flush()
    run = MatchRun(**counts)
    audit.record(session, actor, "reconciliation.matching_run", "reconciliation", "matching",
                 after={"considered": run.considered, "matched": run.matched, "mismatches": run.mismatches,
                        "suggestions": run.suggestions, "superseded": run.superseded})
    return run


# ---------------------------------------------------------------- confirming, dismissing, matching by hand

def _lock_loans(session: Session, chosen: list[Payment]) -> None:
    """Take the loans' row locks, in id order: the same lock reversal requests and postings take."""
    ids = sorted({p.loan_id for p in chosen})
    if ids and session.get_bind().dialect.name == "postgresql":
        session.execute(select(Loan.id).where(Loan.id.in_(ids)).order_by(Loan.id).with_for_update())
    for p in chosen:
        session.refresh(p, ["status", "reconciled_at"])


def _check_confirmable(session: Session, line: StatementLine, chosen: list[Payment], *, field_name="payments") -> None:
    if line.direction != "CREDIT":
        raise Conflict("A debit line is never matched to collections.", code="debit_line")
    if line.status != "UNMATCHED":
        raise Conflict(f"Bank line {line.id} is {line.status.lower()}; only an unmatched credit can be matched.",
                       code="line_not_open")
    if not chosen:
        raise ValidationError("Choose the payment(s) this credit pays.", fields={field_name: "choose at least one"})
    problems = []
    pending = _pending_reversal_ids(session, [p.id for p in chosen])
    mismatched = _in_open_mismatch_ids(session)
    for p in chosen:
        if p.status != "POSTED":
            problems.append(f"{p.reference} is {p.status.replace('_', ' ').lower()}, not posted")
        elif p.reconciled_at is not None:
            problems.append(f"{p.reference} is already reconciled")
        elif p.id in pending:
            problems.append(f"{p.reference} has a reversal waiting for approval")
        elif p.id in mismatched:
            problems.append(f"{p.reference} is in an open mismatch")
    total = sum(p.amount_paise for p in chosen)
    if total != line.amount_paise:
        problems.append(f"the payments add up to {money.format_inr(total)}, the bank credited "
                        f"{money.format_inr(line.amount_paise)}")
    if problems:
        raise Conflict("These cannot be matched: " + "; ".join(problems) + ".", fields={field_name: "; ".join(problems)},
                       code="not_matchable")


def _confirm(session: Session, actor, match: ReconciliationMatch, *, automatic: bool) -> ReconciliationMatch:
    """SUGGESTED → CONFIRMED, then lock the payments and the line (in that order: the triggers check it)."""
    now = clock.now()
    match.status, match.decided_by_id, match.decided_at = "CONFIRMED", _actor_id(actor), now
    session.flush()
    session.expire(match, ["decided_by"])
    for p in match.payments:
        p.reconciled_at = now
    session.flush()
    match.line.status = "MATCHED"
    session.flush()
    ids = [p.id for p in match.payments]
    others = session.scalars(
        select(ReconciliationMatch).where(
            ReconciliationMatch.status == "SUGGESTED", ReconciliationMatch.id != match.id,
            or_(ReconciliationMatch.line_id == match.line_id,
                ReconciliationMatch.id.in_(select(ReconciliationMatchPayment.match_id)
                                           .where(ReconciliationMatchPayment.payment_id.in_(ids)))))).all()
    for other in others:
        other.status, other.decided_at, other.note = "SUPERSEDED", now, f"match {match.id} was confirmed"
    session.flush()
    action = "reconciliation.matched_automatically" if automatic else "reconciliation.match_confirmed"
    audit.record(session, actor, action, "reconciliation_match", match.id,
                 before={"status": "SUGGESTED"}, after=describe_match(match) | {"superseded": [o.id for o in others]},
                 branch_id=_branch_of(match))
    return match


def get_match(session: Session, actor, match_id, *, lock: bool = False) -> ReconciliationMatch:
    return _by_id(session, actor, ReconciliationMatch, match_id, "match", lock=lock)


def confirm(session: Session, actor, match_id) -> ReconciliationMatch:
    """A finance user confirms a suggestion: the payments become reconciled and locked."""
    _require(actor)
    _serialise(session)
    match = get_match(session, actor, match_id, lock=True)
    if match.status != "SUGGESTED":
        raise Conflict(f"Suggestion {match.id} is {match.status.lower()}; only a suggestion can be confirmed.",
                       code="not_a_suggestion")
    _lock_loans(session, match.payments)
    _check_confirmable(session, match.line, match.payments)
    return _confirm(session, actor, match, automatic=False)


def dismiss(session: Session, actor, match_id, reason: str = "") -> ReconciliationMatch:
    """Set aside a suggestion (reason optional) or a mismatch (reason required: the line goes back to the
    unmatched queue and the pair is never proposed again)."""
    _require(actor)
    _serialise(session)
    match = get_match(session, actor, match_id, lock=True)
    if match.status not in ("SUGGESTED", "MISMATCH"):
        raise Conflict(f"Match {match.id} is {match.status.lower()}; only a suggestion or a mismatch can be dismissed.",
                       code="not_dismissable")
    was = match.status
    note = _reason(reason, required=was == "MISMATCH")
    match.status, match.decided_by_id, match.decided_at, match.note = "DISMISSED", _actor_id(actor), clock.now(), \
        note or match.note
    session.flush()
    session.expire(match, ["decided_by"])
    if was == "MISMATCH":
        match.line.status = "UNMATCHED"
        session.flush()
    audit.record(session, actor, "reconciliation.mismatch_dismissed" if was == "MISMATCH"
                 else "reconciliation.suggestion_dismissed", "reconciliation_match", match.id,
                 before={"status": was}, after=describe_match(match) | {"reason": note}, branch_id=_branch_of(match))
    return match


def get_line(session: Session, actor, line_id, *, lock: bool = False) -> StatementLine:
    return _by_id(session, actor, StatementLine, line_id, "bank line", lock=lock)


def match_by_hand(session: Session, actor, line_id, references: str) -> ReconciliationMatch:
    """Finance names the payment(s) a credit pays (e.g. outside the suggestion window): confirmed at once,
    with the same checks as a suggestion."""
    _require(actor)
    _serialise(session)
    line = get_line(session, actor, line_id, lock=True)
    wanted = [r for r in dict.fromkeys(payments.normalise_reference(r) for r in
                                       (references or "").replace(",", " ").split()) if r]
    if not wanted:
        raise ValidationError("Name the payment(s) this credit pays.", fields={"payments": "is required"})
    found = {p.reference: p for p in session.scalars(select(Payment).where(Payment.reference.in_(wanted)))}
    unknown = [r for r in wanted if r not in found]
    if unknown:
        raise ValidationError("Unknown payment reference(s).", fields={"payments": f"no payment {', '.join(unknown)}"})
    chosen = [found[r] for r in wanted]
    _lock_loans(session, chosen)
    _check_confirmable(session, line, chosen)
    match = _new_match(session, actor, line, "MANUAL", "SUGGESTED", chosen)
    return _confirm(session, actor, match, automatic=False)


# ---------------------------------------------------------------- a bank credit becomes a payment

def payment_from_line(session: Session, actor, line_id, *, loan_number: str, mode: str | None = None):
    """Book an unmatched credit as a payment on a loan, with the bank line as evidence, and match it.

    Through `payments.record_payment` like any payment (finance may record payments): amount, value date
    and UTR come from the line, so booking the same credit twice is refused by the UTR rule. A value date
    older than the backdating threshold waits for a manager like any backdated payment; once approved, the
    next matching run matches it by UTR.
    """
    _require(actor)
    _serialise(session)
    line = get_line(session, actor, line_id, lock=True)
    if line.direction != "CREDIT" or line.status != "UNMATCHED":
        raise Conflict(f"Bank line {line.id} is {line.status.lower()}; only an unmatched credit can become a payment.",
                       code="line_not_open")
    if not line.utr:
        raise ValidationError("This credit has no UTR.", fields={
            "line": "has no UTR to book it by; record the payment on the loan and match it by hand"})
    mode = (mode or line.mode or "").strip().upper()
    if mode not in ELECTRONIC:
        raise ValidationError("Choose how the money came.", fields={"mode": f"must be one of {', '.join(ELECTRONIC)}"})
    number = (loan_number or "").strip().upper()
    if not number:
        raise ValidationError("Name the loan.", fields={"loan_number": "is required"})
    booked = payments.record_payment(session, actor, number, {
        "amount": money.as_str(line.amount_paise), "mode": mode, "reference": line.utr,
        "value_date": line.value_date.isoformat()})
    match = None
    if booked.posted:
        match = _new_match(session, actor, line, "FROM_LINE", "SUGGESTED", [booked.payment])
        _confirm(session, actor, match, automatic=False)
    audit.record(session, actor, "reconciliation.payment_from_line", "statement_line", line.id,
                 after={"line": describe_line(line), "payment": payments.describe(booked.payment),
                        "match_id": match.id if match else None,
                        "waiting_for_approval": not booked.posted}, branch_id=booked.payment.branch_id)
    return booked, match


# ---------------------------------------------------------------- unreconcile (maker-checker)

def request_unreconcile(session: Session, actor, match_id, reason: str) -> UnreconcileRequest:
    _require(actor)
    _serialise(session)
    match = get_match(session, actor, match_id, lock=True)
    if match.status != "CONFIRMED":
        raise Conflict(f"Match {match.id} is {match.status.lower()}; only a confirmed match can be unreconciled.",
                       code="not_confirmed")
    note = _reason(reason, required=True)
    pending = session.scalar(select(UnreconcileRequest).where(UnreconcileRequest.match_id == match.id,
                                                              UnreconcileRequest.status == "PENDING"))
    if pending is not None:
        raise Conflict(f"An unreconcile of match {match.id} is already waiting (request {pending.id}).",
                       code="already_requested")
    request = UnreconcileRequest(match=match, reason=note, maker_id=_actor_id(actor))
    session.add(request)
    session.flush()
    audit.record(session, actor, "reconciliation.unreconcile_requested", "reconciliation_match", match.id,
                 after={"request_id": request.id, "reason": note, "match": describe_match(match)},
                 branch_id=_branch_of(match))
    return request


def get_request(session: Session, actor, request_id, *, lock: bool = False) -> UnreconcileRequest:
    return _by_id(session, actor, UnreconcileRequest, request_id, "unreconcile request", lock=lock)


def decide_unreconcile(session: Session, actor, request_id, *, approve: bool, reason: str) -> UnreconcileRequest:
    """A second finance user approves (the match is released, its payments unlocked, the line unmatched)
    or rejects. The maker never decides their own request (here and a CHECK constraint)."""
    _require(actor)
    _serialise(session)
    request = get_request(session, actor, request_id, lock=True)
    if request.status != "PENDING":
        raise Conflict(f"Unreconcile request {request.id} was already {request.status.lower()}.",
                       code="already_decided")
    if request.maker_id == _actor_id(actor):
        raise Forbidden(f"Unreconcile request {request.id}: you asked for it; another finance user must decide.")
    note = _reason(reason, required=True)
    request.status = "APPROVED" if approve else "REJECTED"
    request.checker_id, request.decision_reason, request.decided_at = _actor_id(actor), note, clock.now()
    session.flush()
    session.expire(request, ["checker"])
    match = request.match
    before = describe_match(match)
    if approve:
        match.status = "UNRECONCILED"
        session.flush()
        for p in match.payments:
            p.reconciled_at = None
        session.flush()
        match.line.status = "UNMATCHED"
        session.flush()
    audit.record(session, actor, f"reconciliation.unreconcile_{request.status.lower()}", "reconciliation_match",
                 match.id, before=before,
                 after={"request_id": request.id, "reason": note, "maker_id": request.maker_id,
                        "match": describe_match(match)}, branch_id=_branch_of(match))
    return request


def decidable(actor, request: UnreconcileRequest) -> bool:
    return request.status == "PENDING" and request.maker_id != _actor_id(actor)


# ---------------------------------------------------------------- figures: the dashboard and the close

@dataclass
class Figures:
    system_count: int = 0
    system_paise: int = 0
    reconciled_count: int = 0
    reconciled_paise: int = 0
    bank_count: int = 0
    bank_paise: int = 0
    matched_count: int = 0
    matched_paise: int = 0
    mismatch_count: int = 0
    mismatch_paise: int = 0
    unmatched_count: int = 0
    unmatched_paise: int = 0

    @property
    def system_unmatched_count(self) -> int:
        return self.system_count - self.reconciled_count

    @property
    def system_unmatched_paise(self) -> int:
        return self.system_paise - self.reconciled_paise

    @property
    def difference_paise(self) -> int:
        """Credited in the bank minus collected in the system."""
        return self.bank_paise - self.system_paise

    @property
    def empty(self) -> bool:
        return not (self.system_count or self.bank_count)

    def add(self, other: "Figures") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


DASHBOARD_MODES = ("CASH", "UPI", "NEFT", "RTGS", "IMPS", "CHEQUE", "OTHER")


@dataclass
class DayRow:
    day: date
    by_mode: list[tuple[str, Figures]]
    total: Figures
    close: ReconciliationDay | None = None
    covered: bool = False

    @property
    def closed_figures(self) -> dict | None:
        return json.loads(self.close.summary)["total"] if self.close else None

    @property
    def changed_since_close(self) -> bool:
        return bool(self.close) and self.closed_figures != self.total.as_dict()


@dataclass
class Dashboard:
    date_from: date
    date_to: date
    days: list[DayRow]
    total: Figures
    by_mode: list[tuple[str, Figures]]
    oldest_bank_unmatched: date | None
    oldest_system_unmatched: date | None
    open_suggestions: int
    open_mismatches: int
    pending_unreconciles: int
    coverage_start: date | None
    today: date = field(default_factory=clock.today_ist)

    def age(self, day: date | None) -> int | None:
        return (self.today - day).days if day else None


def parse_range(args: Mapping[str, str], *, default_days: int = 14) -> tuple[date, date]:
    today = clock.today_ist()
    values = loans.parse_dates(args)
    date_to = values.get("date_to") or today
    date_from = values.get("date_from") or date_to - timedelta(days=default_days - 1)
    if date_from > date_to:
        raise ValidationError("The dates are not valid.", fields={"date_from": "must not be after date_to"})
    if (date_to - date_from).days >= MAX_RANGE_DAYS:
        raise ValidationError("The range is too long.", fields={"date_from": f"at most {MAX_RANGE_DAYS} days at a time"})
    return date_from, date_to


def _summed_cells(session: Session, days: list[date]) -> dict[date, dict[str, Figures]]:
    """The figures of `days` by mode, from the database: one payments query and one bank-lines query."""
    cells: dict[date, dict[str, Figures]] = defaultdict(lambda: defaultdict(Figures))
    reconciled = Payment.reconciled_at.is_not(None)
    for day, mode, count, total, rec_count, rec_total in session.execute(
            select(Payment.value_date, Payment.mode, func.count(), func.coalesce(func.sum(Payment.amount_paise), 0),
                   func.count(Payment.reconciled_at),
                   func.coalesce(func.sum(case((reconciled, Payment.amount_paise), else_=0)), 0))
            .where(Payment.status == "POSTED", Payment.value_date.in_(days))
            .group_by(Payment.value_date, Payment.mode)):
        cell = cells[day][mode]
        cell.system_count, cell.system_paise = count, int(total)
        cell.reconciled_count, cell.reconciled_paise = rec_count, int(rec_total)
    for day, mode, status, count, total in session.execute(
            select(StatementLine.value_date, StatementLine.mode, StatementLine.status, func.count(),
                   func.coalesce(func.sum(StatementLine.amount_paise), 0))
            .where(StatementLine.direction == "CREDIT", StatementLine.value_date.in_(days))
            .group_by(StatementLine.value_date, StatementLine.mode, StatementLine.status)):
        cell = cells[day][mode]
        cell.bank_count += count
        cell.bank_paise += int(total)
        prefix = {"MATCHED": "matched", "MISMATCH": "mismatch", "UNMATCHED": "unmatched"}[status]
        setattr(cell, f"{prefix}_count", getattr(cell, f"{prefix}_count") + count)
        setattr(cell, f"{prefix}_paise", getattr(cell, f"{prefix}_paise") + int(total))
    return {day: dict(by_mode) for day, by_mode in cells.items()}


def _day_key(day: date) -> str:
    return cache.key_of("reconciliation.day", day)


def _cells(session: Session, date_from: date, date_to: date) -> dict[date, dict[str, Figures]]:
    """The figures of each day of the range by mode. A day before today is kept in the aggregate cache (past
    days rarely change, and every change drops them: `_drop_changed_days`); today and the days not kept are
    summed together."""
    days = [date_from + timedelta(days=n) for n in range((date_to - date_from).days + 1)]
    today = clock.today_ist()
    keys = {day: _day_key(day) for day in days if day < today}
    kept = cache.get_many(list(keys.values()))
    cells = {day: kept[key] for day, key in keys.items() if key in kept}
    missing = [day for day in days if day not in cells]
    if missing:
        summed = _summed_cells(session, missing)
        cells.update(summed)
        cache.set_many({keys[day]: summed.get(day, {}) for day in missing if day in keys})
    return cells


def _drop_days_after_commit(session: Session, days: set[date]) -> None:
    cache.delete_after_commit(session, [_day_key(day) for day in days])


@event.listens_for(Session, "after_flush")  # every session of the process: see webapp/cache.py
def _drop_changed_days(session: Session, _flush_context) -> None:
    """A payment or bank line written (inserted, updated or deleted) changes its value date's figures, and
    those of the date it had before: they are dropped from the cache when the transaction commits."""
    if not cache.enabled():
        return  # nothing is kept
    days = set()
    for row in (*session.new, *session.dirty, *session.deleted):
        if isinstance(row, (Payment, StatementLine)):
            # Still the pre-flush history here: the value date now and, when it changed, the one before.
            days.update(inspect(row).attrs.value_date.history.sum() or [row.value_date])
    _drop_days_after_commit(session, days)


def _covered_days(session: Session, date_from: date, date_to: date) -> set[date]:
    covered = set()
    for start, end in session.execute(select(BankStatement.period_from, BankStatement.period_to).where(
            BankStatement.period_from <= date_to, BankStatement.period_to >= date_from)):
        day = max(start, date_from)
        while day <= min(end, date_to):
            covered.add(day)
            day += timedelta(days=1)
    return covered


def coverage_start(session: Session) -> date | None:
    """The first day any imported statement covers: payments before it cannot have a bank line here."""
    return session.scalar(select(func.min(BankStatement.period_from)))


def dashboard(session: Session, actor, date_from: date, date_to: date) -> Dashboard:
    """Per day and per mode: collected in the system vs credited in the bank, matched and unmatched, mismatches;
    a fixed number of queries whatever the data."""
    _require(actor)
    cells = _cells(session, date_from, date_to)
    closes = {c.business_date: c for c in session.scalars(
        select(ReconciliationDay).where(ReconciliationDay.business_date.between(date_from, date_to)))}
    covered = _covered_days(session, date_from, date_to)
    days, total, by_mode = [], Figures(), {mode: Figures() for mode in DASHBOARD_MODES}
    day = date_to
    while day >= date_from:
        of_day = cells.get(day, {})
        modes = [(mode, of_day[mode]) for mode in DASHBOARD_MODES if mode in of_day]
        row_total = Figures()
        for mode, figures in modes:
            row_total.add(figures)
            by_mode[mode].add(figures)
        total.add(row_total)
        days.append(DayRow(day, modes, row_total, closes.get(day), day in covered))
        day -= timedelta(days=1)
    start = coverage_start(session)
    oldest_bank = session.scalar(select(func.min(StatementLine.value_date)).where(
        StatementLine.status == "UNMATCHED"))
    system_open = [Payment.status == "POSTED", Payment.reconciled_at.is_(None)]
    if start:
        system_open.append(Payment.value_date >= start)
    oldest_system = session.scalar(select(func.min(Payment.value_date)).where(*system_open)) if start else None
    counts = dict(session.execute(select(ReconciliationMatch.status, func.count()).where(
        ReconciliationMatch.status.in_(("SUGGESTED", "MISMATCH"))).group_by(ReconciliationMatch.status)).all())
    pending = session.scalar(select(func.count()).select_from(UnreconcileRequest).where(
        UnreconcileRequest.status == "PENDING"))
    return Dashboard(date_from, date_to, days, total, [(m, f) for m, f in by_mode.items() if not f.empty],
                     oldest_bank, oldest_system, counts.get("SUGGESTED", 0), counts.get("MISMATCH", 0), pending or 0,
                     start)


def day_figures(session: Session, day: date) -> tuple[Figures, dict[str, Figures]]:
    """The day's figures from the database (never the cache: a close keeps them)."""
    of_day = _summed_cells(session, [day]).get(day, {})
    total = Figures()
    by_mode = {}
    for mode in sorted(of_day, key=lambda m: DASHBOARD_MODES.index(m) if m in DASHBOARD_MODES else 99):
        total.add(of_day[mode])
        by_mode[mode] = of_day[mode]
    return total, by_mode


def close_day(session: Session, actor, day_text: str, note: str = "") -> ReconciliationDay:
    """Mark a business date reconciled. Refused while the date has an open mismatch (correct the payment or
    dismiss the item with a reason first), when no statement covers it, or when it is already closed.
    Unmatched items do not block: they stay in the queues with their age, and the close keeps the counts."""
    _require(actor)
    _serialise(session)
    try:
        day = loans.parse_date(day_text, not_after=clock.today_ist())
    except ValueError as problem:
        raise ValidationError("The date is not valid.", fields={"day": str(problem)}) from None
    note = _reason(note, required=False, name="note")
    existing = session.scalar(select(ReconciliationDay).where(ReconciliationDay.business_date == day))
    if existing is not None:
        raise Conflict(f"{day:%d %b %Y} was already closed by {existing.closed_by.name} at "
                       f"{clock.to_ist(existing.closed_at):%d %b %Y, %H:%M} IST.", code="already_closed")
    if day not in _covered_days(session, day, day):
        raise Conflict(f"No imported bank statement covers {day:%d %b %Y}; import it before closing the day.",
                       code="no_statement")
    mismatches = session.scalar(select(func.count()).select_from(StatementLine).where(
        StatementLine.status == "MISMATCH", StatementLine.value_date == day))
    if mismatches:
        raise Conflict(f"{day:%d %b %Y} has {mismatches} open mismatch(es): correct the payment (reverse and book "
                       "it again) or dismiss the mismatch with a reason, then close.", code="open_mismatches")
    total, by_mode = day_figures(session, day)
    suggestions = session.scalar(select(func.count()).select_from(ReconciliationMatch).join(StatementLine).where(
        ReconciliationMatch.status == "SUGGESTED", StatementLine.value_date == day))
    summary = {"total": total.as_dict(), "by_mode": {m: f.as_dict() for m, f in by_mode.items()},
               "open_suggestions": suggestions}
    closed = ReconciliationDay(business_date=day, closed_by_id=actor.id, summary=audit.canonical_json(summary),
                               note=note or None)
    try:
        with session.begin_nested():
            session.add(closed)
            session.flush()
    except IntegrityError:
        raise Conflict(f"{day:%d %b %Y} was closed by someone else just now.", code="already_closed") from None
    audit.record(session, actor, "reconciliation.day_closed", "reconciliation_day", day.isoformat(),
                 after=summary | {"note": note or None})
    return closed


# ---------------------------------------------------------------- lists

@dataclass(frozen=True)
class Band:
    key: str
    label: str
    low: int
    high: int | None


def bands() -> list[Band]:
    edges = current_app.config["RECON_AGEING_DAYS"]
    out, low = [], 0
    for high in edges:
        out.append(Band(f"{low}-{high}", f"{low}–{high} days", low, high))
        low = high + 1
    out.append(Band(f"{low}+", f"over {low - 1} days", low, None))
    return out


def _band_condition(column, band: Band, today: date):
    condition = column <= today - timedelta(days=band.low)
    if band.high is not None:
        condition = and_(condition, column >= today - timedelta(days=band.high))
    return condition


def _age_counts(session: Session, column, conditions: list) -> list[tuple[Band, int]]:
    today = clock.today_ist()
    all_bands = bands()
    labelled = case(*[(_band_condition(column, b, today), b.key) for b in all_bands], else_="future").label("band")
    inner = select(labelled).where(*conditions).subquery()
    counts = dict(session.execute(select(inner.c.band, func.count()).group_by(inner.c.band)).all())
    return [(b, counts.get(b.key, 0)) for b in all_bands]


@dataclass(frozen=True)
class ListFilters:
    status: str = ""
    mode: str = ""
    day: date | None = None
    date_from: date | None = None
    date_to: date | None = None
    age: str = ""
    statement: str = ""

    def params(self) -> dict:
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in self.__dict__.items() if v}


LINE_FILTER_STATUSES = ("UNMATCHED", "MATCHED", "MISMATCH", "DEBIT", "ALL")
PAYMENT_FILTER_STATES = ("UNMATCHED", "RECONCILED", "ALL")


def parse_list_filters(args: Mapping[str, str], *, statuses: tuple, modes: tuple, default_status: str) -> ListFilters:
    errors: dict[str, str] = {}
    status = (args.get("status") or default_status).strip().upper()
    if status not in statuses:
        errors["status"] = f"must be one of {', '.join(statuses)}"
    mode = (args.get("mode") or "").strip().upper()
    if mode and mode not in modes:
        errors["mode"] = f"must be one of {', '.join(modes)}"
    dates = {}
    for name in ("day", "date_from", "date_to"):
        raw = (args.get(name) or "").strip()
        if raw:
            try:
                dates[name] = loans.parse_date(raw)
            except ValueError as problem:
                errors[name] = str(problem)
    age = (args.get("age") or "").strip()
    if age and age not in {b.key for b in bands()}:
        errors["age"] = f"must be one of {', '.join(b.key for b in bands())}"
    statement = (args.get("statement") or "").strip().upper()[:16]
    if errors:
        raise ValidationError("The filters are not valid.", fields=errors)
    return ListFilters(status, mode, age=age, statement=statement, **dates)


def _date_conditions(column, filters: ListFilters) -> list:
    conditions = []
    if filters.day:
        conditions.append(column == filters.day)
    if filters.date_from:
        conditions.append(column >= filters.date_from)
    if filters.date_to:
        conditions.append(column <= filters.date_to)
    if filters.age:
        band = next(b for b in bands() if b.key == filters.age)
        conditions.append(_band_condition(column, band, clock.today_ist()))
    return conditions


def _line_conditions(filters: ListFilters, *, with_age: bool = True) -> list:
    conditions = []
    if filters.status != "ALL":
        conditions.append(StatementLine.status == filters.status)
    if filters.mode:
        conditions.append(StatementLine.mode == filters.mode)
    if filters.statement:
        conditions.append(StatementLine.statement_id.in_(
            select(BankStatement.id).where(BankStatement.reference == filters.statement)))
    without_age = ListFilters(**{**filters.__dict__, "age": ""}) if not with_age else filters
    return conditions + _date_conditions(StatementLine.value_date, without_age)


def bank_lines(session: Session, actor, filters: ListFilters, page: int, per_page: int) -> Page:
    """Bank lines, oldest value date first (the unmatched queue with ageing, or a dashboard drill-down)."""
    _require(actor)
    query = select(StatementLine).where(*_line_conditions(filters)).order_by(
        StatementLine.value_date, StatementLine.id)
    return paginate(session, query, page, per_page)


def bank_line_ageing(session: Session, filters: ListFilters) -> list[tuple[Band, int]]:
    return _age_counts(session, StatementLine.value_date, _line_conditions(filters, with_age=False))


def _payment_conditions(session: Session, filters: ListFilters, *, with_age: bool = True) -> list:
    conditions = [Payment.status == "POSTED"]
    if filters.status == "UNMATCHED":
        conditions.append(Payment.reconciled_at.is_(None))
        start = coverage_start(session)
        if start:
            conditions.append(Payment.value_date >= start)
    elif filters.status == "RECONCILED":
        conditions.append(Payment.reconciled_at.is_not(None))
    if filters.mode == "NONCASH":
        conditions.append(Payment.mode != "CASH")
    elif filters.mode:
        conditions.append(Payment.mode == filters.mode)
    without_age = ListFilters(**{**filters.__dict__, "age": ""}) if not with_age else filters
    return conditions + _date_conditions(Payment.value_date, without_age)


def system_payments(session: Session, actor, filters: ListFilters, page: int, per_page: int) -> Page:
    """Posted payments, oldest value date first: those without a bank line (the system-side queue, from the
    first day a statement covers), reconciled ones, or all."""
    _require(actor)
    query = select(Payment).where(*_payment_conditions(session, filters)).order_by(Payment.value_date, Payment.id)
    return paginate(session, query, page, per_page)


def payment_ageing(session: Session, filters: ListFilters) -> list[tuple[Band, int]]:
    return _age_counts(session, Payment.value_date, _payment_conditions(session, filters, with_age=False))


def matches_of_lines(session: Session, line_ids: Iterable[int]) -> dict[int, list[ReconciliationMatch]]:
    """Each line's suggestions, mismatch and confirmed match (one query, plus one for their payments)."""
    ids = list(set(line_ids))
    out: dict[int, list[ReconciliationMatch]] = defaultdict(list)
    if ids:
        for m in session.scalars(select(ReconciliationMatch).where(
                ReconciliationMatch.line_id.in_(ids),
                ReconciliationMatch.status.in_(("SUGGESTED", "MISMATCH", "CONFIRMED")))
                .order_by(ReconciliationMatch.id)).unique():
            out[m.line_id].append(m)
    return out


def matches_of_payments(session: Session, payment_ids: Iterable[int]) -> dict[int, list[ReconciliationMatch]]:
    ids = list(set(payment_ids))
    out: dict[int, list[ReconciliationMatch]] = defaultdict(list)
    if ids:
        rows = session.execute(
            select(ReconciliationMatchPayment.payment_id, ReconciliationMatch).join(ReconciliationMatch)
            .where(ReconciliationMatchPayment.payment_id.in_(ids),
                   ReconciliationMatch.status.in_(("SUGGESTED", "MISMATCH", "CONFIRMED")))
            .order_by(ReconciliationMatch.id)).unique().all()
        for payment_id, m in rows:
            out[payment_id].append(m)
    return out


MATCH_LIST_STATUSES = ("SUGGESTED", "MISMATCH", "CONFIRMED", "DISMISSED", "UNRECONCILED")


def match_list(session: Session, actor, status: str, page: int, per_page: int) -> Page:
    _require(actor)
    status = status if status in MATCH_LIST_STATUSES else "SUGGESTED"
    query = select(ReconciliationMatch).join(StatementLine).where(ReconciliationMatch.status == status)
    if status in ("SUGGESTED", "MISMATCH"):
        query = query.order_by(StatementLine.value_date, ReconciliationMatch.id)
    else:
        query = query.order_by(ReconciliationMatch.decided_at.desc(), ReconciliationMatch.id.desc())
    return paginate(session, query, page, per_page)


def statement_list(session: Session, actor, page: int, per_page: int) -> Page:
    _require(actor)
    return paginate(session, select(BankStatement).order_by(BankStatement.id.desc()), page, per_page)


def get_statement(session: Session, actor, reference: str) -> BankStatement:
    _require(actor)
    statement = session.scalar(select(BankStatement).where(
        BankStatement.reference == (reference or "").strip().upper()))
    if statement is None:
        raise NotFound(f"No statement {reference}.")
    return statement


def statement_status_counts(session: Session, statement: BankStatement) -> dict[str, int]:
    return dict(session.execute(select(StatementLine.status, func.count()).where(
        StatementLine.statement_id == statement.id).group_by(StatementLine.status)).all())


def warnings_of(statement: BankStatement) -> list[str]:
    return json.loads(statement.warnings) if statement.warnings else []


def line_history(session: Session, line: StatementLine) -> list[ReconciliationMatch]:
    return list(session.scalars(select(ReconciliationMatch).where(ReconciliationMatch.line_id == line.id)
                                .order_by(ReconciliationMatch.id)).unique())


def requests_of(session: Session, match_ids: Iterable[int]) -> dict[int, list[UnreconcileRequest]]:
    ids = list(set(match_ids))
    out: dict[int, list[UnreconcileRequest]] = defaultdict(list)
    if ids:
        for r in session.scalars(select(UnreconcileRequest).where(UnreconcileRequest.match_id.in_(ids))
                                 .order_by(UnreconcileRequest.id)).unique():
            out[r.match_id].append(r)
    return out


def unreconcile_list(session: Session, actor, status: str, page: int, per_page: int) -> Page:
    _require(actor)
    status = status if status in ("PENDING", "APPROVED", "REJECTED") else "PENDING"
    query = select(UnreconcileRequest).where(UnreconcileRequest.status == status)
    order = (UnreconcileRequest.created_at, UnreconcileRequest.id) if status == "PENDING" else \
        (UnreconcileRequest.decided_at.desc(), UnreconcileRequest.id.desc())
    return paginate(session, query.order_by(*order), page, per_page)


# ---------------------------------------------------------------- exports

def _safe(value):
    """Spreadsheet formula injection: text from a bank file never starts a formula in an export."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


SUMMARY_HEADER = ["Date", "Mode", "System payments", "System amount", "Reconciled payments", "Reconciled amount",
                  "System unmatched", "System unmatched amount", "Bank credits", "Bank amount", "Matched credits",
                  "Matched amount", "Mismatches", "Mismatch amount", "Unmatched credits", "Unmatched amount",
                  "Difference (bank − system)", "Closed by", "Closed at (IST)"]


def _figures_row(label_day, mode, f: Figures, close: ReconciliationDay | None) -> list:
    r = money.to_rupees
    return [label_day, mode, f.system_count, r(f.system_paise), f.reconciled_count, r(f.reconciled_paise),
            f.system_unmatched_count, r(f.system_unmatched_paise), f.bank_count, r(f.bank_paise), f.matched_count,
            r(f.matched_paise), f.mismatch_count, r(f.mismatch_paise), f.unmatched_count, r(f.unmatched_paise),
            r(f.difference_paise), close.closed_by.username if close else "",
            f"{clock.to_ist(close.closed_at):%Y-%m-%d %H:%M}" if close else ""]


def export_rows(session: Session, actor, what: str, args: Mapping[str, str]) -> tuple[str, list[str], list[list]]:
    """(title, header, rows) for the dashboard summary or a list, as on screen, without pagination."""
    _require(actor)
    if what == "summary":
        date_from, date_to = parse_range(args)
        board = dashboard(session, actor, date_from, date_to)
        rows = []
        for row in board.days:
            for mode, figures in row.by_mode:
                rows.append(_figures_row(row.day, mode, figures, row.close))
            rows.append(_figures_row(row.day, "ALL", row.total, row.close))
        rows.append(_figures_row("TOTAL", "ALL", board.total, None))
        return f"reconciliation {date_from} to {date_to}", SUMMARY_HEADER, rows
    if what == "bank":
        filters = parse_list_filters(args, statuses=LINE_FILTER_STATUSES, modes=LINE_MODES, default_status="UNMATCHED")
        lines = list(session.scalars(select(StatementLine).where(*_line_conditions(filters))
                                     .order_by(StatementLine.value_date, StatementLine.id).limit(EXPORT_LIMIT)))
        held = matches_of_lines(session, [l.id for l in lines])
        today = clock.today_ist()
        header = ["Statement", "Row", "Txn date", "Value date", "Mode", "Direction", "Amount", "UTR", "UTR from",
                  "Narration", "Status", "Age (days)", "Matched payments"]
        rows = [[l.statement.reference, l.row_number, l.txn_date, l.value_date, l.mode, l.direction,
                 money.to_rupees(l.amount_paise), l.utr or "", (l.utr_source or "").lower(), l.narration, l.status,
                 (today - l.value_date).days,
                 " ".join(p.reference for m in held.get(l.id, []) if m.status == "CONFIRMED" for p in m.payments)]
                for l in lines]
        return "bank lines", header, rows
    if what == "system":
        filters = parse_list_filters(args, statuses=PAYMENT_FILTER_STATES, modes=PAYMENT_MODES + ("NONCASH",),
                                     default_status="UNMATCHED")
        found = list(session.scalars(select(Payment).where(*_payment_conditions(session, filters))
                                     .order_by(Payment.value_date, Payment.id).limit(EXPORT_LIMIT)))
        today = clock.today_ist()
        header = ["Payment", "Loan", "Branch", "Value date", "Mode", "Amount", "UTR", "Cash receipt", "Recorded by",
                  "Reconciled", "Age (days)"]
        rows = [[p.reference, p.loan.loan_number, p.branch_id, p.value_date, p.mode, money.to_rupees(p.amount_paise),
                 p.utr or "", p.receipt_number or "", p.recorded_by.username if p.recorded_by else "",
                 "yes" if p.reconciled_at else "no", (today - p.value_date).days] for p in found]
        return "system payments", header, rows
    raise NotFound(f"No export {what}.")


def to_csv(header: list[str], rows: list[list]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_safe(v.isoformat() if isinstance(v, date) else v) for v in row])
    return buffer.getvalue().encode("utf-8-sig")


def to_xlsx(title: str, header: list[str], rows: list[list]) -> bytes:
    import openpyxl
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet(title="Reconciliation")
    sheet.append([title])
    bold = []
    for name in header:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = Font(bold=True)
        bold.append(cell)
    sheet.append(bold)
    for row in rows:
        out = []
        for value in row:
            cell = WriteOnlyCell(sheet, value=_safe(value))
            if isinstance(value, date):
                cell.number_format = "yyyy-mm-dd"
            elif hasattr(value, "quantize"):
                cell.number_format = "#,##0.00"
            out.append(cell)
        sheet.append(out)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
