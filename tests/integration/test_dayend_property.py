"""For random ledgers, day-end (set-based SQL, run day after day) equals the per-loan position function."""
from datetime import date, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webapp import clock
from webapp.models import DayendPosition
from webapp.permissions import SystemActor
from webapp.services import dayend, ledger, loans, payments, replay
from sqlalchemy import select

START = date(2026, 1, 1)
receipt = st.tuples(st.integers(0, 140), st.integers(1, 15_000_00))  # (days after disbursal, paise)
ledger_strategy = st.tuples(
    st.integers(10_000, 90_000),  # principal, rupees
    st.sampled_from(["0", "12", "18.5", "26"]),  # rate
    st.integers(2, 4),  # tenure, months
    st.integers(1, 40),  # days from disbursal to the first due date
    st.lists(receipt, max_size=6),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ledgers=st.lists(ledger_strategy, min_size=1, max_size=3))
def test_dayend_matches_the_position_function(db, users, monkeypatch, ledgers):
    later = datetime(2027, 1, 1, 6, 30, tzinfo=timezone.utc)
    monkeypatch.setattr(clock, "now", lambda: later)  # every generated date is in the past
    system = SystemActor("property")
    nested = db.begin_nested()
    try:
        made = []
        for n, (principal, rate, tenure, first_gap, receipts) in enumerate(ledgers):
            loan = loans.create_loan(db, system, {
                "loan_number": f"KLP{n}", "borrower_name": f"Borrower {n}", "borrower_phone": f"90000000{n:02d}",
                "branch_code": "PUNE01", "collector_username": "col", "principal": str(principal), "annual_rate": rate,
                "tenure_months": str(tenure), "disbursed_on": START.isoformat(),
                "first_due_on": (START + timedelta(days=first_gap)).isoformat()})
            entries = [{"amount": f"{paise // 100}.{paise % 100:02d}", "mode": "UPI",
                        "reference": f"{n}{i}{days:03d}{paise:07d}"[:12].ljust(12, "7"),
                        "value_date": (START + timedelta(days=days)).isoformat()}
                       for i, (days, paise) in enumerate(receipts)]
            if entries:
                payments.record_history(db, system, loan.loan_number, entries)
            made.append(loan)
        ids = [loan.id for loan in made]
        statements = dayend.statements_for(db)
        days = [START + timedelta(days=n) for n in range(0, 200)]
        for day in days:  # day after day, as production runs
            dayend.ensure_partition(db, day)
            dayend.process_batch(db, day, min(ids), max(ids) + 1, statements)
        rows = {(r.loan_id, r.business_date): r for r in db.scalars(select(DayendPosition).where(
            DayendPosition.loan_id.in_(ids)))}
        for loan in made:
            receipts = replay.receipts_of(db, loan)
            for day in days:
                expected = ledger.compute_position(replay.schedule_of(loan), receipts, day)
                row = rows.get((loan.id, day))
                if expected.closed:
                    assert row is None, (loan.loan_number, day)
                    continue
                got = (row.dpd, row.overdue_paise, row.asset_class, row.bucket, row.overdue_since, row.class_since)
                want = (expected.dpd, expected.overdue_paise, expected.asset_class, expected.bucket,
                        expected.overdue_since, expected.class_since or START)
                assert got == want, (loan.loan_number, day)
    finally:
        nested.rollback()
