"""Engine, session factory, declarative Base and the request-scoped session.

The request (or the job run, or the CLI command) owns the transaction: services only flush().
"""
from __future__ import annotations

from datetime import timezone

from flask import current_app, g, has_request_context, request
from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator):
    """Aware timestamps in, aware UTC timestamps out, on PostgreSQL and SQLite alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware timestamp is required")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None or value.tzinfo is timezone.utc:  # PostgreSQL's, in the session's UTC (make_engine)
            return value
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def days_sql(later: str, earlier: str, dialect: str) -> str:
    """SQL for the whole days between two DATE expressions, on either database."""
    if dialect == "postgresql":
        return f"({later} - {earlier})"
    return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"


def dpd_sql(day: str, overdue_since: str, dialect: str) -> str:
    """DPD on `day` of a loan whose oldest unpaid due date is `overdue_since` (NULL: not overdue)."""
    return f"CASE WHEN {overdue_since} IS NULL THEN 0 ELSE {days_sql(day, overdue_since, dialect)} + 1 END"


def make_engine(url: str, **kwargs) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _configure_sqlite(engine)
        return engine
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    # The session's time zone is UTC, whatever the server's default: psycopg then returns timestamps in
    # datetime.timezone.utc, the cheapest to read (no SQL here relies on the session's zone).
    connect_args = {"options": "-c timezone=UTC", **kwargs.pop("connect_args", {})}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINTs; let SQLAlchemy emit BEGIN itself.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        # A request that writes takes SQLite's write lock up front: a deferred transaction that later
        # tries to write while another writes fails at once ("database is locked") instead of waiting.
        writing = has_request_context() and request.method not in ("GET", "HEAD", "OPTIONS")
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def init_app(app) -> None:
    engine = make_engine(app.config["DATABASE_URL"], **(
        {} if app.config["DATABASE_URL"].startswith("sqlite")
        else {"pool_size": app.config["DB_POOL_SIZE"], "max_overflow": app.config["DB_MAX_OVERFLOW"]}))
    app.extensions["kisht.engine"] = engine
    app.extensions["kisht.sessionmaker"] = sessionmaker(bind=engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def engine() -> Engine:
    return current_app.extensions["kisht.engine"]


def new_session() -> Session:
    """A fresh session outside the request one (CLI commands, jobs, refusal audits)."""
    return current_app.extensions["kisht.sessionmaker"]()


def session() -> Session:
    """The request-scoped session; committed once at the end of a successful request."""
    if "db_session" not in g:
        g.db_session = new_session()
    return g.db_session


def _close_session(_exc=None) -> None:
    db_session = g.pop("db_session", None)
    if db_session is not None:
        db_session.close()


def rollback_request() -> None:
    """Discard what this request wrote; the request will not commit."""
    g.rollback = True
    session().rollback()
