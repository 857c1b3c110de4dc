"""Rate limits for /api/v1 with flask-limiter (docs/api.md "Rate limits").

* Storage: Redis (API_RATE_LIMIT_STORAGE_URL, default REDIS_URL), so every process shares the counts. When
  Redis cannot be reached the limiter falls back to memory (per process), logs it, and /readyz shows it;
  it returns to Redis by itself once Redis answers again. Without any Redis URL (development) limits are
  kept in memory.
* Keys: sign-in by username and, separately, by client address; refresh by token family; everything else
  by the access token's family (one signed-in client), or the client address without a valid token.
* Only /api/v1 is limited: /healthz, /readyz, /metrics and the screens never are.
* Critical-operation bypass: a payment retried with an Idempotency-Key whose response is already stored
  is neither refused nor counted, so a collector on a bad network can always get the receipt back.
"""
from __future__ import annotations

import logging

from flask import Flask, current_app, request
from flask_limiter import Limiter

from webapp.api import tokens

log = logging.getLogger("kisht.api.limits")
EXTENSION = "kisht.limiter"


def client_address() -> str:
    return request.remote_addr or "-"


def _json_field(name: str) -> str:
    body = request.get_json(silent=True)
    value = body.get(name) if isinstance(body, dict) else None
    return value.strip().lower()[:64] if isinstance(value, str) else "-"


def login_username_key() -> str:
    return f"login-user:{_json_field('username')}"


def login_address_key() -> str:
    return f"login-ip:{client_address()}"


def refresh_key() -> str:
    body = request.get_json(silent=True)
    token = body.get("refresh_token") if isinstance(body, dict) else None
    family = tokens.unverified_family(token if isinstance(token, str) else None, "refresh")
    return f"family:{family}" if family else f"ip:{client_address()}"


def token_key() -> str:
    family = tokens.unverified_family(tokens.bearer(request.headers.get("Authorization")), "access")
    return f"family:{family}" if family else f"ip:{client_address()}"


def is_payment_replay() -> bool:
    """True when this POST /payments is a replay of a stored response (never limited, never counted)."""
    from webapp.api import routes

    return routes.payment_replay_stored()


def _not_replayed(response) -> bool:
    return response.headers.get("Idempotent-Replayed") != "true"


def init_app(app: Flask, blueprint) -> Limiter:
    storage = app.config["API_RATE_LIMIT_STORAGE_URL"] or app.config["REDIS_URL"] or "memory://"
    limiter = Limiter(
        key_func=token_key, app=app, storage_uri=storage, key_prefix="kisht-api",
        storage_options={"socket_connect_timeout": 1, "socket_timeout": 1} if storage.startswith("redis") else {},
        in_memory_fallback_enabled=True, headers_enabled=True, swallow_errors=True,
        enabled=app.config["API_RATE_LIMITS_ENABLED"], strategy="moving-window",
    )
    app.extensions[EXTENSION] = limiter
    default = lambda: current_app.config["API_LIMIT_DEFAULT"]  # noqa: E731
    # One count per token family across the whole API (scope "api"), not one per endpoint.
    limiter.shared_limit(default, scope="api", key_func=token_key)(blueprint)
    views = app.view_functions  # route limits wrap this app's view functions (the check runs in the wrapper)
    login, login_ip = (lambda: current_app.config["API_LIMIT_LOGIN"]), (lambda: current_app.config["API_LIMIT_LOGIN_IP"])
    views["api.issue_token"] = limiter.limit(login_ip, key_func=login_address_key)(
        limiter.limit(login, key_func=login_username_key)(views["api.issue_token"]))
    views["api.refresh_token"] = limiter.limit(lambda: current_app.config["API_LIMIT_REFRESH"],
                                               key_func=refresh_key)(views["api.refresh_token"])
    views["api.create_payment"] = limiter.shared_limit(default, scope="api", key_func=token_key,
                                                       exempt_when=is_payment_replay,
                                                       deduct_when=_not_replayed)(views["api.create_payment"])
    return limiter


def status(app: Flask) -> dict:
    """For /readyz: where the counts are kept right now."""
    limiter: Limiter | None = app.extensions.get(EXTENSION)
    if limiter is None or not limiter.enabled:
        return {"ok": True, "mode": "disabled"}
    uri = app.config["API_RATE_LIMIT_STORAGE_URL"] or app.config["REDIS_URL"]
    if not uri:
        return {"ok": True, "mode": "memory", "detail": "no Redis URL: limits kept in memory per process"}
    try:
        reachable = bool(limiter.storage.check())
    except Exception:  # noqa: BLE001 - any failure means the shared store is not there
        reachable = False
    if reachable and not limiter._storage_dead:  # the limiter's own flag: it returns to Redis by itself
        return {"ok": True, "mode": "redis"}
    if not reachable:
        log.warning("rate limits: Redis unreachable, limits kept in memory per process")
    return {"ok": True, "mode": "memory-fallback",
            "detail": "Redis for rate limits unreachable: limits kept in memory per process"}
