"""The audit log: one writer, append-only, hash-chained (DESIGN.md §5, issue: tamper-evident audit).

Each entry's hash covers its content and the previous entry's hash. Appends take the single chain-head
row first (an UPDATE, so PostgreSQL row-locks it and SQLite takes its write lock): appends are serialised
until the transaction ends, which keeps the chain linear. Write audit entries late in a transaction.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from flask import g, has_request_context, request
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from webapp import clock
from webapp.models import AuditChainHead, AuditEntry
from webapp.models.audit import GENESIS_HASH

SYSTEM = "system"


def canonical_json(value) -> str | None:
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def _json_default(value):
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot put {type(value).__name__} in an audit entry")


def entry_hash(entry: AuditEntry) -> str:
    payload = [
        entry.seq, entry.occurred_at.isoformat(), entry.actor_id, entry.actor_label, entry.action,
        entry.entity_type, entry.entity_id, entry.branch_id, entry.before, entry.after,
        entry.request_id, entry.ip, entry.prev_hash,
    ]
    return hashlib.sha256(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class Actor:
    """Who did it, as the log records it (a user, or the system for jobs)."""

    id: int | None
    label: str

    @classmethod
    def of(cls, user) -> "Actor":
        if user is None or not getattr(user, "is_authenticated", False):
            return cls(None, SYSTEM if user is None else "anonymous")
        return cls(user.id, user.username)


ANONYMOUS = Actor(None, "anonymous")  # someone not signed in, e.g. a failed sign-in


def record(
    session: Session,
    actor,
    action: str,
    entity_type: str,
    entity_id,
    *,
    before=None,
    after=None,
    branch_id: int | None = None,
) -> AuditEntry:
    who = actor if isinstance(actor, Actor) else Actor.of(actor)
    seq, prev_hash = session.execute(
        update(AuditChainHead)
        .where(AuditChainHead.id == 1)
        .values(seq=AuditChainHead.seq + 1)
        .returning(AuditChainHead.seq, AuditChainHead.last_hash),
        execution_options={"synchronize_session": False},
    ).one()
    entry = AuditEntry(
        seq=seq,
        occurred_at=clock.now(),
        actor_id=who.id,
        actor_label=who.label,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        branch_id=branch_id,
        before=canonical_json(before),
        after=canonical_json(after),
        request_id=g.get("request_id") if has_request_context() else None,
        ip=request.remote_addr if has_request_context() else None,
        prev_hash=prev_hash,
    )
    entry.hash = entry_hash(entry)
    session.add(entry)
    session.execute(
        update(AuditChainHead).where(AuditChainHead.id == 1).values(last_hash=entry.hash),
        execution_options={"synchronize_session": False},
    )
    session.flush()
    return entry


def record_many(session: Session, actor, action: str, entity_type: str, items: list[tuple]) -> int:
    """Append many entries at once (day-end class changes): one chain-head update, one bulk insert.

    `items` are (entity_id, before, after, branch_id) tuples.
    """
    if not items:
        return 0
    who = actor if isinstance(actor, Actor) else Actor.of(actor)
    last_seq, prev_hash = session.execute(
        update(AuditChainHead).where(AuditChainHead.id == 1)
        .values(seq=AuditChainHead.seq + len(items))
        .returning(AuditChainHead.seq, AuditChainHead.last_hash),
        execution_options={"synchronize_session": False},
    ).one()
    now, rows = clock.now(), []
    for offset, (entity_id, before, after, branch_id) in enumerate(items):
        entry = AuditEntry(seq=last_seq - len(items) + 1 + offset, occurred_at=now, actor_id=who.id,
                           actor_label=who.label, action=action, entity_type=entity_type, entity_id=str(entity_id),
                           branch_id=branch_id, before=canonical_json(before), after=canonical_json(after),
                           request_id=None, ip=None, prev_hash=prev_hash)
        entry.hash = prev_hash = entry_hash(entry)
        rows.append({c: getattr(entry, c) for c in ("seq", "occurred_at", "actor_id", "actor_label", "action",
                                                    "entity_type", "entity_id", "branch_id", "before", "after",
                                                    "request_id", "ip", "prev_hash", "hash")})
    session.execute(AuditEntry.__table__.insert(), rows)
    session.execute(update(AuditChainHead).where(AuditChainHead.id == 1).values(last_hash=prev_hash),
                    execution_options={"synchronize_session": False})
    return len(rows)


@dataclass(frozen=True)
class RefusedAttempt:
    """A refused change that must be audited even though its transaction is rolled back."""

    actor: Actor
    action: str
    entity_type: str
    entity_id: str
    attempted: dict
    branch_id: int | None = None


def record_refusal(session: Session, attempt: RefusedAttempt) -> None:
    """Called by each entry point after rolling back; the caller commits."""
    record(session, attempt.actor, attempt.action, attempt.entity_type, attempt.entity_id,
           after={"attempted": attempt.attempted, "outcome": "refused"}, branch_id=attempt.branch_id)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    problem: str | None = None
    seq: int | None = None


def verify_chain(session: Session, batch: int = 5000) -> ChainReport:
    """Walk the chain in order and report the first altered, removed or out-of-order entry."""
    expected_seq, prev_hash, prev_id, checked = 1, GENESIS_HASH, 0, 0
    stream = session.execute(select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=batch))
    for entry in stream.scalars():
        if entry.seq != expected_seq:
            return ChainReport(False, checked, f"entry seq {expected_seq} is missing (removed)", expected_seq)
        if entry.id <= prev_id:
            return ChainReport(False, checked, f"entry seq {entry.seq} (id {entry.id}) was inserted out of order", entry.seq)
        if entry.prev_hash != prev_hash:
            return ChainReport(False, checked, f"entry seq {entry.seq} does not link to its predecessor", entry.seq)
        if entry_hash(entry) != entry.hash:
            return ChainReport(False, checked, f"entry seq {entry.seq} (id {entry.id}) was altered", entry.seq)
        checked, expected_seq, prev_hash, prev_id = checked + 1, expected_seq + 1, entry.hash, entry.id
    head = session.get(AuditChainHead, 1)
    if head is None or head.seq != checked or head.last_hash != prev_hash:
        return ChainReport(False, checked, f"entries after seq {checked} were removed (chain head says {head.seq if head else '?'})", checked + 1)
    return ChainReport(True, checked)
