"""Backups: create (with checksum and manifest), verify (restore into a scratch database), restore, prune.

Files in BACKUP_DIR, per backup NAME (``kisht-YYYYMMDD-HHMMSS`` in IST):

* ``NAME.dump`` (PostgreSQL, ``pg_dump`` custom format) or ``NAME.sqlite3`` (SQLite online backup API);
* ``NAME.manifest.json``: backend, creation time, SHA-256 and size of the dump, Alembic revision, the row
  count of every table and the audit chain's length and last hash — all read from the *same snapshot*
  the dump was taken from (PostgreSQL: an exported snapshot shared with pg_dump; SQLite: the copy itself);
* ``NAME.evidence.tar``: the dispute evidence files (EVIDENCE_DIR), archived right after the database
  snapshot, so every evidence row in the dump has its file in the archive; its SHA-256 and file count are
  in the manifest;
* ``NAME.verify.json``: the last verification: when, whether it passed, and what differed.

A backup without a manifest is incomplete and ignored (the manifest is written last). Restoring refuses a
dump whose SHA-256 differs from its manifest. Verification restores into a throw-away database (a new
PostgreSQL database on the same server, dropped afterwards; a temporary SQLite file) and compares the row
count of every table and the audit chain (walked and checked entry by entry) with the manifest, and
checks that every evidence row of the restored copy has its file in the evidence archive. Restoring also
puts the archived evidence files back into EVIDENCE_DIR.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import tarfile
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session

from webapp import clock
from webapp.errors import NotFound, ValidationError

log = logging.getLogger("kisht.backup")
MANIFEST_VERSION = 1
NAME_PREFIX = "kisht-"


# ---------------------------------------------------------------- the files

@dataclass
class Backup:
    name: str
    directory: Path
    manifest: dict
    verification: dict | None = None

    @property
    def dump(self) -> Path:
        return self.directory / self.manifest["file"]

    @property
    def created_at(self) -> datetime:
        return datetime.fromisoformat(self.manifest["created_at"])

    @property
    def size(self) -> int:
        return self.manifest["size"]

    @property
    def backend(self) -> str:
        return self.manifest["backend"]

    @property
    def verified_at(self) -> datetime | None:
        return datetime.fromisoformat(self.verification["verified_at"]) if self.verification else None

    @property
    def verified_ok(self) -> bool | None:
        return self.verification["ok"] if self.verification else None

    @property
    def evidence_archive(self) -> Path | None:
        evidence = self.manifest.get("evidence")
        return self.directory / evidence["file"] if evidence else None

    def files(self) -> list[Path]:
        return [self.dump, self.directory / f"{self.name}.manifest.json", self.directory / f"{self.name}.verify.json",
                *([self.evidence_archive] if self.evidence_archive else [])]


@dataclass
class Verification:
    name: str
    ok: bool
    problems: list[str] = field(default_factory=list)
    tables: int = 0
    rows: int = 0
    audit_entries: int = 0


def _directory(config) -> Path:
    return Path(config["BACKUP_DIR"])


def list_backups(config) -> list[Backup]:
    """Complete backups, newest first."""
    directory = _directory(config)
    if not directory.is_dir():
        return []
    found = []
    for manifest_path in directory.glob(f"{NAME_PREFIX}*.manifest.json"):
        name = manifest_path.name.removesuffix(".manifest.json")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            log.warning("backup %s: unreadable manifest, ignored", name)
            continue
        verify_path = directory / f"{name}.verify.json"
        verification = None
        if verify_path.exists():
            try:
                verification = json.loads(verify_path.read_text())
            except (OSError, ValueError):
                verification = None
        found.append(Backup(name, directory, manifest, verification))
    return sorted(found, key=lambda b: (b.created_at, b.name), reverse=True)


def get(config, name: str) -> Backup:
    if not name or "/" in name or name.startswith("."):
        raise ValidationError("Give the name of a backup.", fields={"name": f"{name!r} is not a backup name"})
    name = name.removesuffix(".manifest.json").removesuffix(".dump").removesuffix(".sqlite3")
    for backup in list_backups(config):
        if backup.name == name:
            return backup
    raise NotFound(f"No backup named {name!r} in {_directory(config)}.")


def status(config) -> dict:
    """For the admin screen and /metrics: how many, the newest, and the most recently verified."""
    backups = list_backups(config)
    verified = [b for b in backups if b.verification]
    return {"count": len(backups), "latest": backups[0] if backups else None, "backups": backups,
            "last_verified": max(verified, key=lambda b: b.verified_at) if verified else None}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_json(path: Path, value: dict) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)


# ---------------------------------------------------------------- reading a database

def table_counts(connection) -> dict[str, int]:
    names = sorted(inspect(connection).get_table_names())
    return {name: int(connection.execute(text(f'SELECT count(*) FROM "{name}"')).scalar()) for name in names}


def audit_state(connection) -> dict:
    """The chain head (length and last hash), as stored."""
    if not inspect(connection).has_table("audit_chain_head"):
        return {"entries": 0, "last_hash": None}
    row = connection.execute(text("SELECT seq, last_hash FROM audit_chain_head WHERE id = 1")).first()
    return {"entries": int(row[0]) if row else 0, "last_hash": row[1] if row else None}


def alembic_revision(connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _pg_tool(config, tool: str) -> str:
    candidates = [Path(config["PG_BIN_DIR"]) / tool] if config.get("PG_BIN_DIR") else []
    on_path = shutil.which(tool)
    if on_path:
        candidates.append(Path(on_path))
    candidates += sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"), reverse=True)
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    raise ValidationError(f"{tool} was not found; install the PostgreSQL client or set PG_BIN_DIR.",
                          fields={"PG_BIN_DIR": f"no {tool} there or on PATH"})


def _libpq(url: URL) -> tuple[str, dict]:
    """A libpq connection string without the password, and an environment carrying it (not in argv)."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(args: list[str], env: dict | None = None) -> None:
    result = subprocess.run(args, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        tool = Path(args[0]).name
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise ValidationError(f"{tool} failed: {detail[-1] if detail else 'exit ' + str(result.returncode)}",
                              fields={"backup": f"{tool} exited with {result.returncode}"})


def _safe_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


# ---------------------------------------------------------------- create

def _new_name(directory: Path) -> str:
    stamp = clock.to_ist(clock.now()).strftime("%Y%m%d-%H%M%S")
    name, n = f"{NAME_PREFIX}{stamp}", 1
    while any(directory.glob(f"{name}.*")):
        n += 1
        name = f"{NAME_PREFIX}{stamp}-{n}"
    return name


def create(config, engine: Engine) -> Backup:
    """Take a backup of the app's database into BACKUP_DIR and return it."""
    directory = _directory(config)
    directory.mkdir(parents=True, exist_ok=True)
    name = _new_name(directory)
    backend = engine.dialect.name
    suffix = ".dump" if backend == "postgresql" else ".sqlite3"
    partial = directory / f"{name}{suffix}.partial"
    started = clock.now()
    try:
        if backend == "postgresql":
            facts = _pg_dump(config, engine, partial)
        elif backend == "sqlite":
            facts = _sqlite_backup(engine, partial)
        else:
            raise ValidationError(f"Backups of {backend} are not supported.", fields={"DATABASE_URL": backend})
        final = directory / f"{name}{suffix}"
        os.replace(partial, final)
        evidence = _archive_evidence(config, directory / f"{name}.evidence.tar")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    manifest = {
        "version": MANIFEST_VERSION, "name": name, "backend": backend, "file": final.name,
        "created_at": started.isoformat(), "finished_at": clock.now().isoformat(),
        "sha256": sha256_of(final), "size": final.stat().st_size, "database": _safe_url(engine.url),
        "host": socket.gethostname(), "evidence": evidence, **facts,
    }
    _write_json(directory / f"{name}.manifest.json", manifest)
    log.info("backup %s created: %s, %d bytes, %d tables, audit chain %d entries", name, backend, manifest["size"],
             len(manifest["tables"]), manifest["audit"]["entries"])
    return Backup(name, directory, manifest)


def _evidence_dir(config) -> Path:
    return Path(config["EVIDENCE_DIR"])


def _archive_evidence(config, target: Path) -> dict:
    """Every evidence file (``xx/<stored name>``) into an uncompressed tar: the files are PDFs and images."""
    root = _evidence_dir(config)
    partial = target.with_name(target.name + ".partial")
    count = 0
    try:
        with tarfile.open(partial, "w") as archive:
            for path in sorted(root.glob("??/*")) if root.is_dir() else []:
                if path.is_file():
                    archive.add(path, arcname=f"{path.parent.name}/{path.name}", recursive=False)
                    count += 1
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return {"file": target.name, "sha256": sha256_of(target), "size": target.stat().st_size, "files": count}


def _archived_names(backup: Backup) -> set[str]:
    with tarfile.open(backup.evidence_archive) as archive:
        return {member.name.split("/")[-1] for member in archive.getmembers() if member.isfile()}


def _pg_dump(config, engine: Engine, target: Path) -> dict:
    """pg_dump and the counts read in one exported snapshot, so they describe exactly what was dumped."""
    pg_dump = _pg_tool(config, "pg_dump")
    conninfo, env = _libpq(engine.url)
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            connection.execute(text("SET TRANSACTION READ ONLY"))
            snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar()
            facts = {"tables": table_counts(connection), "audit": audit_state(connection),
                     "alembic_revision": alembic_revision(connection),
                     "server_version": connection.execute(text("SHOW server_version")).scalar()}
            _run([pg_dump, "--format=custom", "--no-owner", "--no-privileges", f"--snapshot={snapshot}",
                  f"--file={target}", f"--dbname={conninfo}"], env)
    return facts


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise ValidationError("An in-memory SQLite database cannot be backed up.", fields={"DATABASE_URL": "in memory"})
    return Path(url.database)


def _sqlite_backup(engine: Engine, target: Path) -> dict:
    source = sqlite3.connect(str(_sqlite_path(engine.url)), timeout=30)
    copy = sqlite3.connect(str(target))
    try:
        source.backup(copy)  # the online backup API: a consistent copy while the app keeps writing
    finally:
        copy.close()
        source.close()
    scratch = create_engine(f"sqlite:///{target}")
    try:
        with scratch.connect() as connection:
            return {"tables": table_counts(connection), "audit": audit_state(connection),
                    "alembic_revision": alembic_revision(connection), "server_version": sqlite3.sqlite_version}
    finally:
        scratch.dispose()


# ---------------------------------------------------------------- verify

def check_checksum(backup: Backup) -> None:
    """The dump and the evidence archive are exactly what the manifest recorded."""
    files = [(backup.dump, backup.manifest["sha256"], "sha256", "its SHA-256")]
    if backup.evidence_archive:
        files.append((backup.evidence_archive, backup.manifest["evidence"]["sha256"], "evidence",
                      "the SHA-256 of its evidence archive"))
    for path, expected, field_name, what in files:
        if not path.exists():
            raise ValidationError(f"Backup {backup.name}: the file {path.name} is missing.",
                                  fields={field_name: f"{path.name} missing"})
        actual = sha256_of(path)
        if actual != expected:
            raise ValidationError(f"Backup {backup.name} is damaged: {what} does not match the manifest; "
                                  f"it will not be restored.", fields={field_name: f"expected {expected}, file has {actual}"})


def verify(config, engine: Engine, name: str) -> Verification:
    """Restore into a scratch database, compare with the manifest, record the outcome next to the backup."""
    backup = get(config, name)
    result = Verification(backup.name, ok=True)
    try:
        check_checksum(backup)
        with _scratch_database(config, engine, backup) as scratch:
            _compare(backup, scratch, result)
    except ValidationError as problem:
        result.problems.append(problem.message)
    result.ok = not result.problems
    _write_json(backup.directory / f"{backup.name}.verify.json",
                {"verified_at": clock.now().isoformat(), "ok": result.ok, "problems": result.problems,
                 "tables": result.tables, "rows": result.rows, "audit_entries": result.audit_entries})
    (log.info if result.ok else log.error)("backup %s verification %s%s", backup.name,
                                           "passed" if result.ok else "FAILED: ", "; ".join(result.problems))
    return result


def _compare(backup: Backup, scratch: Engine, result: Verification) -> None:
    from webapp.services import audit

    with scratch.connect() as connection:
        counts = table_counts(connection)
        state = audit_state(connection)
    expected = backup.manifest["tables"]
    for table in sorted(set(expected) | set(counts)):
        if expected.get(table) != counts.get(table):
            result.problems.append(f"table {table}: manifest {expected.get(table, 'absent')}, "
                                   f"restored {counts.get(table, 'absent')}")
    result.tables, result.rows = len(counts), sum(counts.values())
    if state != backup.manifest["audit"]:
        result.problems.append(f"audit chain head differs: manifest {backup.manifest['audit']}, restored {state}")
    if "audit_log" in counts:
        with Session(scratch) as session:
            report = audit.verify_chain(session)
        result.audit_entries = report.checked
        if not report.ok:
            result.problems.append(f"audit chain broken in the restored copy: {report.problem}")
    if backup.evidence_archive and "dispute_evidence" in counts:
        with scratch.connect() as connection:
            stored = set(connection.execute(text("SELECT stored_name FROM dispute_evidence")).scalars())
        missing = sorted(stored - _archived_names(backup))
        if missing:
            result.problems.append(f"{len(missing)} evidence file(s) of the restored copy are not in "
                                   f"{backup.evidence_archive.name}: {', '.join(missing[:5])}")


class _scratch_database:
    """A throw-away database holding the backup's restore; dropped on exit."""

    def __init__(self, config, engine: Engine, backup: Backup):
        self.config, self.engine, self.backup = config, engine, backup
        self.scratch: Engine | None = None
        self.cleanup = None

    def __enter__(self) -> Engine:
        if self.backup.backend == "sqlite":
            folder = tempfile.mkdtemp(prefix="kisht-verify-")
            target = Path(folder) / "scratch.db"
            _sqlite_copy(self.backup.dump, target)
            self.cleanup = lambda: shutil.rmtree(folder, ignore_errors=True)
            self.scratch = create_engine(f"sqlite:///{target}")
            return self.scratch
        if self.engine.dialect.name != "postgresql":
            raise ValidationError("A PostgreSQL backup is verified against a PostgreSQL server; DATABASE_URL is "
                                  f"{self.engine.dialect.name}.", fields={"DATABASE_URL": "not PostgreSQL"})
        name = f"kisht_verify_{uuid.uuid4().hex[:12]}"
        server = self.engine.url.set(database="postgres")
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))

        def drop():
            if self.scratch is not None:
                self.scratch.dispose()
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

        self.cleanup = drop
        target = self.engine.url.set(database=name)
        try:
            _pg_restore(self.config, self.backup.dump, target, clean=False)
        except BaseException:
            drop()
            self.cleanup = None
            raise
        self.scratch = create_engine(target)
        return self.scratch

    def __exit__(self, *exc):
        if self.scratch is not None and self.backup.backend == "sqlite":
            self.scratch.dispose()
        if self.cleanup:
            self.cleanup()
        return False


def _sqlite_copy(source_path: Path, target_path: Path) -> None:
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
    target = sqlite3.connect(str(target_path), timeout=30)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def _pg_restore(config, dump: Path, target: URL, *, clean: bool) -> None:
    pg_restore = _pg_tool(config, "pg_restore")
    conninfo, env = _libpq(target)
    args = [pg_restore, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
            f"--dbname={conninfo}"]
    if clean:
        args[1:1] = ["--clean", "--if-exists"]
    _run(args + [str(dump)], env)


# ---------------------------------------------------------------- restore

def restore(config, engine: Engine, name: str, target_url: str | None = None) -> dict:
    """Replace the target database's contents with the backup; then compare it with the manifest.

    Refuses a damaged backup (checksum) and a backend mismatch. Returns the restored table counts.
    """
    backup = get(config, name)
    check_checksum(backup)
    target = make_url(target_url) if target_url else engine.url
    if target.drivername.startswith(("postgresql", "postgres")):
        target = target.set(drivername="postgresql+psycopg")
    backend = "postgresql" if target.drivername.startswith("postgresql") else target.get_backend_name()
    if backend != backup.backend:
        raise ValidationError(f"Backup {backup.name} is a {backup.backend} backup; the target is {backend}.",
                              fields={"target": f"must be a {backup.backend} database"})
    if backend == "postgresql":
        _pg_restore(config, backup.dump, target, clean=True)
    else:
        path = _sqlite_path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        _sqlite_copy(backup.dump, path)
    restored = create_engine(target)
    try:
        result = Verification(backup.name, ok=True)
        _compare(backup, restored, result)
    finally:
        restored.dispose()
    evidence_restored = _restore_evidence(config, backup)
    if result.problems:
        raise ValidationError(f"Backup {backup.name} was restored but differs from its manifest.",
                              fields={"restore": "; ".join(result.problems)})
    log.warning("backup %s restored into %s: %d tables, %d rows", backup.name, _safe_url(target), result.tables,
                result.rows)
    return {"name": backup.name, "target": _safe_url(target), "tables": result.tables, "rows": result.rows,
            "audit_entries": result.audit_entries, "evidence_files": evidence_restored}


def _restore_evidence(config, backup: Backup) -> int:
    """Put the archived evidence files back (names are random and never reused: an existing file is kept)."""
    if not backup.evidence_archive:
        return 0
    root = _evidence_dir(config)
    restored = 0
    with tarfile.open(backup.evidence_archive) as archive:
        for member in archive.getmembers():
            if not member.isfile() or (root / member.name).exists():
                continue
            archive.extract(member, root, filter="data")  # refuses absolute paths, "..", links and devices
            restored += 1
    return restored


# ---------------------------------------------------------------- prune

def to_keep(created: dict[str, datetime], daily: int, weekly: int, monthly: int) -> set[str]:
    """Grandfather-father-son: the newest backup of each of the last `daily` IST days that have one, of the
    last `weekly` ISO weeks and of the last `monthly` months. The newest backup is always kept."""
    keep: set[str] = set()
    newest_first = sorted(created, key=lambda n: (created[n], n), reverse=True)
    if newest_first:
        keep.add(newest_first[0])
    for limit, key in ((daily, lambda d: d), (weekly, lambda d: d.isocalendar()[:2]), (monthly, lambda d: (d.year, d.month))):
        seen: set = set()
        for name in newest_first:
            period = key(clock.to_ist(created[name]).date())
            if period in seen:
                continue
            if len(seen) >= limit:
                break
            seen.add(period)
            keep.add(name)
    return keep


def prune(config, *, dry_run: bool = False) -> dict[str, list[str]]:
    """Delete backups outside the retention policy (BACKUP_KEEP_DAILY/WEEKLY/MONTHLY)."""
    backups = list_backups(config)
    keep = to_keep({b.name: b.created_at for b in backups}, config["BACKUP_KEEP_DAILY"],
                   config["BACKUP_KEEP_WEEKLY"], config["BACKUP_KEEP_MONTHLY"])
    deleted = [b.name for b in backups if b.name not in keep]
    if not dry_run:
        for backup in backups:
            if backup.name not in keep:
                for path in backup.files():
                    path.unlink(missing_ok=True)
        log.info("backups pruned: kept %d, deleted %d", len(keep), len(deleted))
    return {"kept": sorted(keep, reverse=True), "deleted": sorted(deleted, reverse=True)}


def daily(config, engine: Engine) -> dict:
    """The scheduled job's work: back up, verify what was written, prune."""
    backup = create(config, engine)
    verification = verify(config, engine, backup.name)
    pruned = prune(config)
    return {"name": backup.name, "size": backup.size, "verified": verification.ok,
            "problems": verification.problems, "deleted": pruned["deleted"]}


def ist_date(moment: datetime) -> date:
    return clock.to_ist(moment).date()
