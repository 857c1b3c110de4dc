"""Timestamps come back aware and in UTC on both databases, whatever the database server's own zone."""
from datetime import datetime, timezone

import pytest
from sqlalchemy import literal, select, text

from webapp.clock import IST
from webapp.db import UTCDateTime, make_engine

MOMENT = datetime(2026, 11, 27, 23, 45, 10, 123456, tzinfo=IST)


def test_a_stored_moment_reads_back_as_the_same_moment_in_utc(db):
    value = db.execute(select(literal(MOMENT, UTCDateTime))).scalar_one()
    assert value == MOMENT
    assert value.tzinfo is timezone.utc
    assert value.hour == 18 and value.minute == 15  # 23:45 IST


def test_a_naive_timestamp_is_refused(db):
    with pytest.raises(Exception, match="naive datetime"):
        db.execute(select(literal(MOMENT.replace(tzinfo=None), UTCDateTime))).scalar_one()


def test_postgresql_sessions_use_utc_even_when_the_database_default_is_ist(db, database_url, backend):
    if backend != "postgresql":
        pytest.skip("a PostgreSQL session setting")
    name = db.execute(text("SELECT current_database()")).scalar_one()
    engine = make_engine(database_url)
    try:
        with engine.connect() as admin:
            admin.execute(text(f'ALTER DATABASE "{name}" SET timezone = \'Asia/Kolkata\''))
            admin.commit()
        engine.dispose()
        with engine.connect() as connection:
            assert connection.execute(text("SHOW timezone")).scalar_one() == "UTC"
            value = connection.execute(select(literal(MOMENT, UTCDateTime))).scalar_one()
            assert value == MOMENT and value.tzinfo is timezone.utc
    finally:
        with engine.connect() as admin:
            admin.execute(text(f'ALTER DATABASE "{name}" RESET timezone'))
            admin.commit()
        engine.dispose()
