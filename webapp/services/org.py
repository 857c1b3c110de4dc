"""Branches, users and signing in."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from flask import current_app
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp import clock
from webapp.errors import Conflict, ValidationError
from webapp.models import Branch, User
from webapp.models.org import BRANCH_ROLES, ROLES
from webapp.permissions import Perm, require
from webapp.services import audit

_HASHERS: dict[tuple, tuple[PasswordHasher, str]] = {}


def _hasher_and_dummy() -> tuple[PasswordHasher, str]:
    """Argon2id at the configured cost (argon2-cffi's RFC 9106 defaults unless the config lowers them),
    and a hash to verify against when the username is unknown, so that costs as long as a wrong password."""
    cost = (current_app.config.get("ARGON2_TIME_COST", 3), current_app.config.get("ARGON2_MEMORY_KIB", 65536))
    if cost not in _HASHERS:
        hasher = PasswordHasher(time_cost=cost[0], memory_cost=cost[1])
        _HASHERS[cost] = (hasher, hasher.hash("kisht-no-such-user"))
    return _HASHERS[cost]


def _hasher() -> PasswordHasher:
    return _hasher_and_dummy()[0]


def _dummy_hash() -> str:
    return _hasher_and_dummy()[1]
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
BRANCH_CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,15}$")
MIN_PASSWORD_LENGTH = 10


def create_branch(session: Session, actor, *, code: str, name: str) -> Branch:
    require(actor, Perm.ADMINISTER)
    code, name = (code or "").strip().upper(), (name or "").strip()
    errors = {}
    if not BRANCH_CODE_RE.match(code):
        errors["code"] = "must be 2–16 letters, digits, '-' or '_'"
    if not name or len(name) > 120:
        errors["name"] = "is required (at most 120 characters)"
    if errors:
        raise ValidationError("The branch is not valid.", fields=errors)
    if session.scalar(select(Branch.id).where(Branch.code == code)):
        raise Conflict(f"Branch {code} already exists.", fields={"code": "already exists"})
    branch = Branch(code=code, name=name)
    session.add(branch)
    session.flush()
    audit.record(session, actor, "branch.created", "branch", code, after={"code": code, "name": name},
                 branch_id=branch.id)
    return branch


def create_user(
    session: Session, actor, *, username: str, role: str, password: str, name: str = "",
    branch_code: str | None = None, is_demo: bool = False,
) -> User:
    require(actor, Perm.ADMINISTER)
    username = (username or "").strip().lower()
    errors = {}
    if not USERNAME_RE.match(username):
        errors["username"] = "must be 3–64 lower-case letters, digits, '.', '-' or '_'"
    if role not in ROLES:
        errors["role"] = f"must be one of {', '.join(ROLES)}"
    if len(password or "") < MIN_PASSWORD_LENGTH:
        errors["password"] = f"must be at least {MIN_PASSWORD_LENGTH} characters"
    branch = None
    if branch_code:
        branch = session.scalar(select(Branch).where(Branch.code == branch_code.strip().upper()))
        if branch is None:
            errors["branch"] = f"no branch with code {branch_code}"
    elif role in BRANCH_ROLES:
        errors["branch"] = f"is required for a {role}"
    if errors:
        raise ValidationError("The user is not valid.", fields=errors)
    if session.scalar(select(User.id).where(User.username == username)):
        raise Conflict(f"User {username} already exists.", fields={"username": "already exists"})
    user = User(username=username, name=(name or username).strip()[:120], role=role, branch=branch,
                password_hash=_hasher().hash(password), is_demo=is_demo)
    session.add(user)
    session.flush()
    audit.record(session, actor, "user.created", "user", username,
                 after={"username": username, "role": role, "branch": branch.code if branch else None},
                 branch_id=branch.id if branch else None)
    return user


def set_password(session: Session, user: User, password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError("The password is too short.",
                              fields={"password": f"must be at least {MIN_PASSWORD_LENGTH} characters"})
    user.password_hash = _hasher().hash(password)
    session.flush()


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    message: str = ""


INVALID = "Invalid username or password."


def authenticate(session: Session, username: str, password: str, *, max_attempts: int,
                 lockout_minutes: int) -> LoginResult:
    """Check a password; count failures, lock after `max_attempts`, audit every outcome.

    Returns a result rather than raising: the failure counters and audit entries must be committed.
    """
    username = (username or "").strip().lower()[:64]
    user = session.scalar(select(User).where(User.username == username).with_for_update(of=User))
    now = clock.now()
    if user is None:
        _verify(_dummy_hash(), password)
        audit.record(session, audit.ANONYMOUS, "login.failed", "user", username or "-", after={"reason": "unknown user"})
        return LoginResult(None, INVALID)
    if user.locked_until and user.locked_until > now:
        audit.record(session, audit.ANONYMOUS, "login.refused", "user", username, after={"reason": "locked"},
                     branch_id=user.branch_id)
        until = clock.to_ist(user.locked_until).strftime("%H:%M")
        return LoginResult(None, f"This account is locked after repeated failed sign-ins. Try again after {until} IST.")
    if not user.active:
        _verify(_dummy_hash(), password)
        audit.record(session, audit.ANONYMOUS, "login.refused", "user", username, after={"reason": "inactive"},
                     branch_id=user.branch_id)
        return LoginResult(None, INVALID)
    if not _verify(user.password_hash, password):
        user.failed_logins += 1
        reason = {"reason": "wrong password", "failed_logins": user.failed_logins}
        audit.record(session, audit.ANONYMOUS, "login.failed", "user", username, after=reason, branch_id=user.branch_id)
        if user.failed_logins >= max_attempts:
            user.locked_until = now + timedelta(minutes=lockout_minutes)
            user.failed_logins = 0
            audit.record(session, audit.ANONYMOUS, "user.locked", "user", username,
                         after={"locked_until": user.locked_until, "after_failures": max_attempts},
                         branch_id=user.branch_id)
            until = clock.to_ist(user.locked_until).strftime("%H:%M")
            return LoginResult(None, f"Too many failed sign-ins. This account is locked until {until} IST.")
        return LoginResult(None, INVALID)
    user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
    audit.record(session, user, "login.succeeded", "user", username, branch_id=user.branch_id)
    return LoginResult(user)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password or "")
    except (VerificationError, InvalidHashError):
        return False
