"""Scratch PostgreSQL databases on the machine's server (trust auth on 127.0.0.1:5432)."""
from __future__ import annotations

import os

from sqlalchemy import create_engine, text

SERVER = os.environ.get("KISHT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


def fresh_database(name: str) -> str:
    """Drop and create database `name`; return its URL."""
    admin = create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{SERVER}/{name}"
