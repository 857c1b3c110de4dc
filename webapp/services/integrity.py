"""The data integrity check (checklist 25): `kisht integrity check` and the daily job.

Checks, each a few set-based queries except the position check, which re-runs the per-loan ledger
(webapp/services/replay.py) for every active loan:

* orphans — rows pointing at a parent that is not there (SQLite enforces no foreign keys by default, and
  dayend_positions has none by design);
* duplicate references — a UTR or cash receipt booked twice among live payments, a payment reference twice;
* allocations — per posted payment, the money allocated never exceeds the payment net of approved
  reversals, and equals what a replay allocates; payments that are not posted have no allocations;
* paid ≤ due per instalment;
* positions — each loan's stored outstanding, overdue, DPD, class, bucket and status equal a replay's;
* the audit chain verifies.

Each run is a CheckRun row (kind INTEGRITY). A failure logs an ERROR on "kisht.integrity" and sets the
`kisht_integrity_last_run_ok` metric to 0 (ops/alerts.yml: KishtIntegrityCheckFailed).
"""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, selectinload

from webapp import clock
from webapp.models import Allocation, Approval, CheckRun, Loan, Payment, Reversal
from webapp.models.payments import RELEASED_STATUSES
from webapp.services import audit, ledger, replay

log = logging.getLogger("kisht.integrity")
MAX_EXAMPLES = 20

# (child table, column, parent table): every non-null value must name an existing parent row.
REFERENCES = (
    ("instalments", "loan_id", "loans"), ("payments", "loan_id", "loans"), ("payments", "borrower_id", "borrowers"),
    ("payments", "branch_id", "branches"), ("reversals", "payment_id", "payments"), ("approvals", "payment_id", "payments"),
    ("approvals", "reversal_id", "reversals"), ("allocations", "payment_id", "payments"),
    ("allocations", "loan_id", "loans"), ("allocations", "instalment_id", "instalments"),
    ("dayend_positions", "loan_id", "loans"), ("loans", "borrower_id", "borrowers"), ("loans", "branch_id", "branches"),
    ("shadow_rows", "import_id", "shadow_imports"), ("shadow_comparisons", "import_id", "shadow_imports"),
)


@dataclass
class Check:
    name: str
    label: str
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    count: int = 0

    def fail(self, problem: str) -> None:
        self.ok = False
        self.count += 1
        if len(self.problems) < MAX_EXAMPLES:
            self.problems.append(problem)


@dataclass
class Report:
    checks: list[Check]
    run: CheckRun | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def summary(self) -> str:
        failed = [c for c in self.checks if not c.ok]
        if not failed:
            return f"all {len(self.checks)} checks passed"
        return "; ".join(f"{c.label}: {c.count} problem(s)" for c in failed)


def _orphans(session: Session) -> Check:
    check = Check("orphans", "No orphaned records")
    for child, column, parent in REFERENCES:
        rows = session.execute(text(
            f"SELECT c.{column} FROM {child} c LEFT JOIN {parent} p ON p.id = c.{column} "
            f"WHERE c.{column} IS NOT NULL AND p.id IS NULL LIMIT {MAX_EXAMPLES}")).scalars().all()
        for value in rows:
            check.fail(f"{child}.{column} = {value} names no row of {parent}")
    return check


def _duplicates(session: Session) -> Check:
    check = Check("duplicates", "No duplicate payments")
    live = Payment.status.not_in(RELEASED_STATUSES)
    for label, columns, condition in (("UTR", (Payment.utr,), Payment.utr.is_not(None)),
                                      ("cash receipt", (Payment.branch_id, Payment.receipt_number),
                                       Payment.receipt_number.is_not(None))):
        for row in session.execute(select(*columns, func.count()).where(live, condition).group_by(*columns)
                                   .having(func.count() > 1)):
            check.fail(f"{label} {'/'.join(str(v) for v in row[:-1])} is booked {row[-1]} times")
    for reference, count in session.execute(select(Payment.reference, func.count()).group_by(Payment.reference)
                                            .having(func.count() > 1)):
        check.fail(f"payment reference {reference} is used {count} times")
    return check


def _instalments(session: Session) -> Check:
    check = Check("paid_le_due", "Paid ≤ due on every instalment")
    for loan_number, seq in session.execute(text(
            "SELECT l.loan_number, i.seq FROM instalments i JOIN loans l ON l.id = i.loan_id "
            "WHERE i.principal_paid_paise > i.principal_due_paise OR i.interest_paid_paise > i.interest_due_paise "
            "OR i.principal_paid_paise < 0 OR i.interest_paid_paise < 0 "
            f"LIMIT {MAX_EXAMPLES}")):
        check.fail(f"loan {loan_number} instalment {seq} is paid more than due")
    return check


def _ledger(session: Session) -> tuple[Check, Check]:
    """Allocations and stored positions against a replay of every loan (its own receipts, its schedule)."""
    allocations = Check("allocations", "Allocations add up to payments")
    positions = Check("positions", "Stored positions equal recomputed ones")
    reversed_paise = (select(func.coalesce(func.sum(Reversal.amount_paise), 0))
                      .join(Approval, Approval.reversal_id == Reversal.id)
                      .where(Reversal.payment_id == Payment.id, Approval.status == "APPROVED").scalar_subquery())
    payments = {pid: (reference, status, net) for pid, reference, status, net in session.execute(
        select(Payment.id, Payment.reference, Payment.status, Payment.amount_paise - reversed_paise))}
    stored = defaultdict(int)
    for pid, total in session.execute(select(Allocation.payment_id, func.sum(Allocation.amount_paise))
                                      .group_by(Allocation.payment_id)):
        stored[pid] = total
    for pid, total in stored.items():
        if pid not in payments:
            continue  # an orphan; reported by the orphan check
        reference, status, net = payments[pid]
        if status != "POSTED" and total:
            allocations.fail(f"payment {reference} is {status} but has ₹{total / 100:.2f} allocated")
        elif total > max(net, 0):
            allocations.fail(f"payment {reference}: allocated {total} paise, more than its {net} paise")
    receipts = defaultdict(list)
    for loan_id, pid, value_date, net in session.execute(
            select(Payment.loan_id, Payment.id, Payment.value_date, Payment.amount_paise - reversed_paise)
            .where(Payment.status == "POSTED").order_by(Payment.id)):
        if net > 0:
            receipts[loan_id].append(ledger.Receipt(pid, value_date, net))
    from flask import current_app

    config = current_app.config
    today = clock.today_ist()
    for loan in session.scalars(select(Loan).options(selectinload(Loan.instalments)).order_by(Loan.id)):
        as_of = loan.position_date or clock.last_business_date()
        position = ledger.compute_position(replay.schedule_of(loan), receipts.get(loan.id, []), as_of,
                                           receipts_until=max(today, as_of), order=config["ALLOCATION_ORDER"],
                                           buckets=config["BUCKETS"])
        expected = {"outstanding_principal_paise": position.outstanding_principal_paise,
                    "overdue_paise": position.overdue_paise, "overdue_since": position.overdue_since, "asset_class": position.asset_class,
                    "bucket": position.bucket, "status": "CLOSED" if position.closed else "ACTIVE"}
        wrong = {k: (getattr(loan, k), v) for k, v in expected.items() if getattr(loan, k) != v}
        if wrong:
            positions.fail(f"loan {loan.loan_number} (as of {as_of}): " + ", ".join(
                f"{k} stored {s} but recomputed {r}" for k, (s, r) in sorted(wrong.items())))
        replayed = defaultdict(int)
        for a in position.allocations:
            replayed[a.key] += a.amount_paise
        for r in receipts.get(loan.id, []):
            if stored.get(r.key, 0) != replayed.get(r.key, 0):
                allocations.fail(f"payment {payments[r.key][0]} on loan {loan.loan_number}: {stored.get(r.key, 0)} paise "
                                 f"allocated, a replay allocates {replayed.get(r.key, 0)}")
    return allocations, positions


def _audit_chain(session: Session) -> Check:
    check = Check("audit_chain", "Audit chain verifies")
    report = audit.verify_chain(session)
    if not report.ok:
        check.fail(report.problem or "the chain does not verify")
    return check


def run_checks(session: Session) -> Report:
    allocations, positions = _ledger(session)
    return Report([_orphans(session), _duplicates(session), allocations, _instalments(session), positions,
                   _audit_chain(session)])


def check(session: Session, actor) -> Report:
    """Run every check and record the outcome (the caller commits). Never raises on a failed check."""
    started = clock.now()
    report = run_checks(session)
    who = audit.Actor.of(actor) if getattr(actor, "id", None) else audit.Actor(None, getattr(actor, "username", "system"))
    run = CheckRun(kind="INTEGRITY", name="integrity", passed=report.ok, summary=report.summary()[:2000],
                   detail=json.dumps([{"name": c.name, "label": c.label, "ok": c.ok, "count": c.count,
                                       "problems": c.problems} for c in report.checks]),
                   started_at=started, finished_at=clock.now(), run_by=who.label)
    session.add(run)
    session.flush()
    report.run = run
    if not report.ok:
        log.error("integrity check failed: %s", report.summary(), extra={"check_run": run.id})
    else:
        log.info("integrity check passed", extra={"check_run": run.id})
    return report


def latest(session: Session) -> CheckRun | None:
    return session.scalar(select(CheckRun).where(CheckRun.kind == "INTEGRITY").order_by(CheckRun.id.desc()).limit(1))
