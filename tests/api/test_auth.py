"""Tokens: issue, expiry on the app's clock, tampering, algorithms, rotation, reuse, logout, disabled users."""
from datetime import timedelta

import jwt
import pytest

from tests.api.conftest import assert_envelope
from webapp import clock
from webapp.models import ApiTokenFamily, AuditEntry


def shift_clock(monkeypatch, **delta):
    real = clock.now
    later = real() + timedelta(**delta)
    monkeypatch.setattr(clock, "now", lambda: later)


def test_sign_in_gives_a_short_access_and_a_long_refresh_token(api, app):
    data = assert_envelope(api.client.post("/api/v1/auth/token", json={"username": "col", "password": "correct-horse-battery"}), 201)["data"]
    assert data["token_type"] == "Bearer" and data["user"] == {"username": "col", "role": "collector", "branch": "PUNE01"}
    assert 890 <= data["expires_in"] <= 900
    assert data["access_expires_at"].endswith("+05:30") and data["refresh_expires_at"].endswith("+05:30")
    claims = jwt.decode(data["refresh_token"], app.config["SECRET_KEY"], algorithms=["HS256"], issuer="kisht")
    assert claims["exp"] - claims["iat"] == 7 * 24 * 3600 and claims["typ"] == "refresh"
    assert_envelope(api.get("/loans", token=data["access_token"]), 200)


def test_wrong_password_is_401_counted_and_locks_like_the_screen(api, db, users):
    for _ in range(5):
        assert_envelope(api.client.post("/api/v1/auth/token", json={"username": "col", "password": "nope-nope-nope"}),
                        401, "invalid_credentials")
    db.refresh(users["col"])
    assert users["col"].locked_until is not None  # LOGIN_MAX_ATTEMPTS, as on the sign-in screen
    body = assert_envelope(api.client.post("/api/v1/auth/token", json={"username": "col", "password": "correct-horse-battery"}), 401)
    assert "locked" in body["error"]["message"]


@pytest.mark.parametrize("payload", [None, [], {"username": "col"}, {"username": 5, "password": "x"},
                                     {"username": "col", "password": "x", "role": "admin"}])
def test_bad_sign_in_bodies_name_the_problem(api, payload):
    response = api.client.post("/api/v1/auth/token", json=payload) if payload is not None else \
        api.client.post("/api/v1/auth/token", data="username=col", content_type="application/x-www-form-urlencoded")
    body = assert_envelope(response, 400 if not isinstance(payload, dict) else 422)
    assert body["error"]["fields"]


def test_missing_malformed_tampered_and_foreign_tokens_are_401(api, app):
    access = api.token("col")
    refresh = api.tokens["col"]["refresh_token"]
    secret = app.config["SECRET_KEY"]
    claims = jwt.decode(access, secret, algorithms=["HS256"], issuer="kisht")
    header, payload, signature = access.split(".")
    forged_claims = jwt.encode({**claims, "sub": "999"}, "another-secret-of-sufficient-length", algorithm="HS256")
    cases = {
        "missing": None,
        "garbage": "not-a-jwt",
        "tampered signature": f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}",
        "tampered claims": forged_claims,
        "alg none": jwt.encode(claims, None, algorithm="none"),
        "alg HS512": jwt.encode(claims, secret, algorithm="HS512"),
        "refresh used as access": refresh,
    }
    for name, token in cases.items():
        body = assert_envelope(api.get("/loans", token=token), 401)
        assert body["error"]["code"] in ("unauthorized", "token_expired"), name
    response = api.client.get("/api/v1/loans", headers={"Authorization": f"Basic {access}"})
    assert_envelope(response, 401)


def test_access_token_expires_after_15_minutes_on_the_app_clock(api, monkeypatch):
    token = api.token("col")
    shift_clock(monkeypatch, minutes=14, seconds=50)
    assert_envelope(api.get("/loans", token=token), 200)
    shift_clock(monkeypatch, seconds=20)
    assert_envelope(api.get("/loans", token=token), 401, "token_expired")


def test_refresh_token_expires_after_7_days(api, monkeypatch):
    refresh = api.sign_in("col")["refresh_token"]
    shift_clock(monkeypatch, days=7, seconds=1)
    assert_envelope(api.post("/auth/refresh", json={"refresh_token": refresh}), 401, "token_expired")


def test_refresh_rotates_and_reuse_revokes_the_whole_family(api, db):
    first = api.sign_in("col")
    second = assert_envelope(api.post("/auth/refresh", json={"refresh_token": first["refresh_token"]}), 200)["data"]
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    assert_envelope(api.get("/loans", token=second["access_token"]), 200)
    # The old refresh token comes back (stolen copy, or a replay): the family is ended at once.
    assert_envelope(api.post("/auth/refresh", json={"refresh_token": first["refresh_token"]}), 401, "token_reused")
    assert_envelope(api.post("/auth/refresh", json={"refresh_token": second["refresh_token"]}), 401, "token_revoked")
    assert_envelope(api.get("/loans", token=second["access_token"]), 401, "token_revoked")
    assert_envelope(api.get("/loans", token=first["access_token"]), 401, "token_revoked")
    family = db.query(ApiTokenFamily).one()
    assert family.revoked_reason == "refresh_reuse"
    assert db.query(AuditEntry).filter_by(action="api.tokens_revoked").count() == 1
    # Signing in again starts a new family that works.
    assert_envelope(api.get("/loans", token=api.sign_in("col")["access_token"]), 200)


def test_logout_revokes_access_and_refresh(api):
    pair = api.sign_in("mgr")
    assert_envelope(api.post("/auth/logout", token=pair["access_token"]), 200)
    assert_envelope(api.get("/loans", token=pair["access_token"]), 401, "token_revoked")
    assert_envelope(api.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}), 401, "token_revoked")
    other = api.sign_in("mgr")
    assert_envelope(api.post("/auth/logout", json={"refresh_token": other["refresh_token"]}), 200)
    assert_envelope(api.get("/loans", token=other["access_token"]), 401, "token_revoked")
    assert_envelope(api.post("/auth/logout", json={}), 401)
    assert_envelope(api.post("/auth/logout", json={"refresh_token": 5}), 422)


@pytest.mark.parametrize("change", ["disable", "lock"])
def test_disabled_or_locked_users_tokens_stop_at_once(api, db, users, change):
    pair = api.sign_in("col")
    assert_envelope(api.get("/loans", token=pair["access_token"]), 200)
    if change == "disable":
        users["col"].active = False
    else:
        users["col"].locked_until = clock.now() + timedelta(minutes=15)
    db.flush()
    assert_envelope(api.get("/loans", token=pair["access_token"]), 401, "account_unavailable")
    assert_envelope(api.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}), 401, "account_unavailable")


def test_a_browser_session_never_authenticates_the_api(login_as, make_loan):
    browser = login_as("col")
    assert_envelope(browser.get("/api/v1/loans"), 401)
    # and no CSRF token is asked of token clients (the API is exempt)
    assert_envelope(browser.post("/api/v1/auth/token", json={"username": "col", "password": "x"}), 401)
