"""Shadow month fixtures: a fixed business day, three loans in known states, and trackers built from them."""
from __future__ import annotations

import io
from datetime import date, datetime, timedelta

import pytest

from webapp import clock

TODAY = date(2026, 6, 20)
D = date(2026, 6, 18)  # the business date compared
HEADER = ["Loan No", "Customer Name", "Branch", "Collector", "EMI", "POS (Principal O/S)", "DPD", "Bucket",
          "Collection Today", "Remarks"]


@pytest.fixture(autouse=True)
def fixed_today(monkeypatch):
    noon_ist = datetime(TODAY.year, TODAY.month, TODAY.day, 12, 0, tzinfo=clock.IST)
    monkeypatch.setattr(clock, "now", lambda: noon_ist.astimezone(clock.timezone.utc))


def tracker_xlsx(rows, day: date = D, *, title: str | None = None, header=HEADER, extra_sheets=()) -> bytes:
    """rows: (loan_number, outstanding rupees, dpd, bucket, collection rupees) as the team types them."""
    import openpyxl

    workbook = openpyxl.Workbook()
    for name in extra_sheets:
        workbook.create_sheet(name)
    sheet = workbook.active
    sheet.title = title or day.strftime("Tracker %d-%b-%Y")
    sheet.append(header)
    for loan_number, outstanding, dpd, bucket, collection in rows:
        sheet.append([loan_number, "Ravi Kumar", "Pune Camp", "col", 8884.88, outstanding, dpd, bucket, collection, None])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


@pytest.fixture()
def portfolio(db, users, make_loan):
    """KL1 paid up to date, KL2 paid one EMI on D (106 DPD), KL3 never paid (134 DPD); day-end ran for D."""
    from jobs.dayend import run_dayend
    from webapp.services import payments

    loans = {n: make_loan(loan_number=n) for n in ("KL1", "KL2", "KL3")}
    emi = loans["KL1"].emi_paise
    fin = users["fin"]
    payments.record_payment(db, fin, "KL1", {"amount": f"{5 * emi / 100:.2f}", "mode": "NEFT",
                                             "reference": "SBIN000000000001", "value_date": (D - timedelta(days=5)).isoformat()})
    payments.record_payment(db, fin, "KL2", {"amount": f"{emi / 100:.2f}", "mode": "NEFT",
                                             "reference": "SBIN000000000002", "value_date": D.isoformat()})
    db.flush()
    assert run_dayend(D).status == "SUCCEEDED"
    return loans


def system_rows(db, day: date = D):
    """The system's own figures as tracker rows (rupees as floats, the way Excel stores them)."""
    from webapp.services import shadow

    _, side = shadow.system_side(db, day)
    label = {"0": "Current", "1-30": "1-30", "31-60": "31-60", "61-90": "61-90", "91-180": "NPA", "181+": "NPA"}
    return {n: [n, s["outstanding"] / 100, s["dpd"], label[s["bucket"]], s["collection"] / 100] for n, s in side.items()}
