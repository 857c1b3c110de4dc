"""Fixtures for the JSON API: a client that signs in with tokens (no session cookie)."""
from __future__ import annotations

import uuid

import pytest

from tests.conftest import PASSWORD

ROLE_USERS = {"collector": "col", "manager": "mgr", "finance": "fin", "legal": "leg", "admin": "adm"}


class Api:
    def __init__(self, client):
        self.client = client
        self.tokens: dict[str, dict] = {}

    def sign_in(self, username: str, password: str = PASSWORD) -> dict:
        response = self.client.post("/api/v1/auth/token", json={"username": username, "password": password})
        assert response.status_code == 201, response.get_json()
        self.tokens[username] = response.get_json()["data"]
        return self.tokens[username]

    def token(self, username: str) -> str:
        if username not in self.tokens:
            self.sign_in(username)
        return self.tokens[username]["access_token"]

    def call(self, method: str, path: str, as_user: str | None = None, *, token: str | None = None, headers=None,
             **kwargs):
        headers = dict(headers or {})
        if as_user is not None:
            token = self.token(as_user)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)

    def get(self, path, as_user=None, **kwargs):
        return self.call("GET", path, as_user, **kwargs)

    def post(self, path, as_user=None, **kwargs):
        return self.call("POST", path, as_user, **kwargs)

    def patch(self, path, as_user=None, **kwargs):
        return self.call("PATCH", path, as_user, **kwargs)

    def pay(self, as_user: str, key: str | None = None, **body):
        payment = {"loan_number": "KL0001", "amount": "1000.00", "mode": "UPI", "utr": "123456789012"}
        payment.update(body)
        payment = {k: v for k, v in payment.items() if v is not None}
        headers = {} if key == "" else {"Idempotency-Key": key or uuid.uuid4().hex}
        return self.post("/payments", as_user, json=payment, headers=headers)


@pytest.fixture()
def api(app, db, users):
    return Api(app.test_client())


def assert_envelope(response, status: int, code: str | None = None):
    body = response.get_json()
    assert response.status_code == status, body
    assert set(body) == {"success", "data", "error", "meta"}, body
    assert body["meta"]["request_id"] == response.headers["X-Request-ID"]
    if status < 400:
        assert body["success"] is True and body["error"] is None
    else:
        assert body["success"] is False and body["data"] is None
        assert set(body["error"]) == {"code", "message", "fields"}
        if code:
            assert body["error"]["code"] == code, body
    return body


# ---------------------------------------------------------------- a live server on PostgreSQL with real data

class Live:
    def __init__(self, app, base: str):
        self.app, self.base = app, base
        self._tokens: dict[str, str] = {}

    def token(self, username: str) -> str:
        import json
        import urllib.request

        if username not in self._tokens:
            request = urllib.request.Request(f"{self.base}/api/v1/auth/token", method="POST",
                                             data=json.dumps({"username": username, "password": PASSWORD}).encode(),
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                self._tokens[username] = json.loads(response.read())["data"]["access_token"]
        return self._tokens[username]

    def call(self, method: str, path: str, username: str | None = None, body=None, headers=None) -> tuple[int, dict, bytes]:
        import json
        import urllib.error
        import urllib.request

        headers = dict(headers or {})
        if username:
            headers["Authorization"] = f"Bearer {self.token(username)}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(f"{self.base}/api/v1{path}", method=method, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()


def seed_live_data(session) -> None:
    """Branches, one user per role, loans in every class, payments, a pending approval, a dispute, a day-end run."""
    from datetime import timedelta

    from tests.conftest import loan_row
    from webapp import clock
    from webapp.models import CronRun
    from webapp.permissions import SystemActor
    from webapp.services import approvals, disputes, loans, org, payments

    system = SystemActor("test")
    for code, name in (("PUNE01", "Pune Camp"), ("NSK01", "Nashik Road")):
        org.create_branch(session, system, code=code, name=name)
    users = {}
    for username, role, branch in (("col", "collector", "PUNE01"), ("mgr", "manager", "PUNE01"), ("fin", "finance", None),
                                   ("leg", "legal", None), ("adm", "admin", None), ("col2", "collector", "NSK01")):
        users[username] = org.create_user(session, system, username=username, role=role, password=PASSWORD,
                                          branch_code=branch)
    today = clock.today_ist()
    for i in range(1, 9):
        months_ago = (i * 37) % 11
        disbursed = today - timedelta(days=30 * months_ago + 5)
        loans.create_loan(session, system, loan_row(
            loan_number=f"KL{i:04d}", principal=f"{50000 + 12345 * i}.50", annual_rate=f"{10 + i}.25",
            tenure_months=str(6 + i), disbursed_on=disbursed.isoformat(),
            first_due_on=(disbursed + timedelta(days=30)).isoformat(),
            branch_code="PUNE01" if i % 3 else "NSK01", collector_username="col" if i % 3 else "col2"))
    for i, loan_number in enumerate(("KL0001", "KL0002", "KL0004")):
        payments.record_payment(session, users["col"], loan_number, {
            "amount": "1500.00", "mode": "UPI", "reference": f"90000000000{i}"})
    held = payments.record_payment(session, users["col"], "KL0005", {
        "amount": "700.00", "mode": "NEFT", "reference": "HDFCN00000000001",
        "value_date": (today - timedelta(days=12)).isoformat()})
    assert held.approval is not None
    posted = session.query(payments.Payment).filter_by(utr="900000000000").one()
    approvals.request_reversal(session, users["mgr"], posted.reference, {"reason": "DUPLICATE", "amount": "100"})
    disputes.raise_dispute(session, users["col"], "KL0002", {"category": "WRONG_AMOUNT", "description": "EMI differs"})
    session.add(CronRun(job="dayend", business_date=today - timedelta(days=1), attempt=1, status="SUCCEEDED",
                        loans_processed=8, finished_at=clock.now()))


@pytest.fixture(scope="session")
def live():
    import threading

    from werkzeug.serving import make_server

    from tests import pg
    from tests.conftest import migrate
    from webapp import create_app
    from webapp import db as kisht_db

    url = pg.fresh_database("kisht_api_live")
    app = create_app({"APP_ENV": "test", "DATABASE_URL": url, "REDIS_URL": "", "DB_POOL_SIZE": 40,
                      "SHOW_FRIENDLY_500": True})
    migrate(app)
    with app.app_context():
        with kisht_db.new_session() as session:
            seed_live_data(session)
            session.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Live(app, f"http://127.0.0.1:{server.server_port}")
    server.shutdown()
    app.extensions["kisht.engine"].dispose()
