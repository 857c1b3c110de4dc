"""Signing in and out through the browser forms: roles, lockout, idle timeout, CSRF, cookies."""
import re

import pytest
from sqlalchemy import select

from tests.conftest import PASSWORD, csrf_token, login
from webapp import clock
from webapp.models import AuditEntry

HOMES = {"col": "/collector/", "mgr": "/manager/", "fin": "/finance/", "leg": "/legal/", "adm": "/admin/"}


@pytest.mark.parametrize("username, home", HOMES.items())
def test_each_role_lands_on_its_home(client, users, username, home):
    response = login(client, username)
    assert response.status_code == 302 and response.headers["Location"] == home
    page = client.get(home)
    assert page.status_code == 200 and 'data-testid="home-title"' in page.get_data(as_text=True)
    assert client.get("/").headers["Location"] == home


def test_session_cookie_is_httponly_and_lax(client, users):
    response = login(client, "col")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_wrong_password_then_lockout(client, users, db):
    for _ in range(4):
        response = login(client, "mgr", "not-the-password")
        assert response.status_code == 401 and "Invalid username or password" in response.get_data(as_text=True)
    response = login(client, "mgr", "not-the-password")
    assert "locked" in response.get_data(as_text=True)
    assert login(client, "mgr", PASSWORD).status_code == 401
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "user.locked")).entity_id == "mgr"


def test_idle_session_expires(client, users, monkeypatch, app):
    login(client, "fin")
    assert client.get("/finance/").status_code == 200
    later = clock.now().timestamp() + app.config["SESSION_IDLE_MINUTES"] * 60 + 5
    monkeypatch.setattr(clock, "now", lambda: clock.datetime.fromtimestamp(later, clock.timezone.utc))
    response = client.get("/finance/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert "inactivity" in client.get("/login").get_data(as_text=True)


def test_logout_needs_csrf_and_ends_the_session(client, users):
    login(client, "leg")
    assert client.post("/logout").status_code == 400  # no token
    token = csrf_token(client, "/legal/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/legal/").status_code == 302


def test_login_without_csrf_is_refused(client, users):
    response = client.post("/login", data={"username": "col", "password": PASSWORD})
    assert response.status_code in (400, 422)
    assert client.get("/collector/").status_code == 302


def test_next_only_follows_local_paths(client, users):
    token = csrf_token(client)
    response = client.post("/login?next=//evil.example/x", data={"username": "col", "password": PASSWORD,
                                                                   "csrf_token": token})
    assert response.headers["Location"] == "/collector/"


def test_htmx_requests_carry_the_csrf_header(client, users):
    login(client, "col")
    html = client.get("/collector/").get_data(as_text=True)
    assert re.search(r'hx-headers=\'\{"X-CSRFToken": "[^"]+"\}\'', html)


def test_the_session_cookie_is_renewed_when_the_idle_clock_moves_not_on_every_request(client, users, monkeypatch):
    from webapp import LAST_SEEN_STEP_SECONDS

    login(client, "fin")
    assert client.get("/finance/").status_code == 200
    assert "Set-Cookie" not in client.get("/finance/").headers  # seconds later: nothing to renew
    later = clock.now().timestamp() + LAST_SEEN_STEP_SECONDS + 1
    monkeypatch.setattr(clock, "now", lambda: clock.datetime.fromtimestamp(later, clock.timezone.utc))
    renewed = client.get("/finance/")
    assert renewed.status_code == 200 and "session=" in renewed.headers.get("Set-Cookie", "")
