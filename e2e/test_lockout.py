"""Five wrong passwords lock that account, even against the right password; other users are unaffected."""
from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import login

pytestmark = pytest.mark.e2e

WRONG = "not-the-password"


def test_five_wrong_passwords_lock_the_account(page: Page, base_url):
    # "lockme" is seeded for this test alone, so locking it cannot break another test.
    message = page.get_by_test_id("login-message")
    for attempt in range(1, 5):
        login(page, "lockme", WRONG)
        expect(message).to_have_text("Invalid username or password.")
    login(page, "lockme", WRONG)  # the fifth failure locks the account
    expect(message).to_contain_text("locked")

    login(page, "lockme")  # now even the right password is refused
    expect(message).to_contain_text("locked")
    expect(page).to_have_url(base_url + "/login")
    expect(page.get_by_test_id("home-title")).to_have_count(0)

    # The lock is on that account, not on this browser: someone else signs in from it.
    login(page, "col")
    expect(page).to_have_url(base_url + "/collector/")
    expect(page.get_by_test_id("home-title")).to_have_text("My worklist")
