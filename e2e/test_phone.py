"""The collector's phone: the worklist fits a 390 px screen, and amounts read the Indian way."""
from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import login

pytestmark = pytest.mark.e2e

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 3}


def no_horizontal_scroll(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.fixture()
def phone(new_page) -> Page:
    return new_page(**PHONE)


def test_worklist_fits_a_phone(phone: Page):
    login(phone, "col")
    expect(phone.get_by_test_id("home-title")).to_have_text("My worklist")
    rows = phone.locator("#loan-table tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_be_visible()
    assert no_horizontal_scroll(phone)


def test_amounts_use_indian_grouping_on_a_phone(phone: Page):
    login(phone, "col")
    # ₹8,884.88 is the EMI of the ₹1,00,000 loan; the worklist shows it as well as the loan page.
    expect(phone.locator("tr[data-loan=E2E001] td[data-label=EMI]")).to_have_text("₹8,884.88")
    phone.click("a:has-text('E2E001')")
    expect(phone.get_by_test_id("principal")).to_have_text("₹1,00,000.00")
    expect(phone.get_by_test_id("emi")).to_have_text("₹8,884.88")
    assert no_horizontal_scroll(phone)
