"""API sessions: a token family per sign-in, and every refresh token issued in it (issue 8).

A family is one `POST /api/v1/auth/token`. Each refresh token is used once: `/auth/refresh` marks it used
and issues the next one in the same family. Presenting a used refresh token again means it was copied, so
the whole family is revoked, which also ends its access tokens (they carry the family id and are checked
against it on every request). Rows are never deleted; old families can be pruned after they expire.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp import clock
from webapp.db import Base, UTCDateTime
from webapp.models.org import User


class ApiTokenFamily(Base):
    __tablename__ = "api_token_families"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    family_id: Mapped[str] = mapped_column(String(32), unique=True)  # random hex, carried in every token
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # the first refresh token's expiry
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(32))  # logout | refresh_reuse

    user: Mapped[User] = relationship(lazy="joined")


class ApiRefreshToken(Base):
    __tablename__ = "api_refresh_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    jti: Mapped[str] = mapped_column(String(32), unique=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("api_token_families.id"), index=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    family: Mapped[ApiTokenFamily] = relationship(lazy="joined")
