"""The `kisht` command (a FlaskGroup): database, demo data, users, branches, loans, audit."""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy.exc import DBAPIError

from webapp import create_app, db
from webapp.config import INSTANCE_DIR, ROOT
from webapp.errors import DomainError
from webapp.permissions import SystemActor


def main() -> None:
    try:
        cli(prog_name="kisht")
    except DBAPIError as error:  # the database, not the command, is the problem: say which in one line
        click.echo(f"error: {database_problem(error)}", err=True)
        sys.exit(1)


def database_problem(error: DBAPIError) -> str:
    detail = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
    if "no such table" in detail or ("relation" in detail and "does not exist" in detail):
        return f"the database is not migrated ({detail}): run `kisht db upgrade`"
    return f"the database refused or could not be reached ({detail}); check DATABASE_URL and /readyz"


@click.group(cls=FlaskGroup, create_app=lambda: create_app(), add_version_option=False, load_dotenv=False)
def cli():
    """Kisht — collections, day-end and asset classification for an NBFC."""


@contextmanager
def unit_of_work():
    """One transaction per command: commit on success; on a refusal roll back, audit it, exit 1."""
    session = db.new_session()
    try:
        yield session
        session.commit()
    except DomainError as error:
        session.rollback()
        if error.attempt is not None:
            from webapp.services import audit

            audit.record_refusal(session, error.attempt)
            session.commit()
        click.echo(f"error: {error.message}", err=True)
        for field, problem in error.fields.items():
            click.echo(f"  {field}: {problem}", err=True)
        sys.exit(1)
    finally:
        session.close()


# ---------------------------------------------------------------- db

def alembic_config():
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", current_app.config["DATABASE_URL"].replace("%", "%%"))
    config.attributes["engine"] = db.engine()
    return config


@cli.group("db")
def db_group():
    """Migrations (Alembic)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision):
    """Migrate the database up to REVISION (default: head)."""
    from alembic import command

    INSTANCE_DIR.mkdir(exist_ok=True)
    command.upgrade(alembic_config(), revision)
    click.echo(f"database at {revision}")


@db_group.command("downgrade")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision):
    """Migrate the database down to REVISION ('base' removes everything)."""
    from alembic import command

    command.downgrade(alembic_config(), revision)
    click.echo(f"database at {revision}")


@db_group.command("current")
@with_appcontext
def db_current():
    from alembic import command

    command.current(alembic_config())


# ---------------------------------------------------------------- demo

@cli.group("demo")
def demo_group():
    """Demo data for development (refused in production)."""


def _demo_allowed():
    if current_app.config["APP_ENV"] == "production":
        click.echo("error: demo data is never created in production", err=True)
        sys.exit(1)


def _print_logins(passwords: dict[str, str], url: str | None = None):
    if url:
        click.echo(f"\nKisht is running at {url}\n")
    click.echo("Demo logins (development only; new passwords are made on every start):")
    for username, password in passwords.items():
        click.echo(f"  {username:<18} {password}")


@demo_group.command("seed")
@click.option("--loans", "loans_count", default=200, show_default=True)
@with_appcontext
def demo_seed(loans_count):
    """Create demo branches, users and loans (or reset the demo passwords when they exist)."""
    _demo_allowed()
    _print_logins(_seed_or_reset(loans_count))


def _seed_or_reset(loans_count: int = 200) -> dict[str, str]:
    """Seed once (then run the nightly jobs so screens show day-end, scores and queues), else reset passwords."""
    from jobs.collections import run_nightly
    from webapp.services import demo

    with unit_of_work() as session:
        fresh = not demo.has_demo_data(session)
        passwords = demo.seed(session, loans_count=loans_count) if fresh else demo.reset_passwords(session)
    if fresh:
        run_nightly()
    return passwords


@demo_group.command("up")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@click.pass_context
def demo_up(ctx, host, port):
    """Migrate, seed demo data, print the URL and logins, and serve."""
    _demo_allowed()
    ctx.invoke(db_upgrade)
    _print_logins(_seed_or_reset(), f"http://{host}:{port}/")
    from werkzeug.serving import run_simple

    run_simple(host, port, current_app._get_current_object(), threaded=True)


# ---------------------------------------------------------------- branches and users

@cli.group("branches")
def branches_group():
    """Branches."""


@branches_group.command("create")
@click.argument("code")
@click.option("--name", required=True)
@with_appcontext
def branches_create(code, name):
    from webapp.services import org

    with unit_of_work() as session:
        branch = org.create_branch(session, SystemActor("cli"), code=code, name=name)
    click.echo(f"branch {branch.code} created")


@cli.group("users")
def users_group():
    """Users."""


@users_group.command("create")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(["collector", "manager", "finance", "legal", "admin"]))
@click.option("--branch", "branch_code", default=None, help="Branch code (required for collectors and managers)")
@click.option("--name", default="")
@with_appcontext
def users_create(username, role, branch_code, name):
    """Create a user; the password is read from a prompt, or from the first line of stdin."""
    from webapp.services import org

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    with unit_of_work() as session:
        user = org.create_user(session, SystemActor("cli"), username=username, role=role, password=password,
                               name=name, branch_code=branch_code)
    click.echo(f"user {user.username} ({user.role}) created")


# ---------------------------------------------------------------- loans

@cli.group("loans")
def loans_group():
    """Loans."""


@loans_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def loans_import(file: Path):
    """Import loans from a CSV file, all or nothing."""
    from webapp.services import loans

    with unit_of_work() as session:
        try:
            result = loans.import_csv(session, SystemActor("cli"), file.read_bytes(), filename=file.name)
        except UnicodeDecodeError:
            click.echo("error: the file is not UTF-8 text", err=True)
            sys.exit(1)
    click.echo(f"imported {result.created} loan(s)")


@loans_group.command("show")
@click.argument("loan_number")
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
@click.option("--as-of", "as_of", default=None, help="Business date (YYYY-MM-DD) of the day-end result to show")
@with_appcontext
def loans_show(loan_number, as_json, as_of):
    """Print a loan: live position, schedule, payments and the official day-end result."""
    from webapp.serializers import loan_detail
    from webapp.services import dayend, loans, payments, replay

    business_date = _parse_date_option(as_of, "--as-of") if as_of else None
    with unit_of_work() as session:
        loan = loans.get_for(session, SystemActor("cli"), loan_number)
        detail = loan_detail(loan, replay.live_position(session, loan), payments.history(session, loan))
        detail["dayend"] = dayend.as_dict(dayend.position_on(session, loan.id, business_date))
    if as_json:
        click.echo(json.dumps(detail, indent=2, ensure_ascii=False))
        return
    click.echo(f"{detail['loan_number']}  {detail['borrower']['name']}  branch {detail['branch']}  "
               f"collector {detail['collector'] or '-'}")
    click.echo(f"principal ₹{detail['principal']} at {detail['annual_rate']}% for {detail['tenure_months']} months, "
               f"EMI ₹{detail['emi']}")
    click.echo(f"live: {detail['status']}  DPD {detail['dpd']}  {detail['asset_class']}  bucket {detail['bucket']}  "
               f"outstanding ₹{detail['outstanding_principal']}  overdue ₹{detail['overdue_amount']}")
    official = detail["dayend"]
    if official:
        click.echo(f"day-end {official['business_date']}: DPD {official['dpd']}  {official['asset_class']}  "
                   f"bucket {official['bucket']}  overdue ₹{official['overdue_amount']}")
    for row in detail["schedule"]:
        click.echo(f"  {row['seq']:>3}  {row['due_date']}  {row['total_due']:>12}  paid {row['paid']:>12}  {row['status']}")
    for payment in detail["payments"]:
        click.echo(f"  {payment['reference']}  {payment['value_date']}  {payment['amount']:>12}  {payment['mode']:<6} "
                   f"{payment['status']}")


def _parse_date_option(raw: str, name: str):
    from webapp.services.loans import parse_date

    try:
        return parse_date(raw)
    except ValueError as problem:
        raise click.BadParameter(str(problem), param_hint=name) from None


# ---------------------------------------------------------------- day-end, jobs and kill switches

@cli.group("dayend")
def dayend_group():
    """Day-end: DPD and asset classification for a business date."""


@dayend_group.command("run")
@click.option("--date", "date_text", default=None, help="Business date (YYYY-MM-DD); default yesterday (IST)")
@click.option("--force", is_flag=True, help="Run again for a date that already succeeded")
@with_appcontext
def dayend_run(date_text, force):
    """Run day-end inline and print its summary; exit 1 unless it succeeded."""
    from jobs.dayend import run_dayend
    from webapp import clock
    from webapp.errors import ValidationError

    business_date = _parse_date_option(date_text, "--date") if date_text else clock.last_business_date()
    bar = None

    def progress(done, total):
        nonlocal bar
        if not sys.stdout.isatty():
            return
        if bar is None:
            bar = click.progressbar(length=total, label=f"day-end {business_date}")
            bar.__enter__()
        bar.update(1)

    try:
        run = run_dayend(business_date, force=force, progress=progress)
    except ValidationError as refused:
        click.echo(f"error: {refused.message} ({'; '.join(refused.fields.values())})", err=True)
        sys.exit(1)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    _print_run(run)
    if run.status != "SUCCEEDED":
        sys.exit(1)


def _print_run(run) -> None:
    label = "day-end" if run.job == "dayend" else run.job
    click.echo(f"{label} {run.business_date} attempt {run.attempt}: {run.status}"
               + (f" in {run.duration_seconds:.1f} s" if run.duration_seconds is not None else ""))
    if run.error:
        click.echo(f"  reason: {run.error}", err=run.status != "SUCCEEDED")
    if run.status == "SUCCEEDED" and run.job != "dayend":
        click.echo(f"  summary: {run.summary}")
    elif run.status == "SUCCEEDED":
        summary = json.loads(run.summary or "{}")
        click.echo(f"  loans: {summary.get('loans', 0)}  overdue: ₹{summary.get('overdue', '0.00')}")
        click.echo("  classes: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.get("classes", {}).items())))
        click.echo("  buckets: " + ", ".join(f"{k} {v}" for k, v in summary.get("buckets", {}).items()))
        transitions = summary.get("transitions", {})
        click.echo("  transitions: " + (", ".join(f"{k} {v}" for k, v in sorted(transitions.items())) or "none"))


@cli.group("flags")
def flags_group():
    """Kill switches: CRON_ENABLED, ESCALATION_ENABLED, SCORING_ENABLED, REMINDERS_ENABLED."""


@flags_group.command("list")
@with_appcontext
def flags_list():
    from webapp.services import flags

    with unit_of_work() as session:
        states = flags.list_flags(session)
    for state in states:
        source = f"environment override (stored {'on' if state.stored else 'off'})" if state.override is not None else "stored"
        who = f" by {state.updated_by}" if state.updated_by else ""
        click.echo(f"{state.name:<20} {'on ' if state.enabled else 'off'}  {source}; changed {state.updated_at:%Y-%m-%d %H:%M} UTC{who}: {state.reason}")


@flags_group.command("set")
@click.argument("name")
@click.argument("value", type=click.Choice(["on", "off"]))
@click.option("--reason", required=True, help="Why (kept in the audit log)")
@with_appcontext
def flags_set(name, value, reason):
    from webapp.services import flags

    with unit_of_work() as session:
        state = flags.set_flag(session, SystemActor("cli"), name, value == "on", reason)
    click.echo(f"{state.name} is now {'on' if state.stored else 'off'}"
               + (f" (but the environment overrides it: {'on' if state.override else 'off'})" if state.override is not None else ""))


# ---------------------------------------------------------------- audit

@cli.group("audit")
def audit_group():
    """The audit log."""


@audit_group.command("verify")
@with_appcontext
def audit_verify():
    """Check the hash chain; exit 1 at the first altered, removed or out-of-order entry."""
    from webapp.services import audit

    with unit_of_work() as session:
        report = audit.verify_chain(session)
    if report.ok:
        click.echo(f"audit chain OK: {report.checked} entries verified")
        return
    click.echo(f"audit chain BROKEN: {report.problem} ({report.checked} entries verified before it)", err=True)
    sys.exit(1)


# ---------------------------------------------------------------- worker, scheduler and jobs (RQ)

def _needs_redis(what: str) -> None:
    if not current_app.config["REDIS_URL"]:
        click.echo(f"error: {what} needs REDIS_URL; without it (embedded mode) jobs run in-process, "
                   "e.g. `kisht jobs run dayend` from the system's cron", err=True)
        sys.exit(1)


@cli.command("worker")
@click.option("--queues", "-q", "queue_names", multiple=True,
              help="Queues to work, in priority order (repeat or comma-separate); default all")
@click.option("--burst", is_flag=True, help="Exit once the queues are empty")
@with_appcontext
def worker(queue_names, burst):
    """Run an RQ worker. SIGTERM lets the current job finish, then stops (warm shutdown)."""
    from rq import Worker

    from jobs import queue, runtime

    _needs_redis("the worker")
    names = [name.strip() for part in queue_names for name in part.split(",") if name.strip()] or list(queue.QUEUES)
    unknown = [name for name in names if name not in queue.QUEUES]
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)} (the queues are {', '.join(queue.QUEUES)})",
                                 param_hint="--queues")
    app = current_app._get_current_object()
    runtime.set_app(app)  # created once for this process; each job's forked horse inherits it
    db.engine().dispose()  # and opens its own database connections
    connection = queue.connection()
    rq_worker = Worker([queue.get_queue(name, connection) for name in names], connection=connection)
    rq_worker.work(burst=burst, logging_level=app.config["LOG_LEVEL"], with_scheduler=False)


@cli.command("scheduler")
@click.option("--interval", default=30, show_default=True, help="Seconds between checks for due jobs")
@click.option("--burst", is_flag=True, help="Reconcile, queue what is due now, and exit")
@with_appcontext
def scheduler(interval, burst):
    """Run rq-scheduler with the declared schedule (jobs/schedule.py), reconciled with Redis first."""
    from jobs import queue, runtime, schedule

    _needs_redis("the scheduler")
    runtime.configure_logging(current_app)
    rq_scheduler = schedule.Scheduler(queue_name="default", connection=queue.connection(), interval=interval)
    result = schedule.reconcile(rq_scheduler)
    click.echo(f"schedule reconciled: created {len(result.created)}, replaced {len(result.replaced)}, "
               f"cancelled {len(result.cancelled)}, kept {len(result.kept)}")
    _print_schedule()
    rq_scheduler.run(burst=burst)


def _print_schedule() -> None:
    from jobs import schedule
    from webapp import clock

    for spec in schedule.SCHEDULE:
        upcoming = clock.to_ist(schedule.next_run(spec.cron_utc))
        click.echo(f"  {spec.id}: '{spec.cron_ist}' IST ('{spec.cron_utc}' UTC) -> {spec.func} on queue {spec.queue}; "
                   f"next {upcoming:%Y-%m-%d %H:%M} IST")


@cli.group("jobs")
def jobs_group():
    """Jobs: run one inline, see the schedule."""


@jobs_group.command("list")
def jobs_list():
    """The declared schedule and the jobs `kisht jobs run` knows."""
    from jobs import tasks

    click.echo("schedule (IST):")
    _print_schedule()
    click.echo("run inline with `kisht jobs run NAME`: " + ", ".join(tasks.NAMED))


@jobs_group.command("run")
@click.argument("name")
@click.option("--date", "date_text", default=None,
              help="Business date (YYYY-MM-DD); without it day-end catches up every missed date")
@with_appcontext
def jobs_run(name, date_text):
    """Run a job now, in this process; exit 1 unless every run succeeded."""
    from jobs import runtime, tasks
    from webapp.errors import ValidationError

    if name not in tasks.NAMED:
        raise click.BadParameter(f"{name!r} is not a job; the jobs are {', '.join(tasks.NAMED)}", param_hint="NAME")
    business_date = _parse_date_option(date_text, "--date") if date_text else None
    runtime.configure_logging(current_app)
    try:
        runs = tasks.NAMED[name](business_date)
    except ValidationError as refused:
        click.echo(f"error: {refused.message} ({'; '.join(refused.fields.values())})", err=True)
        sys.exit(1)
    if not runs:
        click.echo(f"{name}: nothing to run, every business date up to yesterday (IST) has succeeded")
    for run in runs:
        _print_run(run)
    if any(run.status != "SUCCEEDED" for run in runs):
        sys.exit(1)


# ---------------------------------------------------------------- reminders

@cli.group("reminders")
def reminders_group():
    """Payment reminders: run the job for a date, send a failed one again."""


@reminders_group.command("run")
@click.option("--date", "date_text", default=None, help="Business date (YYYY-MM-DD); default today (IST)")
@with_appcontext
def reminders_run(date_text):
    """Select the date's reminders and deliver what is due now; exit 1 unless the run succeeded."""
    from jobs.reminders import run_reminders
    from webapp.errors import ValidationError

    business_date = _parse_date_option(date_text, "--date") if date_text else None
    try:
        run = run_reminders(business_date)
    except ValidationError as refused:
        click.echo(f"error: {refused.message} ({'; '.join(refused.fields.values())})", err=True)
        sys.exit(1)
    click.echo(f"reminders {run.business_date} attempt {run.attempt}: {run.status}"
               + (f" in {run.duration_seconds:.1f} s" if run.duration_seconds is not None else ""))
    if run.error:
        click.echo(f"  reason: {run.error}", err=run.status != "SUCCEEDED")
    counts = json.loads(run.summary or "{}")
    if counts:
        click.echo("  " + ", ".join(f"{name} {counts[name]}" for name in
                                    ("selected", "sent", "deferred", "retrying", "failed", "cancelled") if name in counts))
    if run.status != "SUCCEEDED":
        sys.exit(1)


@reminders_group.command("resend")
@click.argument("reminder_id")
@with_appcontext
def reminders_resend(reminder_id):
    """Send a FAILED reminder again (attempts start over; the borrower's contact details are read afresh)."""
    from webapp.services import reminders

    with unit_of_work() as session:
        reminder = reminders.resend(session, SystemActor("cli"), reminder_id)
    click.echo(f"reminder {reminder.id} is PENDING again; the next reminders run delivers it "
               f"(between 08:00 and 19:00 IST)")


# ---------------------------------------------------------------- backups (webapp/services/backup.py)

@contextmanager
def _refusals():
    """A refused backup operation: the reason (and each field) on stderr, exit status 1."""
    try:
        yield
    except DomainError as error:
        click.echo(f"error: {error.message}", err=True)
        for field, problem in error.fields.items():
            click.echo(f"  {field}: {problem}", err=True)
        sys.exit(1)


@cli.group("backup")
def backup_group():
    """Backups: create, verify, restore, prune (BACKUP_DIR)."""


@backup_group.command("create")
@click.option("--verify/--no-verify", "then_verify", default=False, help="Verify the new backup at once")
@with_appcontext
def backup_create(then_verify):
    """Back up the database (pg_dump custom format, or SQLite's online backup) with a checksum and manifest."""
    from webapp.services import backup

    with _refusals():
        made = backup.create(current_app.config, db.engine())
    click.echo(f"backup {made.name} created: {made.dump} ({made.size} bytes, sha256 {made.manifest['sha256']}, "
               f"{len(made.manifest['tables'])} tables, audit chain {made.manifest['audit']['entries']} entries)")
    if then_verify:
        _verify_and_report(made.name)


def _verify_and_report(name: str) -> None:
    from webapp.services import backup

    with _refusals():
        result = backup.verify(current_app.config, db.engine(), name)
    if result.ok:
        click.echo(f"backup {result.name} verified: restored into a scratch database, {result.tables} tables and "
                   f"{result.rows} rows match the manifest, audit chain OK ({result.audit_entries} entries)")
        return
    click.echo(f"backup {result.name} FAILED verification:", err=True)
    for problem in result.problems:
        click.echo(f"  {problem}", err=True)
    sys.exit(1)


@backup_group.command("verify")
@click.argument("name", required=False)
@with_appcontext
def backup_verify(name):
    """Restore NAME (default: the newest) into a scratch database and compare it with its manifest."""
    from webapp.services import backup

    if not name:
        latest = backup.status(current_app.config)["latest"]
        if latest is None:
            click.echo(f"error: no backups in {current_app.config['BACKUP_DIR']}", err=True)
            sys.exit(1)
        name = latest.name
    _verify_and_report(name)


@backup_group.command("list")
@with_appcontext
def backup_list():
    """Backups, newest first, with their last verification."""
    from webapp import clock
    from webapp.services import backup

    backups = backup.list_backups(current_app.config)
    if not backups:
        click.echo(f"no backups in {current_app.config['BACKUP_DIR']}")
    for item in backups:
        checked = ("never verified" if item.verification is None else
                   f"verified {'OK' if item.verified_ok else 'FAILED'} {clock.to_ist(item.verified_at):%Y-%m-%d %H:%M} IST")
        click.echo(f"{item.name}  {item.backend:<10} {item.size:>12} bytes  {checked}")


@backup_group.command("restore")
@click.argument("name")
@click.option("--target-url", default=None, help="Restore into this database instead of DATABASE_URL")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation")
@with_appcontext
def backup_restore(name, target_url, yes):
    """Replace a database's contents with backup NAME (refused when its checksum fails)."""
    from sqlalchemy.engine import make_url

    from webapp.services import backup

    with _refusals():
        item = backup.get(current_app.config, name)
        backup.check_checksum(item)
        target = make_url(target_url).render_as_string(hide_password=True) if target_url else \
            db.engine().url.render_as_string(hide_password=True)
        if not yes:
            if not sys.stdin.isatty():
                click.echo("error: restore replaces every row of the target database; confirm with --yes "
                           "(no terminal to ask on)", err=True)
                sys.exit(1)
            click.confirm(f"Replace every row of {target} with backup {item.name} taken "
                          f"{item.manifest['created_at']}?", abort=True)
        db.engine().dispose()  # our own pooled connections must not hold locks during the restore
        outcome = backup.restore(current_app.config, db.engine(), item.name, target_url)
    click.echo(f"backup {outcome['name']} restored into {outcome['target']}: {outcome['tables']} tables, "
               f"{outcome['rows']} rows, audit chain OK ({outcome['audit_entries']} entries), "
               f"{outcome['evidence_files']} evidence file(s) put back into EVIDENCE_DIR")


@backup_group.command("prune")
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted")
@with_appcontext
def backup_prune(dry_run):
    """Keep BACKUP_KEEP_DAILY daily, BACKUP_KEEP_WEEKLY weekly, BACKUP_KEEP_MONTHLY monthly backups."""
    from webapp.services import backup

    result = backup.prune(current_app.config, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"kept {len(result['kept'])}, {verb} {len(result['deleted'])}")
    for name in result["deleted"]:
        click.echo(f"  {verb} {name}")


# ---------------------------------------------------------------- docs

@cli.group("docs")
def docs_group():
    """Generated documentation."""


@docs_group.command("schema")
@click.option("--check", is_flag=True, help="Exit 1 when docs/schema.md is out of date, without writing it")
def docs_schema(check):
    """Write docs/schema.md from the models (and docs/schema-meanings.tsv)."""
    from webapp.ops import schema_doc

    if check:
        current = schema_doc.OUTPUT.read_text(encoding="utf-8") if schema_doc.OUTPUT.exists() else ""
        if current != schema_doc.render():
            click.echo("docs/schema.md is out of date: run `kisht docs schema`", err=True)
            sys.exit(1)
        click.echo("docs/schema.md is up to date")
        return
    changed = schema_doc.write()
    click.echo(f"docs/schema.md {'written' if changed else 'already up to date'}")


# ---------------------------------------------------------------- shadow month and go-live

@cli.group("shadow")
def shadow_group():
    """Shadow month: the Excel tracker beside the system."""


@shadow_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--date", "date_text", required=True, help="Business date of the tracker (YYYY-MM-DD)")
@click.option("--layout", default="", help="Tracker layout (TRACKER_LAYOUTS); default the first")
@click.option("--as", "username", default=None, help="Import as this user (default: the operator, as admin)")
@with_appcontext
def shadow_import(file: Path, date_text, layout, username):
    """Import FILE as the tracker for --date (a new version when the date has one) and compare it."""
    from webapp.services import shadow

    with unit_of_work() as session:
        actor = _user_or_operator(session, username)
        result = shadow.import_tracker(session, actor, data=file.read_bytes(), filename=file.name,
                                       business_date=date_text, layout=layout)
        c = result.comparison
        click.echo(f"tracker {result.shadow_import.business_date} v{result.shadow_import.version}: "
                   f"{result.shadow_import.row_count} loans"
                   + (f" (replaces v{result.replaced_version})" if result.replaced_version else ""))
        for label, ok in (("outstanding < 0.1 %", c.outstanding_ok), ("collections < 0.1 %", c.collections_ok),
                          ("bucket counts equal", c.buckets_ok), ("DPD difference < 1 day", c.dpd_ok),
                          ("day-end ran for the date", c.dayend_ran)):
            click.echo(f"  {'PASS' if ok else 'FAIL'}  {label}")
        click.echo(f"  {'CONVERGED' if c.converged else 'NOT CONVERGED'}")


def _user_or_operator(session, username):
    if not username:
        return SystemActor("cli")
    from sqlalchemy import select

    from webapp.models import User

    user = session.scalar(select(User).where(User.username == username.strip().lower(), User.active.is_(True)))
    if user is None:
        click.echo(f"error: no active user {username!r}", err=True)
        sys.exit(1)
    return user


@cli.group("integrity")
def integrity_group():
    """Data integrity (checklist 25)."""


@integrity_group.command("check")
@with_appcontext
def integrity_check():
    """Orphans, duplicate references, allocations, paid ≤ due, positions vs a replay, audit chain; exit 1 on any failure."""
    from webapp.services import integrity

    with unit_of_work() as session:
        report = integrity.check(session, SystemActor("cli"))
    for item in report.checks:
        click.echo(f"{'PASS' if item.ok else 'FAIL'}  {item.label}" + (f" ({item.count})" if item.count else ""))
        for problem in item.problems:
            click.echo(f"      {problem}")
    click.echo(f"integrity {'OK' if report.ok else 'FAILED'}: {report.summary()}")
    if not report.ok:
        sys.exit(1)


@cli.command("simulate")
@click.argument("scenario", default="all")
@with_appcontext
def simulate_command(scenario):
    """Failure simulations in scratch databases: all, double-payment, partial-reversal, backdated-entry,
    cron-failure, reconciliation-mismatch. Prints PASS/FAIL with detail; exit 1 when any fails."""
    from webapp.services import simulate

    with unit_of_work() as session:
        outcomes = simulate.run(session, SystemActor("cli"), scenario)
    for outcome in outcomes:
        click.echo(outcome.summary())
        for step in outcome.steps:
            click.echo(f"    {step}")
    passed = sum(o.passed for o in outcomes)
    click.echo(f"{passed}/{len(outcomes)} simulations passed")
    if passed != len(outcomes):
        sys.exit(1)
