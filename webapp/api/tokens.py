"""API authentication with PyJWT: short access tokens, rotating refresh tokens, revocable families.

* `POST /auth/token` checks the password through `org.authenticate` (same lockout and audit as the sign-in
  screen) and opens a family: an access token (API_ACCESS_TOKEN_MINUTES) and a refresh token
  (API_REFRESH_TOKEN_DAYS).
* `POST /auth/refresh` uses a refresh token once and issues the next pair in the same family. A refresh
  token presented a second time was copied: the whole family is revoked (and audited).
* `POST /auth/logout` revokes the family.
* Every request's access token is checked against the database: the user must be active and not locked,
  and the family not revoked, so a disabled user or a logged-out family stops working at once.

Tokens are HS256 only; anything else (alg "none", RS256, HS512 …) is refused before the signature is read.
Expiry is checked against `clock.now()` (the one clock), not PyJWT's own.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from webapp import clock
from webapp.errors import Unauthorized
from webapp.models import ApiRefreshToken, ApiTokenFamily, User
from webapp.services import audit, org

ALGORITHM = "HS256"
ISSUER = "kisht"
REQUIRED_CLAIMS = ("sub", "typ", "jti", "fam", "iat", "exp", "iss")


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime
    user: User

    def as_dict(self) -> dict:
        return {
            "token_type": "Bearer",
            "access_token": self.access_token,
            "expires_in": int((self.access_expires_at - clock.now()).total_seconds()),
            "access_expires_at": clock.to_ist(self.access_expires_at).isoformat(timespec="seconds"),
            "refresh_token": self.refresh_token,
            "refresh_expires_at": clock.to_ist(self.refresh_expires_at).isoformat(timespec="seconds"),
            "user": {"username": self.user.username, "role": self.user.role,
                     "branch": self.user.branch.code if self.user.branch else None},
        }


def _secret() -> str:
    return current_app.config.get("JWT_SECRET_KEY") or current_app.config["SECRET_KEY"]


def _encode(user: User, kind: str, family: str, jti: str, now: datetime, lifetime: timedelta) -> tuple[str, datetime]:
    expires = now + lifetime
    claims = {"sub": str(user.id), "typ": kind, "jti": jti, "fam": family, "iss": ISSUER,
              "iat": int(now.timestamp()), "exp": int(expires.timestamp())}
    return jwt.encode(claims, _secret(), algorithm=ALGORITHM), expires.replace(microsecond=0)


def decode(token: str | None, kind: str, *, check_expiry: bool = True) -> dict:
    """The verified claims of a token of `kind`, or Unauthorized (never says more than needed)."""
    if not token:
        raise Unauthorized("A bearer token is required.")
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise Unauthorized("The token is not valid.")
        claims = jwt.decode(token, _secret(), algorithms=[ALGORITHM], issuer=ISSUER,
                            options={"verify_exp": False, "verify_iat": False, "require": list(REQUIRED_CLAIMS)})
    except jwt.PyJWTError:
        raise Unauthorized("The token is not valid.") from None
    if claims.get("typ") != kind:
        raise Unauthorized("The token is not valid.")
    if not isinstance(claims.get("exp"), int) or not str(claims.get("sub", "")).isdigit():
        raise Unauthorized("The token is not valid.")
    if check_expiry and claims["exp"] <= clock.now().timestamp():
        raise Unauthorized("The token has expired.", code="token_expired")
    return claims


def _issue(session: Session, user: User, family: ApiTokenFamily) -> TokenPair:
    now = clock.now()
    config = current_app.config
    access, access_expires = _encode(user, "access", family.family_id, secrets.token_hex(16), now,
                                     timedelta(minutes=config["API_ACCESS_TOKEN_MINUTES"]))
    jti = secrets.token_hex(16)
    refresh, refresh_expires = _encode(user, "refresh", family.family_id, jti, now,
                                       timedelta(days=config["API_REFRESH_TOKEN_DAYS"]))
    session.add(ApiRefreshToken(jti=jti, family_id=family.id, issued_at=now, expires_at=refresh_expires))
    family.expires_at = max(family.expires_at or refresh_expires, refresh_expires)
    session.flush()
    return TokenPair(access, access_expires, refresh, refresh_expires, user)


def sign_in(session: Session, username: str, password: str) -> TokenPair | str:
    """A new token family, or the refusal message (the failure counters and audit must be committed)."""
    config = current_app.config
    result = org.authenticate(session, username, password, max_attempts=config["LOGIN_MAX_ATTEMPTS"],
                              lockout_minutes=config["LOGIN_LOCKOUT_MINUTES"])
    if result.user is None:
        return result.message
    family = ApiTokenFamily(family_id=secrets.token_hex(16), user_id=result.user.id, created_at=clock.now(),
                            expires_at=clock.now())
    session.add(family)
    session.flush()
    pair = _issue(session, result.user, family)
    audit.record(session, result.user, "api.token_issued", "user", result.user.username,
                 after={"family": family.family_id}, branch_id=result.user.branch_id)
    return pair


def _usable(user: User | None) -> bool:
    return user is not None and user.active and not (user.locked_until and user.locked_until > clock.now())


def refresh(session: Session, token: str | None) -> TokenPair | Unauthorized:
    """Rotate: the presented refresh token is used up and the next pair issued.

    Returns (rather than raises) a refusal when the family had to be revoked, so the caller commits it.
    """
    claims = decode(token, "refresh")
    row = session.scalar(select(ApiRefreshToken).where(ApiRefreshToken.jti == claims["jti"])
                         .with_for_update(of=ApiRefreshToken))
    if row is None or row.family.family_id != claims["fam"] or str(row.family.user_id) != claims["sub"]:
        raise Unauthorized("The token is not valid.")
    family = row.family
    if family.revoked_at is not None:
        raise Unauthorized("This session was ended; sign in again.", code="token_revoked")
    if row.used_at is not None:
        revoke_family(session, family, "refresh_reuse")
        return Unauthorized("This refresh token was already used; the session is ended for safety. Sign in again.",
                            code="token_reused")
    user = session.get(User, family.user_id)
    if not _usable(user):
        raise Unauthorized("The account is disabled or locked.", code="account_unavailable")
    row.used_at = clock.now()
    return _issue(session, user, family)


def revoke_family(session: Session, family: ApiTokenFamily, reason: str) -> None:
    session.execute(update(ApiTokenFamily).where(ApiTokenFamily.id == family.id, ApiTokenFamily.revoked_at.is_(None))
                    .values(revoked_at=clock.now(), revoked_reason=reason))
    session.expire(family)
    user = session.get(User, family.user_id)
    audit.record(session, user, "api.tokens_revoked", "user", user.username if user else "-",
                 after={"family": family.family_id, "reason": reason}, branch_id=user.branch_id if user else None)


def user_for_access_token(session: Session, token: str | None) -> tuple[User, ApiTokenFamily]:
    """The user an access token speaks for, checked against the database on every request."""
    claims = decode(token, "access")
    family = session.scalar(select(ApiTokenFamily).where(ApiTokenFamily.family_id == claims["fam"]))
    if family is None or str(family.user_id) != claims["sub"]:
        raise Unauthorized("The token is not valid.")
    if family.revoked_at is not None:
        raise Unauthorized("This session was ended; sign in again.", code="token_revoked")
    user = family.user
    if not _usable(user):
        raise Unauthorized("The account is disabled or locked.", code="account_unavailable")
    return user, family


def unverified_family(token: str | None, kind: str) -> str | None:
    """The family of a correctly signed token (expired or not), for rate-limit keys; None otherwise."""
    try:
        return decode(token, kind, check_expiry=False)["fam"]
    except Unauthorized:
        return None


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


def unverified_subject(token: str | None) -> int | None:
    """The user id of a correctly signed access token (expired or not), for the rate limiter; None otherwise."""
    try:
        return int(decode(token, "access", check_expiry=False)["sub"])
    except Unauthorized:
        return None


def family_of_refresh(session: Session, token: str | None) -> ApiTokenFamily:
    """The family a refresh token belongs to (for logout; an expired or used one still names it)."""
    claims = decode(token, "refresh", check_expiry=False)
    family = session.scalar(select(ApiTokenFamily).where(ApiTokenFamily.family_id == claims["fam"]))
    if family is None or str(family.user_id) != claims["sub"]:
        raise Unauthorized("The token is not valid.")
    return family
