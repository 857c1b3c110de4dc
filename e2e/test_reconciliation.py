"""Finance reconciliation in the browser: a collector's UPI payment, a bank statement imported by finance in
which the credit carries another reference (so it is only a suggestion), the suggestion confirmed, and the
dashboard's figures moving.

Loan E2ERCN1 (collector "rcncol", branch PUNE01) is used by this file only. The amount is unusual on
purpose: other files book EMIs of ₹8,884.88 today, and they must not become suggestions here.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import login
from e2e.test_payments import fill_payment, open_loan, submit, utr
from webapp import clock

pytestmark = pytest.mark.e2e

AMOUNT = "4321.09"


def statement_csv(bank_reference: str) -> bytes:
    day = clock.today_ist().strftime("%d/%m/%y")
    return (
        "Date,Narration,Chq./Ref.No.,Value Dt,Withdrawal Amt.,Deposit Amt.,Closing Balance\n"
        f"{day},UPI-PRAKASH JADHAV-prakash@okaxis-UTIB0000123-{bank_reference}-EMI,"
        f"{bank_reference.rjust(16, '0')},{day},,{AMOUNT},1004321.09\n"
        f"{day},CHQ RETURN CHARGES INCL GST,000000000000000,{day},500.00,,1003821.09\n"
    ).encode()


def figure(page: Page, test_id: str) -> int:
    return int(page.get_by_test_id(test_id).inner_text().strip())


def test_finance_imports_a_statement_confirms_a_suggestion_and_the_dashboard_moves(new_page):
    # The collector books the payment with the reference the borrower read out.
    collector = new_page()
    login(collector, "rcncol")
    form = open_loan(collector, "E2ERCN1")
    keyed = utr()
    fill_payment(form, AMOUNT, "UPI", reference=keyed)
    assert submit(collector, form, "E2ERCN1").status == 201
    payment = collector.get_by_test_id("receipt").get_attribute("data-reference")

    # Finance: the Reconciliation link, the dashboard before the statement.
    page = new_page()
    login(page, "fin")
    page.click("nav.nav a:has-text('Reconciliation')")
    expect(page.get_by_test_id("recon-title")).to_have_text("Reconciliation")
    matched_before = figure(page, "total-matched")
    bank_before = page.get_by_test_id("total-bank").inner_text()

    # Import the bank's CSV: the credit shows a different UPI reference, so nothing matches on its own.
    page.click("[data-testid=recon-tabs] a:has-text('Statements')")
    page.select_option("#import-bank", "HDFC")
    in_bank = utr()
    page.set_input_files("#import-file", files=[{"name": "hdfc.csv", "mimeType": "text/csv",
                                                  "buffer": statement_csv(in_bank)}])
    page.click("[data-testid=import-statement]")
    expect(page).to_have_url(re.compile(r"/reconciliation/statements/BS[0-9A-Z]{10}$"))
    expect(page.locator("[data-testid=bank-lines] tbody tr")).to_have_count(2)
    expect(page.get_by_test_id("statement-debits")).to_contain_text("₹500.00")
    credit_row = page.locator("[data-testid=bank-lines] tbody tr[data-status=UNMATCHED]")
    expect(credit_row).to_contain_text(in_bank)  # the 12-digit reference, zero padding removed
    expect(page.locator("[data-testid=bank-lines] tbody tr[data-status=DEBIT]")).to_have_count(1)

    # The suggestion: same amount, same day. Finance confirms it.
    page.click("[data-testid=recon-tabs] a:has-text('Suggestions')")
    row = page.locator("[data-testid=matches] tbody tr", has=page.locator(f"a[data-payment={payment}]"))
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-kind", "AMOUNT_DATE")
    row.locator("button:has-text('Confirm')").click()
    expect(page.get_by_test_id("recon-notice")).to_contain_text("confirmed")
    expect(page.locator(f"[data-testid=matches] a[data-payment={payment}]")).to_have_count(0)

    # The dashboard counts it: one more matched credit, and the bank total includes the credit.
    page.click("[data-testid=recon-tabs] a:has-text('Dashboard')")
    expect(page.get_by_test_id("total-matched")).to_have_text(str(matched_before + 1))
    assert page.get_by_test_id("total-bank").inner_text() != bank_before
    today = clock.today_ist().isoformat()
    upi_row = page.locator(f"tbody[data-day='{today}'] tr[data-mode=UPI]")
    expect(upi_row.locator("td[data-cell=matched]")).to_contain_text("₹4,321.09")

    # The payment is locked now: marked on the loan page, which no longer offers to reverse it.
    page.goto("/reconciliation/payments?status=RECONCILED")
    expect(page.locator(f"tr[data-payment={payment}]")).to_contain_text("RECONCILED")
    page.goto("/loans/E2ERCN1")
    expect(page.locator(f"tr[data-payment={payment}] [data-testid=reconciled]")).to_have_count(1)
    expect(page.locator(f"summary:has-text('Request a reversal of {payment}')")).to_have_count(0)
