"""End-to-end fixtures: one live Kisht server on a fresh SQLite file, and real Chromium driving it.

The server and its seed data live for the whole session (starting Chromium and migrating once keeps
the folder fast); each test gets its own browser context, so cookies never leak between tests.
Tests that change data (lockout, new loans) use users and loan numbers no other test relies on.
"""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from werkzeug.serving import make_server

from tests.conftest import migrate
from webapp import clock, create_app, db
from webapp.permissions import SystemActor
from webapp.services import loans, org

PASSWORD = "e2e-correct-horse"  # every seeded user's password (≥ 10 characters)

# username → (role, branch); "lockme" exists only to be locked out by test_lockout.py.
USERS = {
    "col": ("collector", "PUNE01"),
    "col2": ("collector", "NSK01"),
    "mgr": ("manager", "PUNE01"),
    "fin": ("finance", None),
    "leg": ("legal", None),
    "adm": ("admin", None),
    "lockme": ("finance", None),
    "paycol": ("collector", "PUNE01"),  # owns the E2EPAY loans, so "col"'s worklist stays as counted
    "dspcol": ("collector", "PUNE01"),  # owns E2EDSP1 (test_disputes.py)
    "rcncol": ("collector", "PUNE01"),  # owns E2ERCN1 (test_reconciliation.py)
}

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]

# Playwright waits up to 30 s by default; a broken page should fail in seconds, not stall the run.
TIMEOUT_MS = 5_000


def _seed_loans(today) -> list[dict]:
    """Loan rows (the CSV shape) dated relative to today's IST date, so some are overdue."""

    def row(number, name, phone, collector, principal, disbursed_days_ago, first_due_days_ago, branch="PUNE01"):
        return {
            "loan_number": number, "borrower_name": name, "borrower_phone": phone, "branch_code": branch,
            "collector_username": collector, "principal": principal, "annual_rate": "12", "tenure_months": "12",
            "disbursed_on": (today - timedelta(days=disbursed_days_ago)).isoformat(),
            "first_due_on": (today - timedelta(days=first_due_days_ago)).isoformat(),
        }

    return [
        row("E2E001", "Ravi Kumar", "9876543210", "col", "100000", 70, 40),      # about 40 days past due
        row("E2E002", "Sunita Patil", "9876543211", "col", "250000", 200, 170),  # past 90 days: NPA
        row("E2E003", "Anil Deshmukh", "9876543212", "col", "50000", 10, -20),   # first EMI not yet due
        row("E2E004", "Meera Joshi", "9876543213", "col2", "75000", 40, 10, branch="NSK01"),
        # test_payments.py: one loan per scenario, each two EMIs in arrears and 40 days past due.
        row("E2EPAY1", "Farhan Shaikh", "9876543221", "paycol", "300000", 70, 40),  # cash + UPI
        row("E2EPAY2", "Lata Mane", "9876543222", "paycol", "100000", 70, 40),      # refused reference
        row("E2EPAY3", "Vijay Pawar", "9876543223", "paycol", "100000", 70, 40),    # double submit
        row("E2EPAY4", "Rekha Gaikwad", "9876543224", "paycol", "100000", 70, 40),  # backdated by collector
        row("E2EPAY5", "Sanjay Kale", "9876543225", "paycol", "100000", 70, 40),    # backdated by manager
        # test_disputes.py: a dispute raised with a photo, then upheld by the branch manager.
        row("E2EDSP1", "Nandini Kulkarni", "9876543231", "dspcol", "120000", 70, 40),
        # test_reconciliation.py: a UPI payment that the bank statement shows under another reference.
        row("E2ERCN1", "Prakash Jadhav", "9876543241", "rcncol", "100000", 70, 40),
    ]


def _seed(app) -> None:
    system = SystemActor("e2e")
    with app.app_context():
        with db.new_session() as session:
            org.create_branch(session, system, code="PUNE01", name="Pune Camp")
            org.create_branch(session, system, code="NSK01", name="Nashik Road")
            for username, (role, branch) in USERS.items():
                org.create_user(session, system, username=username, role=role, password=PASSWORD,
                                name=username.upper(), branch_code=branch)
            for row in _seed_loans(clock.today_ist()):
                loans.create_loan(session, system, row)
            session.commit()


@pytest.fixture(scope="session")
def base_url(tmp_path_factory):
    """The live server's root URL, e.g. http://127.0.0.1:54321."""
    url = f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'kisht-e2e.db'}"
    # SHOW_FRIENDLY_500: a server error shows the 500 page in the browser instead of killing the thread.
    app = create_app({"APP_ENV": "test", "DATABASE_URL": url, "REDIS_URL": "", "SHOW_FRIENDLY_500": True,
                      "EVIDENCE_DIR": str(tmp_path_factory.mktemp("e2e-evidence"))})
    migrate(app)
    _seed(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)  # port 0: the OS picks a free port
    thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)
    app.extensions["kisht.engine"].dispose()


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session", autouse=True)
def _quick_expect():
    expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture()
def new_page(browser, base_url):
    """Factory for pages in fresh contexts; extra options (viewport, is_mobile…) go to new_context."""
    contexts = []

    def make(**options) -> Page:
        context = browser.new_context(base_url=base_url, **options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture()
def page(new_page) -> Page:
    """A desktop-sized page in its own browser context (no cookies shared with other tests)."""
    return new_page()


def login(page: Page, username: str, password: str = PASSWORD) -> None:
    """Sign in through the real login form, like a person would; does not check the outcome."""
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button:has-text('Sign in')")
    page.wait_for_load_state()
