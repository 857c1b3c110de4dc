"""/healthz (process alive) and /readyz (database and Redis reachable, each check reported)."""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from webapp import db
from webapp.permissions import public

bp = Blueprint("health", __name__)
log = logging.getLogger("kisht.health")


@bp.get("/healthz")
@public
def healthz():
    return jsonify({"success": True, "data": {"status": "alive"}, "error": None, "meta": {}})


@bp.get("/readyz")
@public
def readyz():
    from webapp.api import limits

    checks = {"database": _check_database(), "redis": _check_redis(), "rate_limits": limits.status(current_app)}
    ready = all(c["ok"] for c in checks.values())
    body = {"success": ready, "data": {"status": "ready" if ready else "not ready", "checks": checks},
            "error": None if ready else {"code": "not_ready", "message": "A dependency is unreachable.", "fields": {}},
            "meta": {}}
    return jsonify(body), 200 if ready else 503


def _check_database() -> dict:
    try:
        with db.engine().connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"ok": True, "backend": db.engine().dialect.name}
    except Exception as error:  # any failure means not ready; the detail goes to the log, not the client
        log.warning("readiness: database unreachable: %s", type(error).__name__)
        return {"ok": False, "backend": db.engine().dialect.name, "detail": "unreachable"}


def _check_redis() -> dict:
    url = current_app.config["REDIS_URL"]
    if not url:
        return {"ok": True, "mode": "embedded", "detail": "REDIS_URL not set: jobs in-process, limits in memory"}
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
        return {"ok": True, "mode": "redis"}
    except redis.RedisError as error:
        log.warning("readiness: redis unreachable: %s", type(error).__name__)
        return {"ok": False, "mode": "redis", "detail": "unreachable"}
