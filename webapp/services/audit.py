"""The audit log: one writer, append-only, hash-chained (DESIGN.md §5, issue: tamper-evident audit).

Each entry's hash covers its content and the previous entry's hash. The single chain-head row keeps the
chain linear: an append runs `UPDATE audit_chain_head … RETURNING`, which row-locks it on PostgreSQL
(SQLite takes its write lock) until the transaction ends. So that lock is held only for the last moment
of a transaction, `record()` does not append: it stages the entry on the session, and entries are
appended (one head UPDATE for all of them, in the order they were recorded) when

* the transaction commits (`before_commit` of the outermost transaction; releasing a SAVEPOINT does not
  append), or
* a statement of this session reads or writes the audit tables (`do_orm_execute`): readers in the same
  transaction (dispute timeline, audit log screen, `verify_chain`, raw SQL through the session) see the
  entries, and `record_many` appends after what is staged. `flush_pending()` appends at once.

Staged entries share their transaction's fate: a rolled-back SAVEPOINT drops those staged in it (or in a
SAVEPOINT inside it) and stages again those staged before it but appended inside it; the end of the
outermost transaction drops whatever was not appended. So a rollback writes nothing, and a
`record_refusal` after it is written by the caller's commit. Statements run on `session.connection()`
directly do not see staged entries (they bypass the session's events).

`occurred_at` is the moment `record()` was called, the moment of the action, not the moment of the
append: a slow response or commit does not move it. `seq` is the order of appends, so across concurrent
transactions `occurred_at` may run a few milliseconds backwards in `seq` order; read the chain by `seq`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from flask import g, has_request_context, request
from sqlalchemy import TableClause, TextClause, event, select, update
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.sql import visitors

from webapp import clock
from webapp.models import AuditChainHead, AuditEntry
from webapp.models.audit import GENESIS_HASH

SYSTEM = "system"
STAGED = "audit.staged"  # session.info: [(SAVEPOINT staged in or None, AuditEntry)], in record order
APPENDED = "audit.appended"  # session.info: [(SAVEPOINT appended in, SAVEPOINT staged in or None, AuditEntry)]
CONTENT = ("occurred_at", "actor_id", "actor_label", "action", "entity_type", "entity_id", "branch_id", "before",
           "after", "request_id", "ip")  # what record() fills in; the append adds seq, prev_hash and hash
AUDIT_TABLES = (AuditEntry.__tablename__, AuditChainHead.__tablename__)


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
    """Stage an entry; it is appended (given its `seq`, `prev_hash` and `hash`) when the transaction
    commits or this session next touches the audit tables. Returns the entry."""
    who = actor if isinstance(actor, Actor) else Actor.of(actor)
    entry = AuditEntry(
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
    )
    # Tagged with the SAVEPOINT it was staged in (None: the outermost transaction).
    session.info.setdefault(STAGED, []).append((session.get_nested_transaction(), entry))
    return entry


def flush_pending(session: Session) -> None:
    """Append the entries staged on this session now: one head UPDATE reserving their seqs."""
    staged = session.info.pop(STAGED, None)
    if not staged:
        return
    savepoint = session.get_nested_transaction()
    if savepoint is not None:  # a rollback of it undoes this append: see _on_savepoint_rollback
        session.info.setdefault(APPENDED, []).extend((savepoint, where, entry) for where, entry in staged)
    entries = [entry for _, entry in staged]
    last_seq, prev_hash = session.execute(
        update(AuditChainHead).where(AuditChainHead.id == 1)
        .values(seq=AuditChainHead.seq + len(entries))
        .returning(AuditChainHead.seq, AuditChainHead.last_hash),
        execution_options={"synchronize_session": False},
    ).one()
    for seq, entry in enumerate(entries, start=last_seq - len(entries) + 1):
        entry.seq, entry.prev_hash = seq, prev_hash
        entry.hash = prev_hash = entry_hash(entry)
    session.add_all(entries)
    session.execute(update(AuditChainHead).where(AuditChainHead.id == 1).values(last_hash=prev_hash),
                    execution_options={"synchronize_session": False})
    session.flush()


@event.listens_for(Session, "before_commit")
def _append_on_commit(session: Session) -> None:
    if not session.in_nested_transaction():  # releasing a SAVEPOINT is not the commit
        flush_pending(session)


@event.listens_for(Session, "do_orm_execute")
def _append_before_audit_statements(state: ORMExecuteState) -> None:
    if state.session.info.get(STAGED) and _touches_audit(state.statement):
        flush_pending(state.session)


def _touches_audit(statement) -> bool:
    if isinstance(statement, TextClause):
        return any(name in statement.text for name in AUDIT_TABLES)
    return any(isinstance(element, TableClause) and element.name in AUDIT_TABLES
               for element in visitors.iterate(statement))


@event.listens_for(Session, "after_soft_rollback")
def _on_savepoint_rollback(session: Session, savepoint: SessionTransaction) -> None:
    """A rolled-back SAVEPOINT drops what was staged in it (or in a SAVEPOINT inside it); what was staged
    before it but appended inside it (a reader there) is staged again, to be appended afresh."""
    if not savepoint.nested:
        return
    again, appended = [], []
    for appended_in, where, entry in session.info.get(APPENDED, []):
        if not _inside(appended_in, savepoint):
            appended.append((appended_in, where, entry))
        elif not _inside(where, savepoint):
            again.append((where, AuditEntry(**{column: getattr(entry, column) for column in CONTENT})))
    session.info[APPENDED] = appended
    session.info[STAGED] = again + [(where, entry) for where, entry in session.info.get(STAGED, [])
                                    if not _inside(where, savepoint)]


@event.listens_for(Session, "after_transaction_end")
def _drop_at_the_end(session: Session, transaction: SessionTransaction) -> None:
    """Whatever the outermost transaction did not append (it rolled back, or was closed) is dropped."""
    if transaction.parent is None:
        session.info.pop(STAGED, None)
        session.info.pop(APPENDED, None)


def _inside(where: SessionTransaction | None, transaction: SessionTransaction) -> bool:
    while where is not None:
        if where is transaction:
            return True
        where = where.parent
    return False


def record_many(session: Session, actor, action: str, entity_type: str, items: list[tuple]) -> int:
    """Append many entries at once (day-end class changes): one chain-head update, one bulk insert.

    `items` are (entity_id, before, after, branch_id) tuples. Unlike `record`, this appends at once (its
    head UPDATE first appends anything staged, so the order of the calls is kept).
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
        rows.append({c: getattr(entry, c) for c in ("seq", *CONTENT, "prev_hash", "hash")})
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
