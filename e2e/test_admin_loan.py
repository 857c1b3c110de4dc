"""Admin creates a loan on the screen; a bad amount is refused next to its field and creates nothing."""
from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import login
from webapp import clock

pytestmark = pytest.mark.e2e


def loan_form(loan_number: str, principal: str) -> dict[str, str]:
    # NSK01/col2: the PUNE01 collector's worklist, counted by other tests, stays as seeded.
    today = clock.today_ist()
    return {
        "loan_number": loan_number, "borrower_name": "Kavita Shinde", "borrower_phone": "9822012345",
        "borrower_language": "mr", "borrower_email": "kavita@example.in", "branch_code": "NSK01",
        "collector_username": "col2", "principal": principal, "annual_rate": "12", "tenure_months": "12",
        "disbursed_on": (today - timedelta(days=5)).isoformat(),
        "first_due_on": (today + timedelta(days=25)).isoformat(),
    }


def fill_and_submit(page: Page, fields: dict[str, str]) -> None:
    page.goto("/admin/loans/new")
    for name, value in fields.items():
        page.fill(f"#new-loan-form [name={name}]", value)
    page.click("button:has-text('Create loan')")


def test_admin_creates_a_loan(page: Page, base_url):
    login(page, "adm")
    fill_and_submit(page, loan_form("E2E-NEW-1", "100000"))
    expect(page).to_have_url(base_url + "/loans/E2E-NEW-1")
    expect(page.locator("h1")).to_contain_text("E2E-NEW-1")
    expect(page.get_by_test_id("principal")).to_have_text("₹1,00,000.00")
    expect(page.get_by_test_id("emi")).to_have_text("₹8,884.88")  # 1 lakh at 12% over 12 months
    expect(page.get_by_test_id("collector")).to_have_text("COL2 (col2)")
    expect(page.locator("[data-testid=schedule] tbody tr")).to_have_count(12)


def test_negative_principal_is_refused_inline(page: Page):
    login(page, "adm")
    fill_and_submit(page, loan_form("E2E-BAD-1", "-5000"))
    error = page.locator("#new-loan-form small.error[data-field=principal]")
    expect(error).to_have_text("must be greater than zero")
    expect(page.locator("#new-loan-form [name=principal]")).to_have_attribute("aria-invalid", "true")
    # Only the principal is wrong; the other fields keep what was typed.
    expect(page.locator("#new-loan-form small.error")).to_have_count(1)
    expect(page.locator("#new-loan-form [name=loan_number]")).to_have_value("E2E-BAD-1")
    # Nothing was created.
    assert page.goto("/loans/E2E-BAD-1").status == 404
