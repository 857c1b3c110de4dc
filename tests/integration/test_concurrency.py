"""Real concurrent HTTP requests against a live server on PostgreSQL: no double booking, no deadlock.

These tests commit (each request is its own transaction), so they use their own database.
"""
import http.cookiejar
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from tests import pg
from tests.conftest import PASSWORD, loan_row, migrate
from webapp import create_app
from webapp import db as kisht_db
from webapp.models import Allocation, Payment
from webapp.permissions import SystemActor
from webapp.services import ledger, loans, org, replay


@pytest.fixture(scope="module")
def server():
    url = pg.fresh_database("kisht_concurrency")
    app = create_app({"APP_ENV": "test", "DATABASE_URL": url, "REDIS_URL": "", "DB_POOL_SIZE": 60,
                      "SHOW_FRIENDLY_500": True})
    migrate(app)
    with app.app_context():
        with kisht_db.new_session() as session:
            system = SystemActor("test")
            org.create_branch(session, system, code="PUNE01", name="Pune Camp")
            org.create_user(session, system, username="col", role="collector", password=PASSWORD, branch_code="PUNE01")
            for number in ("KLA", "KLB", "KLC"):
                loans.create_loan(session, system, loan_row(loan_number=number, principal="500000", tenure_months="24"))
            session.commit()
    http_server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http_server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{http_server.server_port}"
    http_server.shutdown()
    app.extensions["kisht.engine"].dispose()


class Browser:
    """A signed-in user agent over real HTTP (its own cookie jar)."""

    def __init__(self, base: str, username: str):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        token = self.token("/login")
        self.post("/login", {"username": username, "password": PASSWORD, "csrf_token": token})

    def get(self, path: str) -> str:
        return self.opener.open(self.base + path, timeout=60).read().decode()

    def token(self, path: str) -> str:
        return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', self.get(path)).group(1)

    def post(self, path: str, data: dict) -> tuple[int, str]:
        body = urllib.parse.urlencode(data).encode()
        request = urllib.request.Request(self.base + path, data=body, headers={"HX-Request": "true"})
        try:
            response = self.opener.open(request, timeout=120)
            return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


def all_at_once(count: int, work):
    barrier = threading.Barrier(count)

    def run(i):
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def payments_of(app, number):
    with app.app_context():
        with kisht_db.new_session() as session:
            loan = loans.get_for(session, SystemActor("test"), number)
            loan.instalments  # loaded now: the loan is used after its session closes
            return loan, session.scalars(select(Payment).where(Payment.loan_id == loan.id).order_by(Payment.id)).all()


def test_fifty_concurrent_submissions_with_one_key_book_once(server):
    app, base = server
    browser = Browser(base, "col")
    form = {"csrf_token": browser.token("/loans/KLA/payments/new"), "idempotency_key": uuid.uuid4().hex,
            "amount": "1000", "mode": "UPI", "reference": "100000000001", "value_date": "",
            "cheque_bank": "", "receipt_number": ""}
    results = all_at_once(50, lambda i: browser.post("/loans/KLA/payments", form))
    assert {status for status, _ in results} == {201}
    assert len({body for _, body in results}) == 1  # every answer is the stored one, byte for byte
    _, booked = payments_of(app, "KLA")
    assert len(booked) == 1


def test_fifty_keys_one_utr_book_once(server):
    app, base = server
    browser = Browser(base, "col")
    token = browser.token("/loans/KLB/payments/new")

    def submit(i):
        return browser.post("/loans/KLB/payments", {
            "csrf_token": token, "idempotency_key": uuid.uuid4().hex, "amount": "500", "mode": "IMPS",
            "reference": "200000000002", "value_date": "", "cheque_bank": "", "receipt_number": ""})

    statuses = sorted(status for status, _ in all_at_once(50, submit))
    assert statuses == [201] + [409] * 49
    _, booked = payments_of(app, "KLB")
    assert len(booked) == 1


def test_twenty_different_payments_to_one_loan_allocate_as_if_sequential(server):
    app, base = server
    browser = Browser(base, "col")
    token = browser.token("/loans/KLC/payments/new")

    def submit(i):
        return browser.post("/loans/KLC/payments", {
            "csrf_token": token, "idempotency_key": uuid.uuid4().hex, "amount": f"{1000 + 137 * i}.{i:02d}",
            "mode": "UPI", "reference": f"3000000000{i:02d}", "value_date": "", "cheque_bank": "",
            "receipt_number": ""})

    assert [status for status, _ in all_at_once(20, submit)] == [201] * 20  # no deadlock, no error
    loan, booked = payments_of(app, "KLC")
    assert len(booked) == 20
    with app.app_context():
        expected = replay.position_for(loan, [ledger.Receipt(p.id, p.value_date, p.amount_paise) for p in booked])
        with kisht_db.new_session() as session:
            stored = session.execute(select(Allocation.payment_id, Allocation.component, Allocation.amount_paise)
                                     .where(Allocation.loan_id == loan.id).order_by(Allocation.id)).all()
    assert [(a.key, a.component, a.amount_paise) for a in expected.allocations] == [tuple(r) for r in stored]
    assert loan.overdue_paise == expected.overdue_paise and loan.dpd == expected.dpd
