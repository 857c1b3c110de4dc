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
