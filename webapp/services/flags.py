"""Kill switches (DESIGN.md §5): stored in the database, changed by an admin with a reason (audited),
overridden by an environment variable of the same name when one is set (no deploy needed either way)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp import clock
from webapp.errors import NotFound, ValidationError
from webapp.models import FeatureFlag
from webapp.models.dayend import FLAGS
from webapp.permissions import Perm, require
from webapp.services import audit

TRUE, FALSE = {"1", "true", "on", "yes"}, {"0", "false", "off", "no"}


@dataclass(frozen=True)
class FlagState:
    name: str
    enabled: bool  # what jobs obey
    stored: bool
    override: bool | None  # the environment's value, when it sets one
    updated_at: datetime | None
    updated_by: str | None
    reason: str


def env_override(name: str) -> bool | None:
    raw = os.environ.get(name, "").strip().lower()
    return True if raw in TRUE else False if raw in FALSE else None


def is_enabled(session: Session, name: str) -> bool:
    """Read fresh each time: jobs call this at start and between batches."""
    override = env_override(name)
    if override is not None:
        return override
    stored = session.scalar(select(FeatureFlag.enabled).where(FeatureFlag.name == name))
    return bool(stored) if stored is not None else True


def list_flags(session: Session) -> list[FlagState]:
    rows = {f.name: f for f in session.scalars(select(FeatureFlag))}
    states = []
    for name in FLAGS:
        row, override = rows.get(name), env_override(name)
        stored = row.enabled if row else True
        states.append(FlagState(name, stored if override is None else override, stored, override,
                                row.updated_at if row else None,
                                row.updated_by.username if row and row.updated_by else None, row.reason if row else ""))
    return states


def set_flag(session: Session, actor, name: str, enabled: bool, reason: str) -> FlagState:
    require(actor, Perm.ADMINISTER)
    name = (name or "").strip().upper()
    if name not in FLAGS:
        raise NotFound(f"No kill switch {name}; they are {', '.join(FLAGS)}.")
    reason = (reason or "").strip()
    if not reason or len(reason) > 500:
        raise ValidationError("A reason is required.", fields={"reason": "is required (at most 500 characters)"})
    row = session.scalars(select(FeatureFlag).where(FeatureFlag.name == name).with_for_update(of=FeatureFlag)).one()
    before = row.enabled
    row.enabled, row.reason, row.updated_at = enabled, reason, clock.now()
    row.updated_by_id = getattr(actor, "id", None)
    session.flush()
    audit.record(session, actor, "flag.changed", "flag", name, before={"enabled": before},
                 after={"enabled": enabled, "reason": reason, "environment_override": env_override(name)})
    return next(state for state in list_flags(session) if state.name == name)
