"""Idempotent submissions (DESIGN.md §5): a key, the fingerprint of the request, the stored response.

The key is claimed inside the booking's own transaction with INSERT … ON CONFLICT DO NOTHING. A second
request with the same key waits for the first to finish (PostgreSQL waits on the conflicting row), then
replays its stored response, or is told the key belongs to a different request. If the first is still
running after IN_FLIGHT_WAIT, the second gets 409. A failed booking rolls back its claim with it, so
the key can be used again; a stored response and the payment it describes commit together.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from webapp.errors import Conflict, ValidationError
from webapp.models import IdempotencyRecord

KEY_RE = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")
IN_FLIGHT_WAIT = "10s"


def fingerprint(method: str, path: str, body: dict) -> str:
    canonical = json.dumps([method.upper(), path, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class Claim:
    record: IdempotencyRecord
    replay: bool  # True: answer with the stored response


def claim(session: Session, key: str | None, owner, request_fingerprint: str) -> Claim:
    if not key or not KEY_RE.match(key):
        raise ValidationError("An idempotency key is required.",
                              fields={"Idempotency-Key": "must be 8–128 letters, digits, '-', '_', '.' or ':'"},
                              code="idempotency_key_required")
    owner_id = getattr(owner, "id", None)
    values = {"key": key, "owner_id": owner_id, "fingerprint": request_fingerprint, "status_code": 0, "body": "",
              "content_type": ""}
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    # RETURNING the entity: the claimed record comes back as an ORM object, without reading it again.
    statement = (insert(IdempotencyRecord).values(**values).on_conflict_do_nothing(index_elements=["key"])
                 .returning(IdempotencyRecord))
    try:
        with session.begin_nested():
            if dialect == "postgresql":
                session.execute(text(f"SET LOCAL lock_timeout = '{IN_FLIGHT_WAIT}'"))
            inserted = session.scalars(statement).first()
            if dialect == "postgresql":
                session.execute(text("SET LOCAL lock_timeout = DEFAULT"))
    except (OperationalError, DBAPIError) as error:
        if _is_lock_timeout(error):
            raise Conflict("A request with this idempotency key is still being processed; retry shortly.",
                           code="idempotency_in_flight") from None
        raise
    if inserted is not None:
        return Claim(inserted, replay=False)
    record = session.scalar(select(IdempotencyRecord).where(IdempotencyRecord.key == key))
    if record.owner_id != owner_id or record.fingerprint != request_fingerprint:
        raise ValidationError("This idempotency key was already used for a different request.",
                              fields={"Idempotency-Key": "already used for a different request"},
                              code="idempotency_key_reused")
    if record.status_code == 0:  # a claim we can see but that holds no response: only our own session
        raise Conflict("A request with this idempotency key is still being processed; retry shortly.",
                       code="idempotency_in_flight")
    return Claim(record, replay=True)


def complete(session: Session, record: IdempotencyRecord, status_code: int, body: str, content_type: str) -> None:
    record.status_code, record.body, record.content_type = status_code, body, content_type
    session.flush()


def _is_lock_timeout(error: DBAPIError) -> bool:
    code = getattr(getattr(error, "orig", None), "sqlstate", None)
    return code == "55P03" or "database is locked" in str(error)


def is_stored(session: Session, key: str, owner_id: int | None, request_fingerprint: str) -> bool:
    """Whether `key` already holds the stored response to this very request (a replay, no new work)."""
    if not KEY_RE.match(key or ""):
        return False
    record = session.scalar(select(IdempotencyRecord).where(IdempotencyRecord.key == key))
    return (record is not None and record.status_code != 0 and record.owner_id == owner_id
            and record.fingerprint == request_fingerprint)
