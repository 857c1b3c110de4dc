"""Short-lived reuse of aggregates that read a whole portfolio: class totals and the row count of a large list.

Counting or summing a million loans costs 130-180 ms; a dashboard viewed every few seconds by every
manager and finance desk must not pay it each time. Values are kept AGGREGATE_CACHE_SECONDS (default 60)
in Redis when REDIS_URL is set (shared by every worker), in process memory otherwise, and not at all when
it is 0. A cache that fails never fails the request: the value is computed instead.
"""
from __future__ import annotations

import hashlib
import logging
from typing import Callable, TypeVar

from flask import current_app
from flask_caching import Cache

T = TypeVar("T")
log = logging.getLogger("kisht.cache")
cache = Cache()


def init_app(app) -> None:
    seconds = app.config["AGGREGATE_CACHE_SECONDS"]
    if not seconds:
        return  # remembered() computes every value
    settings = {"CACHE_DEFAULT_TIMEOUT": seconds, "CACHE_KEY_PREFIX": "kisht:aggregate:"}
    if app.config["REDIS_URL"]:
        settings.update(CACHE_TYPE="RedisCache", CACHE_REDIS_URL=app.config["REDIS_URL"])
    else:
        settings["CACHE_TYPE"] = "SimpleCache"
    cache.init_app(app, config=settings)


def key_of(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def remembered(key: str, compute: Callable[[], T], *, keep: Callable[[T], bool] = lambda value: True) -> T:
    """The value stored under `key` if still fresh, else `compute()` (stored when `keep` says so)."""
    if not current_app.config["AGGREGATE_CACHE_SECONDS"]:
        return compute()
    try:
        value = cache.get(key)
    except Exception:  # noqa: BLE001 - Redis down or a bad entry: compute instead
        log.warning("aggregate cache unavailable; computing", exc_info=True)
        value = None
    if value is not None:
        return value
    value = compute()
    if keep(value):
        try:
            cache.set(key, value)
        except Exception:  # noqa: BLE001
            log.warning("aggregate cache unavailable; not stored", exc_info=True)
    return value
