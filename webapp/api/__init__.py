"""JSON API v1 (docs/api.md): JWT auth, thin views over the services, OpenAPI, rate limits."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask, csrf) -> None:
    from webapp.api import limits
    from webapp.api.routes import bp

    app.register_blueprint(bp)
    csrf.exempt(bp)  # token auth only: a session cookie never authenticates an API call
    limits.init_app(app, bp)
