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
