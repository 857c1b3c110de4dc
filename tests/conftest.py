"""Shared fixtures. Every database test runs on SQLite and on the real PostgreSQL of this machine.

A test database per backend is migrated once per run (Alembic, like production); each test runs inside
a transaction that is rolled back, and the app's request sessions join it through SAVEPOINTs.
"""
from __future__ import annotations

import re
from contextlib import contextmanager

import pytest
from sqlalchemy.orm import sessionmaker

from tests import pg
from webapp import create_app
from webapp import db as kisht_db
from webapp.permissions import SystemActor
from webapp.services import org

BACKENDS = ["sqlite", "postgresql"]


def migrate(app) -> None:
    from alembic import command

    from webapp.cli import alembic_config

    with app.app_context():
        command.upgrade(alembic_config(), "head")


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request) -> str:
    return request.param


# The `db` fixture runs every session of a test on one connection, so day-end runs its batches one at a
# time here; tests/integration/test_dayend_processes.py runs them in parallel on a database of its own.
TEST_CONFIG = {"APP_ENV": "test", "REDIS_URL": "", "DAYEND_PARALLEL_BATCHES": 1}


@pytest.fixture(scope="session")
def database_url(backend, tmp_path_factory) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'kisht-test.db'}"
    return pg.fresh_database("kisht_test")


@pytest.fixture(scope="session")
def app(database_url):
    """The app that serves the test client's requests."""
    application = create_app(TEST_CONFIG | {"DATABASE_URL": database_url})
    migrate(application)
    yield application
    application.extensions["kisht.engine"].dispose()


@pytest.fixture(scope="session")
def service_app(app, database_url):
    """A twin app whose context the tests hold while calling services directly.

    Being a different app object, it makes every test-client request push its own app context (fresh
    `g`, as in production) instead of joining the test's.
    """
    twin = create_app(TEST_CONFIG | {"DATABASE_URL": database_url})
    twin.extensions["kisht.engine"].dispose()
    twin.extensions["kisht.engine"] = app.extensions["kisht.engine"]
    return twin


@contextmanager
def rolled_back_session(app, service_app):
    """A session inside a transaction that is rolled back at the end; both apps' sessions (requests
    included) join it through SAVEPOINTs."""
    connection = app.extensions["kisht.engine"].connect()
    outer = connection.begin()
    originals = {a: a.extensions["kisht.sessionmaker"] for a in (app, service_app)}
    factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    for application in originals:
        application.extensions["kisht.sessionmaker"] = factory
    ctx = service_app.app_context()
    ctx.push()
    try:
        yield kisht_db.session()
    finally:
        ctx.pop()
        for application, original in originals.items():
            application.extensions["kisht.sessionmaker"] = original
        outer.rollback()
        connection.close()


@pytest.fixture()
def db(app, service_app):
    """A session inside a transaction that is rolled back after the test; requests join it."""
    with rolled_back_session(app, service_app) as session:
        yield session


@pytest.fixture()
def system():
    return SystemActor("test")


PASSWORD = "correct-horse-battery"


@pytest.fixture()
def branches(db, system):
    return {
        "PUNE01": org.create_branch(db, system, code="PUNE01", name="Pune Camp"),
        "NSK01": org.create_branch(db, system, code="NSK01", name="Nashik Road"),
    }


@pytest.fixture()
def users(db, system, branches):
    """One user per role in PUNE01, plus a collector and a manager in NSK01."""
    specs = [("col", "collector", "PUNE01"), ("mgr", "manager", "PUNE01"), ("fin", "finance", None),
             ("leg", "legal", None), ("adm", "admin", None), ("col2", "collector", "NSK01"),
             ("mgr2", "manager", "NSK01")]
    made = {}
    for username, role, branch in specs:
        made[username] = org.create_user(db, system, username=username, role=role, password=PASSWORD,
                                         name=username.upper(), branch_code=branch)
    db.flush()
    return made


def loan_row(**overrides) -> dict:
    row = {
        "loan_number": "KL0001", "borrower_name": "Ravi Kumar", "borrower_phone": "9876543210",
        "branch_code": "PUNE01", "collector_username": "col", "principal": "100000", "annual_rate": "12",
        "tenure_months": "12", "disbursed_on": "2026-01-01", "first_due_on": "2026-02-05",
    }
    row.update(overrides)
    return row


@pytest.fixture()
def make_loan(db, system, users):
    from webapp.services import loans

    def make(**overrides):
        return loans.create_loan(db, system, loan_row(**overrides))

    return make


CSRF_RE = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"|"X-CSRFToken": "([^"]+)"')


def csrf_token(client, path: str = "/login") -> str:
    html = client.get(path, follow_redirects=True).get_data(as_text=True)
    match = CSRF_RE.search(html)
    assert match, f"no CSRF token on {path}"
    return match.group(1) or match.group(2)


def login(client, username: str, password: str = PASSWORD):
    token = csrf_token(client)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token})


@pytest.fixture()
def client(app, db):
    return app.test_client()


@pytest.fixture()
def login_as(app, db, users):
    """A test client signed in as one of the `users` fixture's usernames."""

    def sign_in(username: str):
        c = app.test_client()
        response = login(c, username)
        assert response.status_code == 302, response.get_data(as_text=True)
        return c

    return sign_in

