"""Each role signs in to its own home and sees only its own navigation; scope and search work in the browser."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import login

pytestmark = pytest.mark.e2e

# username → (home path, home title, the exact navigation links that role sees)
HOMES = {
    "col": ("/collector/", "My worklist", ["My worklist", "Disputes"]),
    "mgr": ("/manager/", "Branch overview", ["Branch", "Loans", "Approvals", "Disputes", "Shadow month", "Go/no-go", "Escalations",
                                             "Audit log"]),
    "fin": ("/finance/", "Portfolio", ["Portfolio", "Loans", "Approvals", "Disputes", "Reconciliation",
                                       "Shadow month", "Go/no-go", "Audit log"]),  # approvals: reversals
    "leg": ("/legal/", "NPA queue", ["NPA queue", "Loans", "Disputes", "Escalations", "Audit log"]),
    "adm": ("/admin/", "Overview", ["Overview", "Loans", "Shadow month", "Go/no-go", "New loan", "Import", "Users", "Audit log", "Day-end",
                                    "Kill switches", "System", "Reminders"]),
}


@pytest.mark.parametrize("username", list(HOMES))
def test_role_lands_on_its_home_with_only_its_links(page: Page, base_url, username):
    path, title, links = HOMES[username]
    login(page, username)
    expect(page).to_have_url(base_url + path)
    expect(page.get_by_test_id("home-title")).to_have_text(title)
    # Exact list: a link another role owns (e.g. "Audit log" for a collector) fails here.
    expect(page.locator("nav.nav a")).to_have_text(links)


def test_collector_cannot_open_another_branch_collectors_loan(page: Page):
    login(page, "col")
    own = page.goto("/loans/E2E001")
    assert own.status == 200
    # E2E004 belongs to col2 in NSK01: it must look like it does not exist (404, not 403).
    other = page.goto("/loans/E2E004")
    assert other.status == 404
    expect(page.locator("h1")).to_have_text("No loan E2E004.")
    expect(page.get_by_text("Meera Joshi")).to_have_count(0)


def test_collector_search_narrows_the_worklist(page: Page):
    login(page, "col")
    rows = page.locator("#loan-table tbody tr")
    expect(rows).to_have_count(3)
    # A marker on window survives only if the table is swapped by HTMX rather than by a page load.
    page.evaluate("window.e2eMarker = 'still here'")
    page.fill("input[name=q]", "E2E003")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-loan", "E2E003")
    expect(page).to_have_url(re.compile(r"q=E2E003"))  # hx-push-url keeps the search in the address bar
    assert page.evaluate("window.e2eMarker") == "still here"


def test_sign_out_returns_to_login(page: Page, base_url):
    login(page, "fin")
    expect(page.get_by_test_id("home-title")).to_have_text("Portfolio")
    page.click("button:has-text('Sign out')")
    expect(page).to_have_url(base_url + "/login")
    expect(page.locator("h1")).to_have_text("Sign in")
    # The session is really gone: a home screen now sends us back to sign in.
    page.goto("/finance/")
    expect(page.locator("h1")).to_have_text("Sign in")
    assert page.url.startswith(base_url + "/login")
