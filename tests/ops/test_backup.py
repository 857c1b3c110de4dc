"""Backups end to end on SQLite and PostgreSQL: create, verify, restore on a second database, refusals, prune."""
import json
import os
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, text

from tests import pg
from tests.conftest import PASSWORD, loan_row, migrate
from webapp import clock, create_app, db
from webapp.cli import cli
from webapp.permissions import SystemActor
from webapp.services import backup, loans, org, payments


def _drop(name: str) -> None:
    server = create_engine(f"{pg.SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}{pg.SUFFIX}" WITH (FORCE)'))
    server.dispose()


@pytest.fixture()
def two_databases(backend, tmp_path):
    """The source database and a second, empty one to restore into."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'source.db'}", f"sqlite:///{tmp_path / 'second.db'}"
        return
    yield pg.fresh_database("kisht_ops_source"), pg.fresh_database("kisht_ops_second")
    _drop("kisht_ops_source")
    _drop("kisht_ops_second")


@pytest.fixture()
def source(two_databases, tmp_path):
    """A migrated source database with users, loans, payments and audit entries; its app; the env for the CLI."""
    url, second = two_databases
    settings = {"APP_ENV": "test", "DATABASE_URL": url, "REDIS_URL": "", "BACKUP_DIR": str(tmp_path / "backups")}
    app = create_app(settings)
    migrate(app)
    system = SystemActor("test")
    with app.app_context():
        with db.new_session() as session:
            org.create_branch(session, system, code="PUNE01", name="Pune Camp")
            collector = org.create_user(session, system, username="col", role="collector", password=PASSWORD,
                                        name="COL", branch_code="PUNE01")
            for n in range(3):
                loans.create_loan(session, system, loan_row(loan_number=f"KLB{n}", borrower_phone=f"98765432{n}0"))
            session.flush()
            payments.record_payment(session, collector, "KLB0", {
                "amount": "500.00", "mode": "CASH", "receipt_number": "RB0001",
                "value_date": clock.today_ist().isoformat()})
            session.commit()
    env = {"APP_ENV": "test", "DATABASE_URL": url, "REDIS_URL": "", "BACKUP_DIR": settings["BACKUP_DIR"]}
    yield app, env, second
    app.extensions["kisht.engine"].dispose()


def rows_of(url: str) -> dict[str, list]:
    """Every row of every table, in a stable order: 'equal databases' means equal here."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            result = {}
            for table in sorted(inspect(connection).get_table_names()):
                rows = connection.execute(text(f'SELECT * FROM "{table}"')).all()
                result[table] = sorted((tuple(str(v) for v in row) for row in rows))
            return result
    finally:
        engine.dispose()


def kisht(env: dict, *args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)


def test_create_verify_and_restore_on_a_second_database(source, backend):
    app, env, second = source
    created = kisht(env, "backup", "create")
    assert created.exit_code == 0, created.output
    (made,) = backup.list_backups(app.config)
    manifest = made.manifest
    assert manifest["backend"] == backend and manifest["sha256"] == backup.sha256_of(made.dump)
    assert made.dump.suffix == (".dump" if backend == "postgresql" else ".sqlite3")
    assert manifest["tables"]["loans"] == 3 and manifest["tables"]["payments"] == 1
    assert manifest["audit"]["entries"] > 0 and manifest["alembic_revision"]
    assert "password" not in json.dumps(manifest).lower() or ":***@" in manifest["database"]

    verified = kisht(env, "backup", "verify")
    assert verified.exit_code == 0, verified.output
    assert f"backup {made.name} verified" in verified.output and "audit chain OK" in verified.output
    (made,) = backup.list_backups(app.config)
    assert made.verified_ok is True and made.verification["problems"] == []

    restored = kisht(env, "backup", "restore", made.name, "--target-url", second, "--yes")
    assert restored.exit_code == 0, restored.output
    assert rows_of(second) == rows_of(env["DATABASE_URL"])  # the second database equals the first


def test_restore_replaces_later_changes_in_place(source):
    app, env, _second = source
    assert kisht(env, "backup", "create").exit_code == 0
    before = rows_of(env["DATABASE_URL"])
    with app.app_context():
        with db.new_session() as session:
            loans.create_loan(session, SystemActor("test"), loan_row(loan_number="KLLATER"))
            session.commit()
    assert rows_of(env["DATABASE_URL"]) != before
    app.extensions["kisht.engine"].dispose()
    (made,) = backup.list_backups(app.config)
    result = kisht(env, "backup", "restore", made.name, "--yes")
    assert result.exit_code == 0, result.output
    assert rows_of(env["DATABASE_URL"]) == before


def test_a_damaged_backup_fails_verification_and_is_never_restored(source):
    app, env, second = source
    assert kisht(env, "backup", "create").exit_code == 0
    (made,) = backup.list_backups(app.config)
    with open(made.dump, "r+b") as handle:  # one flipped byte in the middle
        handle.seek(made.size // 2)
        byte = handle.read(1)
        handle.seek(made.size // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    verified = kisht(env, "backup", "verify", made.name)
    assert verified.exit_code == 1 and "FAILED verification" in verified.output
    assert "SHA-256 does not match" in verified.output
    second_before = rows_of(second)
    refused = kisht(env, "backup", "restore", made.name, "--target-url", second, "--yes")
    assert refused.exit_code == 1
    assert f"error: Backup {made.name} is damaged: its SHA-256 does not match the manifest" in refused.output
    assert "sha256: expected" in refused.output
    assert rows_of(second) == second_before  # nothing touched
    (made,) = backup.list_backups(app.config)
    assert made.verified_ok is False  # shown on the admin screen and in /metrics


def test_verification_compares_every_table_with_the_manifest(source):
    app, env, _second = source
    assert kisht(env, "backup", "create").exit_code == 0
    (made,) = backup.list_backups(app.config)
    manifest_path = made.directory / f"{made.name}.manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["tables"]["payments"] = 2
    manifest["audit"]["entries"] += 5
    manifest_path.write_text(json.dumps(manifest))
    result = kisht(env, "backup", "verify", made.name)
    assert result.exit_code == 1
    assert "table payments: manifest 2, restored 1" in result.output
    assert "audit chain head differs" in result.output


def test_restore_asks_for_confirmation(source):
    app, env, second = source
    assert kisht(env, "backup", "create").exit_code == 0
    (made,) = backup.list_backups(app.config)
    result = kisht(env, "backup", "restore", made.name, "--target-url", second)  # no terminal, no --yes
    assert result.exit_code == 1 and "confirm with --yes" in result.output
    for name in ("nope", "../etc/passwd"):
        unknown = kisht(env, "backup", "restore", name, "--yes")
        assert unknown.exit_code == 1 and "error:" in unknown.output


def test_restore_refuses_another_backend(source, backend, tmp_path):
    app, env, _second = source
    assert kisht(env, "backup", "create").exit_code == 0
    (made,) = backup.list_backups(app.config)
    other = f"sqlite:///{tmp_path / 'other.db'}" if backend == "postgresql" else "postgresql://postgres@127.0.0.1/x"
    result = kisht(env, "backup", "restore", made.name, "--target-url", other, "--yes")
    assert result.exit_code == 1 and f"is a {backend} backup" in result.output


def test_the_backup_shows_on_the_admin_system_page(source):
    app, env, _second = source
    assert kisht(env, "backup", "create", "--verify").exit_code == 0
    (made,) = backup.list_backups(app.config)
    client = app.test_client()
    from tests.conftest import login

    with app.app_context():
        with db.new_session() as session:
            org.create_user(session, SystemActor("test"), username="adm", role="admin", password=PASSWORD, name="ADM")
            session.commit()
    assert login(client, "adm").status_code == 302
    html = client.get("/admin/system").get_data(as_text=True)
    assert made.name in html and "passed" in html
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "kisht_backup_last_verify_ok 1.0" in metrics and "kisht_backups 1.0" in metrics


def test_the_scheduled_backup_job_creates_verifies_and_prunes(source):
    from jobs import tasks
    from jobs.schedule import SCHEDULE

    app, env, _second = source
    (spec,) = [s for s in SCHEDULE if s.id == "backup-daily"]
    assert spec.func == "jobs.tasks.backup_daily" and spec.cron_ist == "30 2 * * *" and spec.cron_utc == "0 21 * * *"
    with app.app_context():
        outcome = tasks.backup_daily()
    assert outcome["verified"] is True and outcome["problems"] == []
    (made,) = backup.list_backups(app.config)
    assert made.name == outcome["name"] and made.verified_ok


# ---------------------------------------------------------------- retention

def at(day: str, hour: int = 3) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=clock.IST).astimezone(timezone.utc)


def test_retention_keeps_7_daily_4_weekly_12_monthly():
    start = datetime(2025, 1, 1, 2, 30, tzinfo=clock.IST)
    created = {f"b{n:03d}": (start + timedelta(days=n)).astimezone(timezone.utc) for n in range(400)}
    created["b399-second"] = created["b399"] + timedelta(hours=5)  # two on the newest day
    keep = backup.to_keep(created, daily=7, weekly=4, monthly=12)
    newest = sorted(created, key=created.get)[-1]
    assert newest in keep
    days = {clock.to_ist(created[n]).date() for n in keep}
    last7 = {clock.to_ist(created["b399"]).date() - timedelta(days=d) for d in range(7)}
    assert last7 <= days
    months = {(d.year, d.month) for d in days}
    assert len(months) == 12
    assert len(keep) <= 7 + 4 + 12
    assert "b399" not in keep  # the second backup of the newest day stands for that day
    assert backup.to_keep(created, daily=0, weekly=0, monthly=0) == {newest}


def test_prune_deletes_files_outside_the_policy(source):
    app, env, _second = source
    assert kisht(env, "backup", "create").exit_code == 0
    (first,) = backup.list_backups(app.config)
    directory = first.directory
    for n in range(1, 10):  # nine more copies, one a day back in time
        name = f"kisht-2020010{n}-023000" if n < 10 else None
        manifest = dict(first.manifest, name=name, file=f"{name}{first.dump.suffix}",
                        created_at=at(f"2020-01-0{n}").isoformat())
        (directory / manifest["file"]).write_bytes(first.dump.read_bytes())
        (directory / f"{name}.manifest.json").write_text(json.dumps(manifest))
    app.config.update(BACKUP_KEEP_DAILY=3, BACKUP_KEEP_WEEKLY=0, BACKUP_KEEP_MONTHLY=0)
    dry = kisht(dict(env, BACKUP_KEEP_DAILY="3", BACKUP_KEEP_WEEKLY="0", BACKUP_KEEP_MONTHLY="0"),
                "backup", "prune", "--dry-run")
    assert dry.exit_code == 0 and "kept 3, would delete 7" in dry.output
    assert len(backup.list_backups(app.config)) == 10
    result = kisht(dict(env, BACKUP_KEEP_DAILY="3", BACKUP_KEEP_WEEKLY="0", BACKUP_KEEP_MONTHLY="0"), "backup", "prune")
    assert result.exit_code == 0 and "kept 3, deleted 7" in result.output
    kept = [b.name for b in backup.list_backups(app.config)]
    assert kept == [first.name, "kisht-20200109-023000", "kisht-20200108-023000"]
    assert sorted(os.listdir(directory)) == sorted(
        f for name in kept for f in (f"{name}.manifest.json", f"{name}{first.dump.suffix}", f"{name}.verify.json")
        if (directory / f).exists())


def test_bad_retention_settings_are_refused(tmp_path):
    result = CliRunner().invoke(cli, ["backup", "prune"], env={"APP_ENV": "test", "BACKUP_KEEP_WEEKLY": "four",
                                                              "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    assert result.exit_code != 0


def _dispute_with_evidence(app) -> str:
    """A dispute on KLB0 with one evidence file; returns the file's stored name."""
    from tests.disputes_support import png, upload
    from webapp.models import User
    from webapp.services import disputes

    with app.app_context():
        with db.new_session() as session:
            collector = session.query(User).filter_by(username="col").one()
            dispute = disputes.raise_dispute(session, collector, "KLB0", {
                "category": "PAYMENT_NOT_CREDITED", "description": "Paid by UPI on the 3rd; not on the loan."},
                [upload("receipt.png", png())])
            stored = dispute.evidence[0].stored_name
            session.commit()
    return stored


def test_evidence_files_are_archived_verified_and_restored(source, tmp_path):
    app, env, _second = source
    evidence_dir = tmp_path / "evidence"
    app.config["EVIDENCE_DIR"] = str(evidence_dir)
    env = {**env, "EVIDENCE_DIR": str(evidence_dir)}
    stored = _dispute_with_evidence(app)
    original = (evidence_dir / stored[:2] / stored).read_bytes()
    made = backup.create(app.config, app.extensions["kisht.engine"])
    assert made.manifest["evidence"]["files"] == 1 and made.evidence_archive.exists()
    assert backup.verify(app.config, app.extensions["kisht.engine"], made.name).ok

    # The file is lost on the server; a restore of the database puts it back, byte for byte.
    (evidence_dir / stored[:2] / stored).unlink()
    result = CliRunner().invoke(cli, ["backup", "restore", made.name, "--yes"], env=env)
    assert result.exit_code == 0, result.output
    assert "1 evidence file(s) put back" in result.output
    assert (evidence_dir / stored[:2] / stored).read_bytes() == original


def test_a_damaged_evidence_archive_is_refused(source, tmp_path):
    app, env, _second = source
    app.config["EVIDENCE_DIR"] = str(tmp_path / "evidence")
    _dispute_with_evidence(app)
    made = backup.create(app.config, app.extensions["kisht.engine"])
    with open(made.evidence_archive, "r+b") as archive:
        archive.seek(600)
        archive.write(b"\x00garbage\x00")
    result = backup.verify(app.config, app.extensions["kisht.engine"], made.name)
    assert not result.ok and any("evidence archive does not match" in p for p in result.problems)
    refused = CliRunner().invoke(cli, ["backup", "restore", made.name, "--yes"],
                                 env={**env, "EVIDENCE_DIR": str(tmp_path / "evidence")})
    assert refused.exit_code != 0 and "damaged" in refused.output


def test_an_evidence_row_without_its_archived_file_fails_verification(source, tmp_path):
    app, _env, _second = source
    evidence_dir = tmp_path / "evidence"
    app.config["EVIDENCE_DIR"] = str(evidence_dir)
    stored = _dispute_with_evidence(app)
    (evidence_dir / stored[:2] / stored).unlink()  # gone before the backup: the archive cannot hold it
    made = backup.create(app.config, app.extensions["kisht.engine"])
    result = backup.verify(app.config, app.extensions["kisht.engine"], made.name)
    assert not result.ok and any(stored in p and "not in" in p for p in result.problems)
