"""The `kisht` command against a real database of each backend: migrate, users, import, show, verify."""
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from tests import pg
from tests.conftest import loan_row
from tests.integration.test_loans import csv_of
from webapp.cli import cli


@pytest.fixture()
def run(backend, tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}" if backend == "sqlite" else pg.fresh_database("kisht_cli")
    runner = CliRunner()
    env = {"APP_ENV": "test", "DATABASE_URL": url, "REDIS_URL": ""}

    def invoke(*args, input=None):
        return runner.invoke(cli, list(args), env=env, input=input, catch_exceptions=False)

    invoke.url = url
    result = invoke("db", "upgrade")
    assert result.exit_code == 0, result.output
    return invoke


def test_branches_users_import_and_show(run, tmp_path):
    assert run("branches", "create", "PUNE01", "--name", "Pune Camp").exit_code == 0
    assert run("users", "create", "col", "--role", "collector", "--branch", "PUNE01", input="long-password-1\n").exit_code == 0
    short = run("users", "create", "x.y", "--role", "admin", input="short\n")
    assert short.exit_code == 1 and "password" in short.output
    nobranch = run("users", "create", "m1", "--role", "manager", input="long-password-1\n")
    assert nobranch.exit_code == 1 and "branch" in nobranch.output

    bad = tmp_path / "bad.csv"
    bad.write_text(csv_of(loan_row(loan_number="KL1"), loan_row(loan_number="KL2", tenure_months="999")))
    result = run("loans", "import", str(bad))
    assert result.exit_code == 1 and "row 3, tenure_months" in result.output

    good = tmp_path / "good.csv"
    good.write_text(csv_of(loan_row(loan_number="KL1"), loan_row(loan_number="KL2", principal="250000.75")))
    result = run("loans", "import", str(good))
    assert result.exit_code == 0 and "imported 2 loan(s)" in result.output

    shown = json.loads(run("loans", "show", "KL2", "--json").output)
    assert shown["principal"] == "250000.75" and shown["annual_rate"] == "12.00" and shown["tenure_months"] == 12
    assert set(shown) >= {"loan_number", "principal", "annual_rate", "tenure_months", "emi", "status", "dpd",
                          "asset_class", "bucket", "outstanding_principal", "overdue_amount", "schedule"}
    row = shown["schedule"][0]
    assert set(row) >= {"seq", "due_date", "principal_due", "interest_due", "total_due", "paid", "status"}
    assert sum(int(r["principal_due"].replace(".", "")) for r in shown["schedule"]) == 25_000_075
    assert run("loans", "show", "NOPE").exit_code == 1


def test_audit_verify_exit_codes(run, backend):
    run("branches", "create", "PUNE01", "--name", "Pune Camp")
    ok = run("audit", "verify")
    assert ok.exit_code == 0 and "audit chain OK: 1 entries" in ok.output
    engine = create_engine(run.url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        if backend == "postgresql":
            connection.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
        else:
            connection.execute(text("DROP TRIGGER audit_log_no_update"))
        connection.execute(text("UPDATE audit_log SET actor_label = 'someone-else'"))
    engine.dispose()
    broken = run("audit", "verify")
    assert broken.exit_code == 1 and "entry seq 1 (id 1) was altered" in broken.output


def test_demo_seed_then_downgrade(run):
    seeded = run("demo", "seed", "--loans", "12")
    assert seeded.exit_code == 0 and "demo.collector" in seeded.output
    again = run("demo", "seed")
    assert again.exit_code == 0 and "demo.admin" in again.output  # passwords reset, nothing duplicated
    assert run("db", "downgrade", "base").exit_code == 0


def test_a_database_that_is_not_migrated_gets_one_line_not_a_traceback(tmp_path):
    import os
    import subprocess
    import sys

    from webapp.config import ROOT

    env = {**os.environ, "APP_ENV": "test", "REDIS_URL": "", "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    done = subprocess.run([sys.executable, "-c", "from webapp.cli import main; main()", "loans", "show", "KL1"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "error: the database is not migrated" in done.stderr and "kisht db upgrade" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
