"""Demo data for development: two branches, one user per role (plus a second branch's staff), ~200 loans."""
from __future__ import annotations

import random
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp import clock
from webapp.models import Loan, Payment, User
from webapp.permissions import SystemActor
from webapp.services import approvals, loans, org, payments
from webapp.services.schedule import due_date

BRANCHES = (("PUNE01", "Pune Camp"), ("NSK01", "Nashik Road"))
# (username, role, branch code, display name)
DEMO_USERS = (
    ("demo.collector", "collector", "PUNE01", "Ravi Patil"),
    ("demo.manager", "manager", "PUNE01", "Sunita Deshmukh"),
    ("demo.finance", "finance", None, "Anil Mehta"),
    ("demo.legal", "legal", None, "Farah Khan"),
    ("demo.admin", "admin", None, "Kiran Rao"),
    ("demo.collector2", "collector", "NSK01", "Ganesh Jadhav"),
    ("demo.manager2", "manager", "NSK01", "Meera Kulkarni"),
)
FIRST = ("Ravi", "Sunita", "Anil", "Priya", "Mohan", "Lakshmi", "Suresh", "Kavita", "Imran", "Deepa", "Rajesh",
         "Pooja", "Vijay", "Asha", "Sanjay", "Neha", "Arjun", "Meena", "Farhan", "Geeta")
LAST = ("Kumar", "Devi", "Sharma", "Patil", "Joshi", "Shaikh", "Pawar", "Naik", "Reddy", "Iyer", "More",
        "Kale", "Gupta", "Singh", "Verma")


def has_demo_data(session: Session) -> bool:
    return session.scalar(select(User.id).where(User.is_demo.is_(True)).limit(1)) is not None


def seed(session: Session, *, loans_count: int = 200, seed_value: int = 7) -> dict[str, str]:
    """Create the demo data; returns {username: password}. Passwords are random, shown once."""
    passwords = {username: secrets.token_urlsafe(9) for username, *_ in DEMO_USERS}
    system = SystemActor("demo-seed")
    for code, name in BRANCHES:
        org.create_branch(session, system, code=code, name=name)
    users = {}
    for username, role, branch, name in DEMO_USERS:
        users[username] = org.create_user(session, system, username=username, role=role, password=passwords[username],
                                          name=name, branch_code=branch, is_demo=True)
    admin = users["demo.admin"]
    rng = random.Random(seed_value)
    today = clock.today_ist()
    rows = []
    for n in range(1, loans_count + 1):
        branch_code, collector = ("PUNE01", "demo.collector") if n % 3 else ("NSK01", "demo.collector2")
        age_months = rng.choice((0, 0, 1, 1, 2, 3, 4, 6, 9, 12, 18, 24))
        disbursed = today - timedelta(days=30 * age_months + rng.randint(1, 28))
        rows.append({
            "loan_number": f"KL{today.year % 100:02d}{n:05d}",
            "borrower_name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            "borrower_phone": f"9{rng.randint(100000000, 999999999)}",
            "borrower_language": rng.choice(("en", "hi", "mr")),
            "branch_code": branch_code,
            "collector_username": collector if rng.random() > 0.05 else "",
            "principal": str(rng.choice((25000, 50000, 75000, 100000, 150000, 250000, 500000))),
            "annual_rate": rng.choice(("11.5", "12", "14.75", "18", "22", "24")),
            "tenure_months": str(rng.choice((12, 18, 24, 36, 48))),
            "disbursed_on": disbursed.isoformat(),
            "first_due_on": due_date(disbursed, 1).isoformat(),
        })
    for row in rows:
        loan = loans.create_loan(session, admin, row)
        history = _payment_history(rng, loan, today)
        if history:
            payments.record_history(session, system, loan.loan_number, history)
    _inbox_items(session, rng, users, today)
    _contacts(session, rng, users["demo.collector"], today)
    return passwords


def _contacts(session: Session, rng: random.Random, collector, today) -> None:
    """Calls logged yesterday at 11:00 IST on a few overdue loans, some with promises to pay."""
    from webapp.services import collections

    overdue = session.scalars(select(Loan).where(Loan.collector_id == collector.id, Loan.overdue_paise > 0)
                              .order_by(Loan.overdue_since).limit(8)).all()
    when = f"{(today - timedelta(days=1)).isoformat()}T11:00"
    for loan in overdue:
        outcome = rng.choice(("PROMISE_TO_PAY", "PROMISE_TO_PAY", "NOT_REACHABLE", "REFUSED"))
        fields = {"channel": "CALL", "outcome": outcome, "contacted_at": when, "note": "Demo call"}
        if outcome == "PROMISE_TO_PAY":
            fields.update(promise_amount=f"{loan.emi_paise // 100}.{loan.emi_paise % 100:02d}",
                          promise_date=(today + timedelta(days=rng.randint(1, 6))).isoformat())
        collections.log_contact(session, collector, loan.loan_number, fields)


def _inbox_items(session: Session, rng: random.Random, users: dict, today) -> None:
    """A few backdated entries and a reversal request, so the managers' inbox has work in it."""
    collector = users["demo.collector"]
    overdue = session.scalars(select(Loan).where(Loan.collector_id == collector.id, Loan.overdue_paise > 0)
                              .order_by(Loan.id).limit(3)).all()
    for loan in overdue:
        payments.record_payment(session, collector, loan.loan_number, {
            "amount": f"{loan.emi_paise // 100}.{loan.emi_paise % 100:02d}", "mode": "UPI",
            "reference": "".join(rng.choice("0123456789") for _ in range(12)),
            "value_date": (today - timedelta(days=10)).isoformat()})
    posted = session.scalar(select(Payment).join(Loan).where(Payment.status == "POSTED", Loan.branch_id ==
                                                             collector.branch_id).order_by(Payment.id.desc()).limit(1))
    if posted is not None:
        approvals.request_reversal(session, users["demo.finance"], posted.reference,
                                   {"reason": "CHEQUE_BOUNCE", "note": "Returned unpaid: funds insufficient"})


# How borrowers behave in the demo: (share, what they pay of each EMI, days late).
PROFILES = (("punctual", 0.45), ("late", 0.2), ("partial", 0.15), ("stopped", 0.12), ("never", 0.08))


def _payment_history(rng: random.Random, loan, today) -> list[dict]:
    profile = rng.choices([p for p, _ in PROFILES], weights=[w for _, w in PROFILES])[0]
    due = [i for i in loan.instalments if i.due_date < today]
    if profile == "never" or not due:
        return []
    stop_after = rng.randint(0, max(0, len(due) - 3)) if profile == "stopped" else len(due)
    entries = []
    for number, instalment in enumerate(due[:stop_after]):
        late = rng.randint(0, 3) if profile in ("punctual", "partial", "stopped") else rng.randint(10, 45)
        paid_on = min(instalment.due_date + timedelta(days=late), today)
        share = rng.choice((50, 60, 75)) if profile == "partial" else 100
        amount = instalment.total_due_paise * share // 100
        mode = rng.choice(("UPI", "UPI", "NEFT", "CASH", "IMPS"))
        entry = {"amount": f"{amount // 100}.{amount % 100:02d}", "mode": mode, "value_date": paid_on.isoformat()}
        if mode == "CASH":
            entry["receipt_number"] = f"{loan.branch.code}/{loan.id:04d}/{number + 1:03d}"
        elif mode == "NEFT":
            entry["reference"] = "KSHT" + "".join(rng.choice("0123456789") for _ in range(12))
        else:
            entry["reference"] = "".join(rng.choice("0123456789") for _ in range(12))
        entries.append(entry)
    return entries


def reset_passwords(session: Session) -> dict[str, str]:
    """New random passwords for the demo users (the old ones were shown once and are gone)."""
    passwords = {}
    for user in session.scalars(select(User).where(User.is_demo.is_(True)).order_by(User.username)):
        passwords[user.username] = secrets.token_urlsafe(9)
        org.set_password(session, user, passwords[user.username])
        user.failed_logins, user.locked_until = 0, None
    return passwords
