"""Sign in, sign out, and each role's landing screen."""
from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from webapp import clock, db
from webapp.auth.forms import LoginForm
from webapp.permissions import public, signed_in
from webapp.services import audit, org

bp = Blueprint("auth", __name__)

ROLE_HOME = {"collector": "collector.home", "manager": "manager.home", "finance": "finance.home",
             "legal": "legal.home", "admin": "admin.home"}


def home_url(user) -> str:
    return url_for(ROLE_HOME[user.role])


@bp.get("/")
@public
def index():
    if current_user.is_authenticated:
        return redirect(home_url(current_user))
    return redirect(url_for("auth.login"))


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    form = LoginForm()
    message = "You were signed out after a period of inactivity." if session.pop("idle_logout", None) else ""
    if form.validate_on_submit():
        result = org.authenticate(
            db.session(), form.username.data, form.password.data,
            max_attempts=current_app.config["LOGIN_MAX_ATTEMPTS"],
            lockout_minutes=current_app.config["LOGIN_LOCKOUT_MINUTES"],
        )
        if result.user is not None:
            session.clear()  # a fresh session on sign-in (no fixation)
            login_user(result.user)
            session.permanent = True
            session["last_seen"] = clock.now().timestamp()
            return redirect(_safe_next(request.args.get("next")) or home_url(result.user))
        return render_template("auth/login.html", form=form, message=result.message), 401
    status = 422 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form, message=message), status


@bp.post("/logout")
@signed_in
def logout():
    audit.record(db.session(), current_user, "logout", "user", current_user.username,
                 branch_id=current_user.branch_id)
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


def _safe_next(target: str | None) -> str | None:
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None
