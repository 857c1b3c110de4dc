"""Migrations go up and down on both databases, and the models never drift from them."""
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from tests import pg
from webapp import create_app
from webapp.cli import alembic_config
from webapp.db import Base


@pytest.fixture()
def scratch_app(backend, tmp_path):
    url = f"sqlite:///{tmp_path / 'scratch.db'}" if backend == "sqlite" else pg.fresh_database("kisht_migrations")
    app = create_app({"APP_ENV": "test", "DATABASE_URL": url})
    yield app
    app.extensions["kisht.engine"].dispose()


def test_upgrade_downgrade_upgrade(scratch_app):
    with scratch_app.app_context():
        config = alembic_config()
        engine = scratch_app.extensions["kisht.engine"]
        command.upgrade(config, "head")
        assert {"loans", "instalments", "audit_log", "users", "branches", "borrowers"} <= set(inspect(engine).get_table_names())
        command.downgrade(config, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        command.upgrade(config, "head")
        assert "loans" in inspect(engine).get_table_names()


def test_models_and_migrations_do_not_drift(scratch_app):
    with scratch_app.app_context():
        command.upgrade(alembic_config(), "head")
        with scratch_app.extensions["kisht.engine"].connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []


def test_every_foreign_key_is_indexed(scratch_app):
    with scratch_app.app_context():
        command.upgrade(alembic_config(), "head")
        inspector = inspect(scratch_app.extensions["kisht.engine"])
        for table in inspector.get_table_names():
            indexed = {tuple(ix["column_names"][:1]) for ix in inspector.get_indexes(table)}
            indexed |= {tuple(uq["column_names"][:1]) for uq in inspector.get_unique_constraints(table)}
            indexed.add(tuple(inspector.get_pk_constraint(table)["constrained_columns"][:1]))
            for fk in inspector.get_foreign_keys(table):
                assert tuple(fk["constrained_columns"][:1]) in indexed, f"{table}.{fk['constrained_columns']} has no index"


def test_0014_puts_right_an_outstanding_principal_left_too_high(scratch_app):
    from sqlalchemy import text

    from tests.conftest import loan_row
    from webapp import db
    from webapp.permissions import SystemActor
    from webapp.services import loans, org

    with scratch_app.app_context():
        config = alembic_config()
        command.upgrade(config, "0013_promises_branch_id")
        with db.new_session() as session:
            system = SystemActor("test")
            org.create_branch(session, system, code="PUNE01", name="Pune Camp")
            org.create_user(session, system, username="col", role="collector", password="long-password-1",
                            branch_code="PUNE01")
            for number in ("KL1", "KL2"):
                loans.create_loan(session, system, loan_row(loan_number=number))
            # KL1 as the old day-end left it: its first EMI's principal paid from an advance, the loan unchanged.
            session.execute(text("UPDATE instalments SET principal_paid_paise = principal_due_paise WHERE seq = 1 "
                                 "AND loan_id = (SELECT id FROM loans WHERE loan_number = 'KL1')"))
            session.commit()
        command.upgrade(config, "head")
        with db.new_session() as session:
            rows = dict(session.execute(text(
                "SELECT l.loan_number, l.outstanding_principal_paise - SUM(i.principal_due_paise - i.principal_paid_paise) "
                "FROM loans l JOIN instalments i ON i.loan_id = l.id GROUP BY l.loan_number, l.outstanding_principal_paise")).all())
            first_principal = session.scalar(text("SELECT principal_due_paise FROM instalments WHERE seq = 1 LIMIT 1"))
            outstanding = dict(session.execute(text("SELECT loan_number, outstanding_principal_paise FROM loans")).all())
    assert rows == {"KL1": 0, "KL2": 0}
    assert outstanding == {"KL1": 10_000_000 - first_principal, "KL2": 10_000_000}
