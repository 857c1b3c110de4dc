"""Operations: request logging and metrics, /metrics, system status, backups' screen, start-up checks."""
from __future__ import annotations

import logging
import time

from flask import Flask, g, request
from flask_login import current_user

log = logging.getLogger("kisht.request")


def register(app: Flask) -> None:
    """One JSON line and one observation per request; /metrics and the admin system page."""
    from webapp.ops import metrics
    from webapp.ops.routes import bp as system_bp

    @app.before_request
    def _clock_in():
        g.request_started = time.perf_counter()

    @app.after_request
    def _log_request(response):
        started = g.pop("request_started", None)
        if started is None:
            return response
        latency = time.perf_counter() - started
        endpoint = request.endpoint or "unmatched"
        user = getattr(current_user, "username", None) if getattr(current_user, "is_authenticated", False) else None
        if user:
            g.log_user = user
        metrics.observe_request(endpoint, request.method, response.status_code, latency)
        level = logging.ERROR if response.status_code >= 500 else logging.INFO
        log.log(level, "%s %s %s", request.method, request.url_rule.rule if request.url_rule else request.path,
                response.status_code,
                extra={"user": user or "-", "method": request.method,
                       "route": request.url_rule.rule if request.url_rule else "-", "endpoint": endpoint,
                       "status": response.status_code, "latency_ms": round(latency * 1000, 1),
                       "ip": request.remote_addr})
        return response

    metrics.init_app(app)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(system_bp)
