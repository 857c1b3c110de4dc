"""create_app(config) — extensions, blueprints, error handlers, request lifecycle."""
from __future__ import annotations

import re
import uuid
from datetime import timedelta

from flask import Flask, g, request, session
from flask_login import LoginManager, current_user, logout_user
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from webapp import cache, clock, db, errors, logs, money
from webapp.config import INSTANCE_DIR, ROOT, ledger_setting_problem, load_config, refuse, secret_key_problem

csrf = CSRFProtect()
login_manager = LoginManager()
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
# How often a signed-in browser's idle clock moves: the session may end up to this much before
# SESSION_IDLE_MINUTES of inactivity, never after.
LAST_SEEN_STEP_SECONDS = 30


def create_app(test_config: dict | None = None) -> Flask:
    config = load_config(test_config)
    problem = ledger_setting_problem(config)
    if problem:
        refuse(problem)
    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"),
                instance_path=str(INSTANCE_DIR))
    app.config.from_object(config)
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(minutes=app.config["SESSION_IDLE_MINUTES"])
    app.config["SESSION_REFRESH_EACH_REQUEST"] = False  # the cookie is renewed when last_seen moves (below)
    logs.configure(app.config)
    if app.config["APP_ENV"] == "production":
        _refuse_unsafe_production(app.config)
    db.init_app(app)
    cache.init_app(app)
    if app.config["APP_ENV"] == "production":
        from webapp.ops.startup import check_production

        check_production(app)  # time zone, METRICS_TOKEN, database and Redis answering
        _refuse_demo_users(app)
    login_manager.init_app(app)
    _register_request_lifecycle(app)  # first, so even a CSRF refusal carries a request id
    csrf.init_app(app)
    errors.register(app)
    if app.config["PROXY_HOPS"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["PROXY_HOPS"], x_proto=app.config["PROXY_HOPS"])
    _register_templates(app)
    _register_blueprints(app)
    from webapp import ops

    ops.register(app)  # request log lines and metrics, /metrics, /admin/system
    return app


def _refuse_unsafe_production(config: dict) -> None:
    problem = secret_key_problem(config.get("SECRET_KEY", ""))
    if problem:
        refuse(problem)
    if config.get("DEBUG"):
        refuse("DEBUG is on in production")
    if not config.get("REDIS_URL"):
        refuse("REDIS_URL is not set (the embedded mode is for development only)")


def _refuse_demo_users(app: Flask) -> None:
    from sqlalchemy import inspect, select

    from webapp.models import User

    with app.app_context():
        if not inspect(db.engine()).has_table("users"):
            return  # not migrated yet: no user, demo or otherwise
        with db.new_session() as s:
            demo = s.scalar(select(User.username).where(User.is_demo.is_(True)).limit(1))
        if demo:
            refuse(f"demo user {demo!r} exists in a production database")


@login_manager.user_loader
def _load_user(user_id: str):
    from webapp.models import User

    if not user_id.isdigit():
        return None
    user = db.session().get(User, int(user_id))
    return user if user is not None and user.active else None


def _register_request_lifecycle(app: Flask) -> None:
    @app.before_request
    def _start():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        if current_user.is_authenticated:
            now = clock.now().timestamp()
            last_seen = session.get("last_seen", now)
            if now - last_seen > app.config["SESSION_IDLE_MINUTES"] * 60:
                logout_user()
                session.clear()
                session["idle_logout"] = True
            elif "last_seen" not in session or now - last_seen >= LAST_SEEN_STEP_SECONDS:
                session["last_seen"] = now  # re-signs and re-sends the session cookie, so not on every request

    @app.after_request
    def _finish(response):
        # The request owns the transaction: commit once on success, roll back on any error.
        db_session = g.get("db_session")
        if db_session is not None:
            if g.get("rollback") or response.status_code >= 500:
                db_session.rollback()
            else:
                db_session.commit()
        response.headers["X-Request-ID"] = g.get("request_id", "-")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        )
        if current_user.is_authenticated:
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def _register_templates(app: Flask) -> None:
    from webapp import permissions
    from webapp.services.payments import pending_reversal_paise, reversed_paise, reversible

    app.jinja_env.filters["inr"] = money.format_inr
    app.jinja_env.filters["ist"] = lambda moment: clock.to_ist(moment).strftime("%d %b %Y, %H:%M IST") if moment else "—"
    app.jinja_env.filters["d"] = lambda day: day.strftime("%d %b %Y") if day else "—"
    app.jinja_env.globals.update(can=permissions.can, Perm=permissions.Perm, today_ist=clock.today_ist,
                                 reversed_paise=reversed_paise, pending_reversal_paise=pending_reversal_paise,
                                 payment_reversible=reversible)


def _register_blueprints(app: Flask) -> None:
    from webapp.admin.routes import bp as admin_bp
    from webapp.approvals.routes import bp as approvals_bp
    from webapp.audit_log.routes import bp as audit_bp
    from webapp.auth.routes import bp as auth_bp
    from webapp.collections.routes import bp as collections_bp
    from webapp.collector.routes import bp as collector_bp
    from webapp.disputes.routes import bp as disputes_bp
    from webapp.finance.routes import bp as finance_bp
    from webapp.health import bp as health_bp
    from webapp.legal.routes import bp as legal_bp
    from webapp.loans.routes import bp as loans_bp
    from webapp.manager.routes import bp as manager_bp
    from webapp.payments.routes import bp as payments_bp
    from webapp.reconciliation.routes import bp as reconciliation_bp
    from webapp.reminders.routes import bp as reminders_bp

    for blueprint in (auth_bp, health_bp, loans_bp, collector_bp, manager_bp, finance_bp, legal_bp, admin_bp, audit_bp,
                      payments_bp, approvals_bp, collections_bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(disputes_bp)
    app.register_blueprint(reminders_bp)
    app.register_blueprint(reconciliation_bp)
    from webapp.golive.routes import bp as golive_bp
    from webapp.shadow.routes import bp as shadow_bp

    app.register_blueprint(shadow_bp)
    app.register_blueprint(golive_bp)
    csrf.exempt(health_bp)
    from webapp import api

    api.init_app(app, csrf)  # /api/v1: its blueprint, CSRF exemption (token auth) and rate limits
