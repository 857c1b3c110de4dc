"""Rate limits with flask-limiter on the real Redis (db 13), and with Redis unreachable (a closed port).

The shared Redis server is never stopped: "Redis down" is a storage URL on a port nobody listens on.
"""
import logging

import pytest
import redis

from tests.api.conftest import Api, assert_envelope
from webapp import create_app

REDIS_DB13 = "redis://127.0.0.1:6379/13"
CLOSED_PORT = "redis://127.0.0.1:1/0"


@pytest.fixture()
def limited(app, db, users, database_url):
    """An app with limits on (small ones), sharing the test's transaction; Redis db 13 emptied first."""
    made = []

    def make(storage: str = REDIS_DB13, **limits):
        redis.Redis.from_url(REDIS_DB13).flushdb()
        config = {"APP_ENV": "test", "DATABASE_URL": database_url, "REDIS_URL": "", "API_RATE_LIMITS_ENABLED": True,
                  "API_RATE_LIMIT_STORAGE_URL": storage, "PROXY_HOPS": 1, "API_LIMIT_LOGIN": "5 per minute",
                  "API_LIMIT_LOGIN_IP": "5 per minute", "API_LIMIT_REFRESH": "2 per minute",
                  "API_LIMIT_DEFAULT": "4 per minute", **limits}
        limited_app = create_app(config)
        limited_app.extensions["kisht.engine"].dispose()
        limited_app.extensions["kisht.engine"] = app.extensions["kisht.engine"]
        limited_app.extensions["kisht.sessionmaker"] = app.extensions["kisht.sessionmaker"]  # the test's transaction
        made.append(limited_app)
        return limited_app

    yield make
    redis.Redis.from_url(REDIS_DB13).flushdb()


def sign_in(client, username, password="correct-horse-battery", ip="10.0.0.1"):
    return client.post("/api/v1/auth/token", json={"username": username, "password": password},
                       headers={"X-Forwarded-For": ip})


def assert_429(response):
    body = assert_envelope(response, 429, "too_many_requests")
    assert int(response.headers["Retry-After"]) >= 0 and "Retry-After" in response.headers
    return body


def test_sign_in_is_limited_per_username_and_per_address(limited):
    client = limited().test_client()
    for i in range(5):
        assert sign_in(client, "fin", "wrong-password", ip=f"10.0.1.{i}").status_code == 401
    assert_429(sign_in(client, "fin", ip="10.0.1.99"))  # sixth try on the username, from a fresh address
    assert sign_in(client, "mgr", ip="10.0.1.99").status_code == 201  # another username is not held back
    for username in ("col", "leg", "adm", "col2"):
        assert sign_in(client, username, ip="10.0.2.1").status_code == 201
    assert sign_in(client, "mgr2", ip="10.0.2.1").status_code == 201
    assert_429(sign_in(client, "mgr", ip="10.0.2.1"))  # sixth from one address


def test_api_calls_are_limited_per_token_and_health_never(limited):
    limited_app = limited()
    api = Api(limited_app.test_client())
    for _ in range(4):
        assert_envelope(api.get("/loans", "fin"), 200)
    response = api.get("/loans", "fin")
    assert_429(response)
    assert_envelope(api.get("/loans", "mgr"), 200)  # another token, another count
    client = limited_app.test_client()
    for _ in range(30):
        assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").get_json()["data"]["checks"]["rate_limits"] == {"ok": True, "mode": "redis"}
    keys = redis.Redis.from_url(REDIS_DB13).keys("*kisht-api*")
    assert keys  # counted in Redis, shared by every process


def test_refresh_is_limited_per_family(limited):
    api = Api(limited().test_client())
    pair = api.sign_in("fin")
    for _ in range(2):
        pair = assert_envelope(api.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}), 200)["data"]
    assert_429(api.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}))
    other = api.sign_in("mgr")
    assert_envelope(api.post("/auth/refresh", json={"refresh_token": other["refresh_token"]}), 200)


def test_a_payment_replay_is_never_refused_nor_counted(limited, make_loan):
    make_loan()
    api = Api(limited(API_LIMIT_DEFAULT="3 per minute").test_client())
    first = api.pay("col", key="retry-key-0001")
    assert first.status_code == 201
    for _ in range(10):  # a collector on a bad network retrying: every retry gets the receipt, none is counted
        again = api.pay("col", key="retry-key-0001")
        assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert_envelope(api.get("/loans", "col"), 200)
    assert_envelope(api.get("/loans", "col"), 200)  # 3 counted: the first payment and these two
    assert_429(api.pay("col", key="retry-key-0002", utr="222222222222"))  # a new payment is counted
    assert_429(api.get("/loans", "col"))
    replay = api.pay("col", key="retry-key-0001")
    assert replay.status_code == 201 and replay.get_data() == first.get_data()  # still answered once limited


def test_redis_down_falls_back_to_memory_logged_and_shown(limited, caplog):
    limited_app = limited(storage=CLOSED_PORT)
    api = Api(limited_app.test_client())
    with caplog.at_level(logging.WARNING):
        for _ in range(4):
            assert_envelope(api.get("/loans", "fin"), 200)
        assert_429(api.get("/loans", "fin"))  # still limited, per process
    assert any("falling back to in-memory" in r.getMessage() for r in caplog.records)
    checks = limited_app.test_client().get("/readyz").get_json()["data"]["checks"]
    assert checks["rate_limits"]["mode"] == "memory-fallback" and "unreachable" in checks["rate_limits"]["detail"]


def test_without_any_redis_limits_are_in_memory(limited):
    limited_app = limited(storage="")
    api = Api(limited_app.test_client())
    for _ in range(4):
        assert_envelope(api.get("/loans", "fin"), 200)
    assert_429(api.get("/loans", "fin"))
    assert limited_app.test_client().get("/readyz").get_json()["data"]["checks"]["rate_limits"]["mode"] == "memory"
