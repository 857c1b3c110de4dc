"""Errors never leak internals; every response has a request id; health and readiness report honestly."""
import subprocess
import sys

import pytest

from webapp import create_app
from webapp.config import ROOT


def test_unknown_page_is_a_friendly_404(client):
    response = client.get("/no/such/page")
    html = response.get_data(as_text=True)
    assert response.status_code == 404 and "Not found." in html and "Traceback" not in html
    assert response.headers["X-Request-ID"] in html


def test_htmx_errors_are_fragments(login_as, make_loan):
    response = login_as("col").get("/loans/NOPE", headers={"HX-Request": "true"})
    assert response.status_code == 404 and response.get_data(as_text=True).lstrip().startswith('<div class="alert')


def test_api_paths_answer_with_the_envelope(client):
    response = client.get("/api/v1/nothing-here")
    body = response.get_json()
    assert response.status_code == 404 and body["success"] is False and body["error"]["code"] == "not_found"
    assert body["meta"]["request_id"] == response.headers["X-Request-ID"]


def test_csrf_refusal_carries_the_request_id(client):
    response = client.post("/login", data={"username": "x"}, headers={"X-Request-ID": "csrf-check-01"})
    assert response.status_code == 400 and response.headers["X-Request-ID"] == "csrf-check-01"
    assert "csrf-check-01" in response.get_data(as_text=True)


def test_request_id_is_echoed_or_made(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc12345-req"}).headers["X-Request-ID"] == "abc12345-req"
    assert len(client.get("/healthz", headers={"X-Request-ID": "<script>"}).headers["X-Request-ID"]) == 32


def test_unexpected_error_is_a_plain_500_without_internals(database_url):
    app = create_app({"APP_ENV": "test", "DATABASE_URL": database_url, "SHOW_FRIENDLY_500": True})

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret detail /etc/passwd SELECT * FROM users")

    boom.kisht_permission = "public"
    client = app.test_client()
    for headers in ({}, {"HX-Request": "true"}):
        response = client.get("/boom", headers=headers)
        text = response.get_data(as_text=True)
        assert response.status_code == 500 and "secret detail" not in text and "Traceback" not in text
        assert "Something went wrong" in text
    app.extensions["kisht.engine"].dispose()


def test_healthz_and_readyz_embedded(client):
    assert client.get("/healthz").get_json()["data"]["status"] == "alive"
    body = client.get("/readyz").get_json()
    assert body["success"] and body["data"]["checks"]["redis"]["mode"] == "embedded"


@pytest.mark.parametrize("redis_url, status", [("redis://127.0.0.1:6379/0", 200), ("redis://127.0.0.1:1/0", 503)])
def test_readyz_checks_real_redis(database_url, redis_url, status):
    app = create_app({"APP_ENV": "test", "DATABASE_URL": database_url, "REDIS_URL": redis_url})
    response = app.test_client().get("/readyz")
    assert response.status_code == status
    assert response.get_json()["data"]["checks"]["redis"]["ok"] is (status == 200)
    app.extensions["kisht.engine"].dispose()


def test_readyz_reports_an_unreachable_database():
    app = create_app({"APP_ENV": "test", "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    body = app.test_client().get("/readyz")
    assert body.status_code == 503 and body.get_json()["data"]["checks"]["database"]["ok"] is False


STRONG = "k" * 10 + "Zq81-xV93-mP20-aL77-wR45"


def start_production(env_extra: dict, tmp_path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "APP_ENV": "production", "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
           **env_extra}
    return subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("env_extra, reason", [
    ({}, "SECRET_KEY is missing"),
    ({"SECRET_KEY": "changeme"}, "SECRET_KEY is weak"),
    ({"SECRET_KEY": "a" * 40}, "SECRET_KEY is weak"),
    ({"SECRET_KEY": STRONG, "DEBUG": "1", "REDIS_URL": "redis://127.0.0.1:6379/0"}, "DEBUG is on"),
    ({"SECRET_KEY": STRONG}, "REDIS_URL is not set"),
    ({"SECRET_KEY": STRONG, "LOG_LEVEL": "chatty"}, "LOG_LEVEL must be"),
    ({"SECRET_KEY": STRONG, "LOGIN_MAX_ATTEMPTS": "0"}, "LOGIN_MAX_ATTEMPTS must be a whole number of at least 1"),
])
def test_production_refuses_unsafe_settings(tmp_path, env_extra, reason):
    result = start_production(env_extra, tmp_path)
    assert result.returncode == 3  # gunicorn's "worker failed to boot": the master halts instead of respawning
    assert len(result.stderr.strip().splitlines()) == 1  # one clear line, no traceback
    assert result.stderr.startswith(f"Kisht refuses to start: {reason}")


def test_production_refuses_a_database_with_demo_users(tmp_path):
    from webapp import db
    from webapp.permissions import SystemActor
    from webapp.services import org
    from tests.conftest import migrate

    url = f"sqlite:///{tmp_path / 'p.db'}"
    app = create_app({"APP_ENV": "test", "DATABASE_URL": url})
    migrate(app)
    with app.app_context():
        with db.new_session() as session:
            org.create_user(session, SystemActor("t"), username="demo.admin", role="admin",
                            password="whatever-long", is_demo=True)
            session.commit()
    app.extensions["kisht.engine"].dispose()
    result = start_production({"SECRET_KEY": STRONG, "REDIS_URL": "redis://127.0.0.1:6379/0"}, tmp_path)
    assert result.returncode == 3 and "demo user 'demo.admin' exists" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_production_starts_with_safe_settings(tmp_path):
    assert start_production({"SECRET_KEY": STRONG, "REDIS_URL": "redis://127.0.0.1:6379/0"}, tmp_path).returncode == 0
