"""JSON API v1 (docs/api.md): JWT auth, thin views over the services, OpenAPI, rate limits."""
from __future__ import annotations

from flask import Flask

from webapp.config import refuse, secret_key_problem


def init_app(app: Flask, csrf) -> None:
    from webapp.api import limits
    from webapp.api.routes import bp

    jwt_key = app.config.get("JWT_SECRET_KEY", "")
    if app.config["APP_ENV"] == "production" and jwt_key and secret_key_problem(jwt_key):
        refuse(secret_key_problem(jwt_key).replace("SECRET_KEY", "JWT_SECRET_KEY"))
    app.register_blueprint(bp)
    csrf.exempt(bp)  # token auth only: a session cookie never authenticates an API call
    limits.init_app(app, bp)
