"""Explicit serializers: amounts as decimal strings, dates as YYYY-MM-DD, no model dumps."""
from __future__ import annotations

from webapp.money import as_str
from webapp.models import Loan, Payment
from webapp.services.payments import reversed_paise
from webapp.services.ledger import Position


def payment_summary(payment: Payment) -> dict:
    return {
        "reference": payment.reference, "amount": as_str(payment.amount_paise), "mode": payment.mode,
        "utr": payment.utr, "receipt_number": payment.receipt_number, "value_date": payment.value_date.isoformat(),
        "status": payment.status, "reversed": as_str(reversed_paise(payment)),
        "created_at": payment.created_at.isoformat(),
    }


def loan_detail(loan: Loan, position: Position, payments: list[Payment]) -> dict:
    """A loan with its live position, schedule and payments (the `kisht loans show --json` shape)."""
    return {
        "loan_number": loan.loan_number,
        "borrower": {"name": loan.borrower.name, "phone": loan.borrower.phone,
                     "preferred_language": loan.borrower.preferred_language},
        "branch": loan.branch.code,
        "collector": loan.collector.username if loan.collector else None,
        "principal": as_str(loan.principal_paise),
        "annual_rate": str(loan.annual_rate_percent),
        "tenure_months": loan.tenure_months,
        "emi": as_str(loan.emi_paise),
        "disbursed_on": loan.disbursed_on.isoformat(),
        "first_due_on": loan.first_due_on.isoformat(),
        "status": "CLOSED" if position.closed else "ACTIVE",
        "position_date": position.as_of.isoformat(),
        "dpd": position.dpd,
        "asset_class": position.asset_class,
        "bucket": position.bucket,
        "outstanding_principal": as_str(position.outstanding_principal_paise),
        "overdue_amount": as_str(position.overdue_paise),
        "advance": as_str(position.advance_paise),
        "schedule": [
            {
                "seq": row.seq,
                "due_date": row.due_date.isoformat(),
                "principal_due": as_str(row.principal_due),
                "interest_due": as_str(row.interest_due),
                "total_due": as_str(row.total_due),
                "paid": as_str(row.principal_paid + row.interest_paid),
                "principal_paid": as_str(row.principal_paid),
                "interest_paid": as_str(row.interest_paid),
                "status": row.status,
            }
            for row in position.instalments
        ],
        "payments": [payment_summary(p) for p in payments],
    }
