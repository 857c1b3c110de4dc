"""Scratch PostgreSQL databases on the machine's server (trust auth on 127.0.0.1:5432)."""
from __future__ import annotations

import os

from sqlalchemy import create_engine, text

SERVER = os.environ.get("KISHT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
# Two runs at once on one server (two checkouts, two people) keep their databases apart with a suffix,
# e.g. KISHT_TEST_DB_SUFFIX=_mine; unset, the names are as before.
SUFFIX = os.environ.get("KISHT_TEST_DB_SUFFIX", "")


def fresh_database(name: str) -> str:
    """Drop and create database `name` (plus KISHT_TEST_DB_SUFFIX); return its URL."""
    name = f"{name}{SUFFIX}"
    admin = create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{SERVER}/{name}"
