"""Bank statements made in the tests, in the HDFC (CSV) and SBI (XLSX) layouts of webapp/bank_layouts.py.

Rows are (value date, narration, reference, credit, debit) with amounts as rupee strings (or None); the
running balance is computed from an opening balance unless a row gives its own (a sixth item), so a test
can break it on purpose.
"""
from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

HDFC_HEADER = ["Date", "Narration", "Chq./Ref.No.", "Value Dt", "Withdrawal Amt.", "Deposit Amt.", "Closing Balance"]
SBI_HEADER = ["Txn Date", "Value Date", "Description", "Ref No./Cheque No.", "Debit", "Credit", "Balance"]
ZEROS = "000000000000000"


def neft(day: date, amount: str, utr: str, name: str = "RAVI KUMAR"):
    return (day, f"NEFT CR-SBIN0001234-{name}-KISHT FINANCE-{utr}", utr, amount, None)


def upi(day: date, amount: str, rrn: str, name: str = "SUNITA DEVI"):
    """HDFC pads the 12-digit UPI reference to 16 digits in its reference column."""
    return (day, f"UPI-{name}-{name.split()[0].lower()}@okaxis-UTIB0000123-{rrn}-EMI", rrn.rjust(16, "0"), amount, None)


def imps(day: date, amount: str, rrn: str, name: str = "ANIL SHARMA"):
    return (day, f"IMPS-{rrn}-{name}-ICIC-XXXXXXXX1234-EMI", rrn, amount, None)


def cash(day: date, amount: str, branch: str = "PUNE CAMP"):
    return (day, f"CASH DEPOSIT BY - BRANCH {branch} COLLECTIONS", ZEROS, amount, None)


def charge(day: date, amount: str):
    return (day, "CHQ RETURN CHARGES INCL GST", ZEROS, None, amount)


def _rupees(text) -> Decimal:
    """An amount as written, for the running balance; a deliberately broken one counts as nothing."""
    try:
        return Decimal(str(text or "0").replace(",", ""))
    except ArithmeticError:
        return Decimal(0)


def _balances(rows, opening: str):
    balance = Decimal(opening)
    out = []
    for row in rows:
        day, narration, reference, credit, debit = row[:5]
        balance += _rupees(credit) - _rupees(debit)
        given = row[5] if len(row) > 5 else None
        if given is None:
            out.append((day, narration, reference, credit, debit, balance))
            continue
        try:
            balance = Decimal(given)
        except ArithmeticError:  # a broken balance, written as given
            out.append((day, narration, reference, credit, debit, given))
            continue
        out.append((day, narration, reference, credit, debit, balance))
    return out


def _money(value) -> str:
    return f"{value:.2f}" if isinstance(value, Decimal) else str(value)


def hdfc_csv(rows, opening: str = "1250000.00", *, header=None) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header or HDFC_HEADER)
    for day, narration, reference, credit, debit, balance in _balances(rows, opening):
        writer.writerow([day.strftime("%d/%m/%y") if isinstance(day, date) else day, narration, reference,
                         day.strftime("%d/%m/%y") if isinstance(day, date) else day, debit or "", credit or "",
                         _money(balance)])
    return buffer.getvalue().encode()


def sbi_xlsx(rows, opening: str = "830000.00", *, period: tuple[date, date] | None = None,
             account: str = "00000012345678901", numeric: bool = True) -> bytes:
    """The SBI layout: preamble rows, a blank row, the header, "dd Mon yyyy" dates as text, numeric amounts."""
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Statement"
    sheet.append(["Account Name :", "KISHT FINANCE PVT LTD"])
    sheet.append(["Account Number :", account])
    if period:
        sheet.append(["Statement From :", period[0].strftime("%d %b %Y"), "To :", period[1].strftime("%d %b %Y")])
    sheet.append([])
    sheet.append(SBI_HEADER)
    for day, narration, reference, credit, debit, balance in _balances(rows, opening):
        as_number = (lambda v: float(v) if v else None) if numeric else (lambda v: v)
        sheet.append([day.strftime("%d %b %Y") if isinstance(day, date) else day,
                      day.strftime("%d %b %Y") if isinstance(day, date) else day, narration, reference,
                      as_number(debit), as_number(credit), float(balance) if numeric else _money(balance)])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def rtgs(day: date, amount: str, utr: str, name: str = "RAVI KUMAR"):
    """SBI: the reference column says where it came from; the UTR is inside the description."""
    return (day, f"BY TRANSFER-RTGS UTR NO: {utr}-{name}", "TRANSFER FROM 9855630065", amount, None)


def make_loans(make_loan, count: int) -> list:
    """PUNE01 loans KL1..KL<count> of collector col, each with ₹1,00,000 at 12 % (EMI ₹8,884.88), months in
    arrears."""
    return [make_loan(loan_number=f"KL{i}", borrower_name=f"Borrower {i}", borrower_phone=f"90000000{i:02d}")
            for i in range(1, count + 1)]


def make_second_finance_user(db, system, users):
    """A second finance user (the checker of unreconciles), also kept as users["fin2"]."""
    from webapp.services import org

    users["fin2"] = org.create_user(db, system, username="fin2", role="finance", password="correct-horse-battery",
                                    name="FIN2")
    return users["fin2"]
