"""A collector logs a promise to pay from the worklist; the branch manager sees it on their home."""
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from e2e.conftest import login
from webapp import clock

pytestmark = pytest.mark.e2e


def last_contact_window_time() -> str:
    """A time within 08:00–19:00 IST not in the future: today 10:00 if it has passed, else yesterday's."""
    now = clock.to_ist(clock.now())
    moment = now.replace(hour=10, minute=0, second=0, microsecond=0)
    if moment > now:
        moment -= timedelta(days=1)
    return moment.strftime("%Y-%m-%dT%H:%M")


def test_collector_logs_a_promise_from_the_worklist_and_the_manager_sees_it(new_page):
    collector = new_page()
    login(collector, "col")
    collector.click("[data-testid=log-contact-E2E001]")
    form = collector.locator("#contact-panel #contact-form")
    expect(form).to_be_visible()
    form.locator("select[name=outcome]").select_option("PROMISE_TO_PAY")
    form.locator("input[name=contacted_at]").fill(last_contact_window_time())
    form.locator("input[name=promise_amount]").fill("4321.00")
    promised_for = (clock.today_ist() + timedelta(days=3)).isoformat()
    form.locator("input[name=promise_date]").fill(promised_for)
    form.locator("textarea[name=note]").fill("Borrower will pay after salary credit")
    form.locator("button[type=submit]").click()
    logged = collector.locator("[data-testid=contact-logged]")
    expect(logged).to_contain_text("promise of ₹4,321.00")

    manager = new_page()
    login(manager, "mgr")
    panel = manager.locator("[data-testid=promises-due]")
    expect(panel).to_contain_text("E2E001")
    expect(panel).to_contain_text("₹4,321.00")
    manager.click("[data-testid=promises-due] a:has-text('E2E001')")
    expect(manager.locator("[data-testid=contacts]")).to_contain_text("Borrower will pay after salary credit")
