"""Short-lived reuse of aggregates that read a whole portfolio: class totals, the row count of a large list and
the reconciliation dashboard's figures of past days.

Counting or summing a million loans costs 130-180 ms; a dashboard viewed every few seconds by every
manager and finance desk must not pay it each time. Values are kept AGGREGATE_CACHE_SECONDS (default 60)
in Redis when REDIS_URL is set (shared by every worker), in process memory otherwise, and not at all when
it is 0. A cache that fails never fails the request: the value is computed instead.

Values that must not outlive a change are dropped when the change commits: `delete_after_commit`.
"""
from __future__ import annotations

import hashlib
import logging
from typing import Any, Callable, Iterable, TypeVar

from flask import current_app, has_app_context
from flask_caching import Cache
from sqlalchemy import event, make_url
from sqlalchemy.orm import Session

T = TypeVar("T")
log = logging.getLogger("kisht.cache")
cache = Cache()
STALE_KEYS = "kisht.cache.stale_keys"  # in Session.info: keys to delete once the transaction commits


def init_app(app) -> None:
    seconds = app.config["AGGREGATE_CACHE_SECONDS"]
    if not seconds:
        return  # enabled() is false: every value is computed
    # CACHE_IGNORE_ERRORS: a key another worker stored again between Redis's delete and its check is not an error.
    # Keys name the database: two deployments (or a copy of production) sharing a Redis never read each other's.
    database = make_url(app.config["DATABASE_URL"]).render_as_string(hide_password=True)
    prefix = f"kisht:aggregate:{hashlib.sha256(database.encode()).hexdigest()[:12]}:"
    settings = {"CACHE_DEFAULT_TIMEOUT": seconds, "CACHE_KEY_PREFIX": prefix, "CACHE_IGNORE_ERRORS": True}
    if app.config["REDIS_URL"]:
        settings.update(CACHE_TYPE="RedisCache", CACHE_REDIS_URL=app.config["REDIS_URL"])
    else:
        settings["CACHE_TYPE"] = "SimpleCache"
    cache.init_app(app, config=settings)


def enabled() -> bool:
    return has_app_context() and bool(current_app.config["AGGREGATE_CACHE_SECONDS"])


def key_of(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def get_many(keys: list[str]) -> dict[str, Any]:
    """The fresh values stored under `keys`, by key; missing ones are left out (all of them when the cache is
    off or cannot be reached)."""
    if not keys or not enabled():
        return {}
    try:
        values = cache.get_many(*keys)
    except Exception:  # noqa: BLE001 - Redis down or a bad entry: compute instead
        log.warning("aggregate cache unavailable; computing", exc_info=True)
        return {}
    return {key: value for key, value in zip(keys, values) if value is not None}


def set_many(values: dict[str, Any]) -> None:
    if not values or not enabled():
        return
    try:
        cache.set_many(values)
    except Exception:  # noqa: BLE001
        log.warning("aggregate cache unavailable; not stored", exc_info=True)


def delete_many(keys: Iterable[str]) -> None:
    keys = list(keys)
    if not keys or not enabled():
        return
    try:
        cache.delete_many(*keys)
    except Exception:  # noqa: BLE001 - the entries expire after AGGREGATE_CACHE_SECONDS anyway
        log.warning("aggregate cache unavailable; not dropped", exc_info=True)


def remembered(key: str, compute: Callable[[], T], *, keep: Callable[[T], bool] = lambda value: True) -> T:
    """The value stored under `key` if still fresh, else `compute()` (stored when `keep` says so)."""
    found = get_many([key])
    if key in found:
        return found[key]
    value = compute()
    if keep(value):
        set_many({key: value})
    return value


def delete_after_commit(session: Session, keys: Iterable[str]) -> None:
    """Drop `keys` once `session`'s transaction commits (not before: a reader would store the old value
    again); forget them if it rolls back."""
    session.info.setdefault(STALE_KEYS, set()).update(keys)


# On the Session class, so every session of the process has them (request, job, CLI, and the tests' own).
@event.listens_for(Session, "after_commit")
def _delete_stale_keys(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a SAVEPOINT released: the transaction around it may still roll back
    delete_many(session.info.pop(STALE_KEYS, ()))


@event.listens_for(Session, "after_soft_rollback")
def _forget_stale_keys(session: Session, previous_transaction) -> None:
    # Only the whole transaction: a SAVEPOINT rolled back leaves what was written before it to commit.
    if previous_transaction.parent is None:
        session.info.pop(STALE_KEYS, None)
