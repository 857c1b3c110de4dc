"""Explicit API shapes: amounts as decimal strings, dates YYYY-MM-DD, timestamps ISO 8601 in IST with offset.

No model is ever dumped: each function names the fields a client sees (the OpenAPI schemas say the same).
"""
from __future__ import annotations

from datetime import date, datetime

from webapp import clock
from webapp.models import Approval, BankStatement, CronRun, Dispute, Loan, Payment
from webapp.money import as_str
from webapp.services import payments as payment_rules
from webapp.services.ledger import Position


def ts(moment: datetime | None) -> str | None:
    return clock.to_ist(moment).isoformat() if moment else None


def day(value: date | None) -> str | None:
    return value.isoformat() if value else None


def loan_item(loan: Loan) -> dict:
    """A row of GET /loans: terms and the stored position (refreshed by every payment and day-end)."""
    return {
        "loan_number": loan.loan_number, "borrower_name": loan.borrower.name, "branch": loan.branch.code,
        "collector": loan.collector.username if loan.collector else None,
        "principal": as_str(loan.principal_paise), "emi": as_str(loan.emi_paise),
        "disbursed_on": day(loan.disbursed_on), "status": loan.status, "dpd": loan.dpd,
        "asset_class": loan.asset_class, "bucket": loan.bucket,
        "outstanding_principal": as_str(loan.outstanding_principal_paise), "overdue_amount": as_str(loan.overdue_paise),
        "position_date": day(loan.position_date),
    }


def instalment(row) -> dict:
    return {
        "seq": row.seq, "due_date": day(row.due_date), "principal_due": as_str(row.principal_due),
        "interest_due": as_str(row.interest_due), "total_due": as_str(row.total_due),
        "principal_paid": as_str(row.principal_paid), "interest_paid": as_str(row.interest_paid),
        "paid": as_str(row.principal_paid + row.interest_paid), "status": row.status,
    }


def loan_detail(loan: Loan, position: Position) -> dict:
    """GET /loans/{loan_number}: terms, borrower contact, and the live position (DESIGN.md §4)."""
    borrower = loan.borrower
    return {
        "loan_number": loan.loan_number,
        "borrower": {"name": borrower.name, "phone": borrower.phone, "email": borrower.email,
                     "preferred_language": borrower.preferred_language},
        "branch": loan.branch.code, "collector": loan.collector.username if loan.collector else None,
        "principal": as_str(loan.principal_paise), "annual_rate": str(loan.annual_rate_percent),
        "tenure_months": loan.tenure_months, "emi": as_str(loan.emi_paise),
        "disbursed_on": day(loan.disbursed_on), "first_due_on": day(loan.first_due_on),
        "created_at": ts(loan.created_at),
        "status": "CLOSED" if position.closed else "ACTIVE", "position_date": day(position.as_of),
        "dpd": position.dpd, "asset_class": position.asset_class, "bucket": position.bucket,
        "outstanding_principal": as_str(position.outstanding_principal_paise),
        "overdue_amount": as_str(position.overdue_paise), "overdue_since": day(position.overdue_since),
        "advance": as_str(position.advance_paise),
    }


def payment(p: Payment) -> dict:
    return {
        "reference": p.reference, "loan_number": p.loan.loan_number, "amount": as_str(p.amount_paise),
        "mode": p.mode, "utr": p.utr if p.mode != "CHEQUE" else p.utr.split("-", 1)[-1] if p.utr else None,
        "cheque_bank": p.cheque_bank, "receipt_number": p.receipt_number, "value_date": day(p.value_date),
        "status": p.status, "reversed": as_str(payment_rules.reversed_paise(p)),
        "reversal_pending": as_str(payment_rules.pending_reversal_paise(p)),
        "reconciled": p.reconciled_at is not None,
        "recorded_by": p.recorded_by.username if p.recorded_by else None, "created_at": ts(p.created_at),
    }


def approval(a: Approval) -> dict:
    return {
        "id": a.id, "kind": a.kind, "status": a.status, "loan_number": a.payment.loan.loan_number,
        "payment": a.payment.reference,
        "amount": as_str(a.reversal.amount_paise if a.reversal is not None else a.payment.amount_paise),
        "reversal_reason": a.reversal.reason if a.reversal is not None else None,
        "maker": a.maker.username if a.maker else None, "checker": a.checker.username if a.checker else None,
        "decision_reason": a.decision_reason, "created_at": ts(a.created_at), "decided_at": ts(a.decided_at),
    }


def dispute(d: Dispute) -> dict:
    return {
        "reference": d.reference, "loan_number": d.loan.loan_number,
        "payment": d.payment.reference if d.payment else None, "category": d.category,
        "description": d.description, "status": d.status,
        "raised_by": d.raised_by.username if d.raised_by else None, "created_at": ts(d.created_at),
        "resolved_by": d.resolved_by.username if d.resolved_by else None, "resolved_at": ts(d.resolved_at),
        "resolution_note": d.resolution_note,
        "reversal_approval_id": d.reversal_approval_id,
        "supersedes": d.supersedes.reference if d.supersedes else None,
    }


def statement(s: BankStatement, run) -> dict:
    return {
        "reference": s.reference, "bank": s.bank, "account_number": s.account_number, "filename": s.filename,
        "format": s.file_format, "sha256": s.sha256, "period_from": day(s.period_from), "period_to": day(s.period_to),
        "lines": s.line_count, "credits": s.credit_count, "credit_total": as_str(s.credit_total_paise),
        "debits": s.debit_count, "debit_total": as_str(s.debit_total_paise),
        "skipped_duplicates": s.skipped_duplicates, "created_at": ts(s.created_at),
        "matching": {"considered": run.considered, "matched": run.matched, "mismatches": run.mismatches,
                     "suggestions": run.suggestions},
    }


def cron_run(r: CronRun) -> dict:
    return {
        "id": r.id, "job": r.job, "business_date": day(r.business_date), "attempt": r.attempt, "status": r.status,
        "forced": r.forced, "started_at": ts(r.started_at), "finished_at": ts(r.finished_at),
        "loans_processed": r.loans_processed, "batches_done": r.batches_done, "batches_total": r.batches_total,
        "error": r.error,
    }
