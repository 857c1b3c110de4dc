"""Production start-up checks beyond the settings themselves (webapp/__init__.py runs them).

Each failure stops start-up with one line, ``Kisht refuses to start: <reason>`` (config.refuse):
the IST time zone, a strong METRICS_TOKEN when one is set, the database and Redis answering.
SECRET_KEY, DEBUG, REDIS_URL being set and demo users are checked in webapp/__init__.py.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import text

from webapp.config import MIN_SECRET_LENGTH, refuse

IST_OFFSET = timedelta(hours=5, minutes=30)


def timezone_problem(key: str = "Asia/Kolkata") -> str | None:
    """Business dates need Asia/Kolkata at +05:30 from the time zone database (the server's TZ is irrelevant)."""
    try:
        zone = ZoneInfo.no_cache(key)
    except (ZoneInfoNotFoundError, ValueError):
        return f"the time zone database has no {key} (install the tzdata package)"
    if datetime.now(timezone.utc).astimezone(zone).utcoffset() != IST_OFFSET:
        return f"the time zone database gives {key} an offset other than +05:30 (broken tzdata)"
    return None


def metrics_token_problem(token: str) -> str | None:
    if token and (len(token) < MIN_SECRET_LENGTH or len(set(token)) < 8):
        return f"METRICS_TOKEN is weak (use at least {MIN_SECRET_LENGTH} random characters, or leave it empty)"
    return None


def database_problem(engine) -> str | None:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        return f"the database does not answer (DATABASE_URL {engine.url.render_as_string(hide_password=True)}: " \
               f"{type(error).__name__})"
    return None


def redis_problem(url: str) -> str | None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping()
    except (redis.RedisError, ValueError) as error:
        return f"Redis does not answer (REDIS_URL: {type(error).__name__})"
    return None


def check_production(app) -> None:
    """Refuse to start a production process that could not work correctly."""
    for problem in (timezone_problem(), metrics_token_problem(app.config["METRICS_TOKEN"]),
                    database_problem(app.extensions["kisht.engine"]), redis_problem(app.config["REDIS_URL"])):
        if problem:
            refuse(problem)
