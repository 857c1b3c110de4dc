"""Failure simulations (checklist 23): `kisht simulate all|<scenario>`.

Each scenario runs in a scratch database of its own (a SQLite file migrated with Alembic like production,
in a temporary directory that is removed afterwards) through the real services and jobs — payments,
approvals, day-end, reconciliation — then checks the outcome the checklist expects. The result (PASS/FAIL
with every step's detail) is recorded in the main database as a CheckRun (kind SIMULATION), which the
go/no-go board reads. Nothing touches the main database's business data, Redis locks or queues.

`overrides` change the scratch app's configuration: the tests use it to break a scenario on purpose
(e.g. BACKDATE_APPROVAL_DAYS=60 makes a 10-day-old payment post at once, and backdated-entry must FAIL).
"""
from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Callable

from sqlalchemy import func, select

from webapp import clock, money
from webapp.models import CheckRun
from webapp.services import ledger

SCENARIOS = ("double-payment", "partial-reversal", "backdated-entry", "cron-failure", "reconciliation-mismatch")
PASSWORD = "simulation-only-password"


class Expectation(Exception):
    """An expected outcome did not happen."""


@dataclass
class Outcome:
    scenario: str
    passed: bool
    steps: list[str] = field(default_factory=list)
    failure: str | None = None
    run: CheckRun | None = None

    def summary(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'} {self.scenario}" + (f": {self.failure}" if self.failure else "")


class Steps:
    def __init__(self):
        self.lines: list[str] = []

    def expect(self, condition: bool, what: str, got=None) -> None:
        if not condition:
            self.lines.append(f"✗ {what}" + (f" (got {got})" if got is not None else ""))
            raise Expectation(what + (f" — got {got}" if got is not None else ""))
        self.lines.append(f"✓ {what}")

    def note(self, text: str) -> None:
        self.lines.append(f"· {text}")

    def refused(self, action: Callable, error_types, what: str):
        from webapp.errors import DomainError

        try:
            action()
        except error_types as error:
            self.lines.append(f"✓ {what}: refused ({getattr(error, 'code', type(error).__name__)}: "
                              f"{getattr(error, 'message', error)})")
            return error
        except DomainError as error:
            self.expect(False, what, f"refused differently: {error.code}: {error.message}")
        self.expect(False, what, "it was accepted")


# ---------------------------------------------------------------- the scratch world

@contextmanager
def _scratch_app(template: Path, overrides: dict):
    from webapp import create_app

    directory = Path(tempfile.mkdtemp(prefix="kisht-sim-"))
    try:
        target = directory / "scratch.db"
        shutil.copyfile(template, target)
        app = create_app({"APP_ENV": "test", "DATABASE_URL": f"sqlite:///{target}", "REDIS_URL": "",
                          "DAYEND_PARALLEL_BATCHES": 1, "BACKUP_DIR": str(directory / "backups"),
                          "API_RATE_LIMITS_ENABLED": False} | overrides)
        try:
            with app.app_context():
                yield app
        finally:
            app.extensions["kisht.engine"].dispose()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def _migrated_template():
    from alembic import command

    from webapp import create_app
    from webapp.cli import alembic_config

    directory = Path(tempfile.mkdtemp(prefix="kisht-sim-template-"))
    try:
        path = directory / "template.db"
        app = create_app({"APP_ENV": "test", "DATABASE_URL": f"sqlite:///{path}", "REDIS_URL": ""})
        with app.app_context():
            command.upgrade(alembic_config(), "head")
        app.extensions["kisht.engine"].dispose()
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class World:
    users: dict
    loan_number: str
    emi_paise: int


def _world(session) -> World:
    """A branch, one user per role (two finance users and two managers for maker-checker) and a loan
    disbursed 100 days ago with two instalments already due and unpaid."""
    from webapp.permissions import SystemActor
    from webapp.services import loans, org

    system = SystemActor("simulation")
    org.create_branch(session, system, code="SIM01", name="Simulation branch")
    users = {}
    for username, role, branch in (("sim-col", "collector", "SIM01"), ("sim-mgr", "manager", "SIM01"),
                                   ("sim-mgr2", "manager", "SIM01"), ("sim-fin", "finance", None),
                                   ("sim-fin2", "finance", None), ("sim-adm", "admin", None)):
        users[username] = org.create_user(session, system, username=username, role=role, password=PASSWORD,
                                          branch_code=branch)
    today = clock.today_ist()
    loan = loans.create_loan(session, system, {
        "loan_number": "SIM0001", "borrower_name": "Ravi Kumar", "borrower_phone": "9876543210",
        "branch_code": "SIM01", "collector_username": "sim-col", "principal": "100000", "annual_rate": "12",
        "tenure_months": "12", "disbursed_on": (today - timedelta(days=100)).isoformat(),
        "first_due_on": (today - timedelta(days=70)).isoformat()})
    session.commit()
    return World(users, loan.loan_number, loan.emi_paise)


# ---------------------------------------------------------------- scenarios

def double_payment(session, world: World, steps: Steps) -> None:
    from webapp.errors import Conflict
    from webapp.models import Payment
    from webapp.services import payments

    fin = world.users["sim-fin"]
    raw = {"amount": money.as_str(world.emi_paise), "mode": "NEFT", "reference": "SBIN0000SIM00001",
           "value_date": clock.today_ist().isoformat()}
    booked = payments.record_payment(session, fin, world.loan_number, raw)
    session.commit()
    steps.expect(booked.posted, f"first payment {booked.payment.reference} with UTR SBIN0000SIM00001 is posted")
    error = steps.refused(lambda: payments.record_payment(session, fin, world.loan_number, raw), Conflict,
                          "the same UTR booked a second time")
    session.rollback()
    steps.expect(getattr(error, "code", None) == "duplicate_utr", "the refusal names the duplicate UTR",
                 getattr(error, "code", None))
    other_user = dict(raw, amount="1.00")
    steps.refused(lambda: payments.record_payment(session, world.users["sim-col"], world.loan_number, other_user),
                  Conflict, "the same UTR by another user with another amount")
    session.rollback()
    count = session.scalar(select(func.count()).select_from(Payment).where(Payment.utr == "SBIN0000SIM00001"))
    steps.expect(count == 1, "exactly one payment holds the UTR", count)


def partial_reversal(session, world: World, steps: Steps) -> None:
    from webapp.errors import Forbidden
    from webapp.models import Loan
    from webapp.services import approvals, payments

    fin, fin2 = world.users["sim-fin"], world.users["sim-fin2"]
    booked = payments.record_payment(session, fin, world.loan_number, {
        "amount": money.as_str(3 * world.emi_paise), "mode": "IMPS", "reference": "123456789012",
        "value_date": clock.today_ist().isoformat()})
    session.commit()
    loan = session.scalar(select(Loan).where(Loan.loan_number == world.loan_number))
    steps.expect(loan.dpd == 0, "the three EMIs due are paid: the loan is current", loan.dpd)
    approval = approvals.request_reversal(session, fin, booked.payment.reference,
                                          {"amount": money.as_str(world.emi_paise), "reason": "BANK_RETURN"})
    session.commit()
    steps.note(f"reversal of one EMI requested by {fin.username} (approval {approval.id})")
    session.refresh(loan)
    steps.expect(loan.dpd == 0, "a pending reversal changes nothing yet", loan.dpd)
    steps.refused(lambda: approvals.decide(session, fin, [approval.id], approve=True, reason="own"), Forbidden,
                  "the maker approving their own reversal")
    session.rollback()
    approvals.decide(session, fin2, [approval.id], approve=True, reason="bank returned one EMI")
    session.commit()
    payment = payments.get_for(session, fin, booked.payment.reference)
    session.refresh(payment)
    session.refresh(loan)
    steps.expect(payment.status == "POSTED", "a partly reversed payment stays posted", payment.status)
    steps.expect(payments.reversed_paise(payment) == world.emi_paise, "exactly one EMI is reversed",
                 payments.reversed_paise(payment))
    expected_dpd = ledger.dpd_on(clock.last_business_date(), loan.instalments[2].due_date)
    steps.expect([i.status for i in loan.instalments[:2]] == ["PAID", "PAID"], "the two oldest instalments stay paid",
                 [i.status for i in loan.instalments[:2]])
    steps.expect(loan.dpd == expected_dpd, f"the third instalment is overdue again (DPD {expected_dpd})", loan.dpd)
    from webapp.services import integrity

    report = integrity.run_checks(session)
    steps.expect(report.ok, "the integrity check is clean after the replay", report.summary())


def backdated_entry(session, world: World, steps: Steps) -> None:
    from flask import current_app

    from webapp.errors import Forbidden, ValidationError
    from webapp.models import Loan
    from webapp.services import approvals, payments

    col, mgr = world.users["sim-col"], world.users["sim-mgr"]
    today = clock.today_ist()
    steps.refused(lambda: payments.record_payment(session, col, world.loan_number, {
        "amount": money.as_str(world.emi_paise), "mode": "CASH", "receipt_number": "SIM/F/1",
        "value_date": (today + timedelta(days=1)).isoformat()}), ValidationError, "a payment dated tomorrow")
    session.rollback()
    loan = session.scalar(select(Loan).where(Loan.loan_number == world.loan_number))
    dpd_before = loan.dpd
    days_back = current_app.config["BACKDATE_APPROVAL_DAYS"]
    steps.note(f"BACKDATE_APPROVAL_DAYS is {days_back}")
    value_date = today - timedelta(days=10)
    booked = payments.record_payment(session, col, world.loan_number, {
        "amount": money.as_str(world.emi_paise), "mode": "CASH", "receipt_number": "SIM/B/1",
        "value_date": value_date.isoformat()})
    session.commit()
    session.refresh(loan)
    steps.expect(booked.payment.status == "PENDING_APPROVAL",
                 f"a payment dated {value_date} (10 days back) waits for a manager", booked.payment.status)
    steps.expect(loan.dpd == dpd_before, "the held payment does not touch the ledger", loan.dpd)
    steps.refused(lambda: approvals.decide(session, col, [booked.approval.id], approve=True, reason="mine"),
                  Forbidden, "the collector approving it")
    session.rollback()
    approvals.decide(session, mgr, [booked.approval.id], approve=True, reason="receipt seen")
    session.commit()
    session.refresh(loan)
    steps.expect(loan.instalments[0].status == "PAID", "after approval the oldest instalment is paid",
                 loan.instalments[0].status)
    steps.expect(loan.dpd < dpd_before, f"DPD falls from {dpd_before} after approval", loan.dpd)


def cron_failure(session, world: World, steps: Steps) -> None:
    from jobs.dayend import run_dayend
    from webapp.models import CronRun, DayendPosition
    from webapp.services import flags

    adm = world.users["sim-adm"]
    day = clock.last_business_date()
    crashed = CronRun(job="dayend", business_date=day, attempt=1, status="RUNNING", forced=False,
                      started_at=clock.now() - timedelta(hours=3), heartbeat_at=clock.now() - timedelta(hours=3),
                      worker="simulated-dead-worker:1")
    session.add(crashed)
    session.commit()
    steps.note(f"a worker died mid-run: attempt 1 for {day} is RUNNING with no heartbeat for 3 hours")
    run = run_dayend(day)
    steps.expect(run.status == "SUCCEEDED", "the next run takes over and succeeds", f"{run.status}: {run.error}")
    session.expire_all()
    session.refresh(crashed)
    steps.expect(crashed.status == "FAILED" and "abandoned" in (crashed.error or ""),
                 "the dead attempt is marked FAILED (abandoned)", f"{crashed.status}: {crashed.error}")
    first = {(r.loan_id, r.dpd, r.bucket, r.asset_class, r.overdue_paise) for r in
             session.scalars(select(DayendPosition).where(DayendPosition.business_date == day))}
    session.commit()  # end the read, so the job's own sessions can write (SQLite)
    steps.expect(len(first) >= 1, "day-end wrote the loan's position", len(first))
    again = run_dayend(day)
    steps.expect(again.status == "SKIPPED" and "already succeeded" in (again.error or ""),
                 "a second run for the same date is refused", f"{again.status}: {again.error}")
    flags.set_flag(session, adm, "CRON_ENABLED", False, "simulation: kill switch")
    session.commit()
    off = run_dayend(day, force=True)
    steps.expect(off.status == "SKIPPED" and "CRON_ENABLED" in (off.error or ""),
                 "with CRON_ENABLED off even a forced run is skipped", f"{off.status}: {off.error}")
    flags.set_flag(session, adm, "CRON_ENABLED", True, "simulation: back on")
    session.commit()
    forced = run_dayend(day, force=True)
    steps.expect(forced.status == "SUCCEEDED", "a forced re-run succeeds", f"{forced.status}: {forced.error}")
    session.expire_all()
    second = {(r.loan_id, r.dpd, r.bucket, r.asset_class, r.overdue_paise) for r in
              session.scalars(select(DayendPosition).where(DayendPosition.business_date == day))}
    steps.expect(first == second, "the forced re-run gives identical positions")


def _hdfc_csv(day: date, amount_paise: int, utr: str) -> bytes:
    header = "Date,Narration,Chq./Ref.No.,Value Dt,Withdrawal Amt.,Deposit Amt.,Closing Balance\n"
    stamp = day.strftime("%d/%m/%y")
    opening_paise = 100_000_000  # ₹10,00,000 in the account before the credit
    return (header + f"{stamp},NEFT CR-SBIN0001234-RAVI KUMAR-KISHT FINANCE-{utr},{utr},{stamp},,"
            f"{money.as_str(amount_paise)},{money.as_str(opening_paise + amount_paise)}\n").encode()


def reconciliation_mismatch(session, world: World, steps: Steps) -> None:
    from webapp.models import Payment, StatementLine
    from webapp.services import payments, reconciliation

    fin = world.users["sim-fin"]
    today = clock.today_ist()
    booked = payments.record_payment(session, fin, world.loan_number, {
        "amount": money.as_str(world.emi_paise), "mode": "NEFT", "reference": "HDFCSIM000000042", "value_date": today.isoformat()})
    session.commit()
    short = world.emi_paise - 10_000
    steps.note(f"payment {booked.payment.reference} books ₹{money.as_str(world.emi_paise)}; the bank credited ₹{money.as_str(short)}")
    reconciliation.import_statement(session, fin, bank="HDFC", data=_hdfc_csv(today, short, "HDFCSIM000000042"),
                                    filename="sim.csv")
    session.commit()
    payment = session.scalar(select(Payment).where(Payment.id == booked.payment.id))
    session.refresh(payment)
    steps.expect(payment.reconciled_at is None, "the payment is not reconciled against a credit of another amount")
    line = session.scalar(select(StatementLine).where(StatementLine.utr == "HDFCSIM000000042"))
    steps.expect(line is not None and line.status != "MATCHED", "the bank line is not matched", line.status if line else None)
    steps.note(f"the bank line is {line.status}: it waits in finance's queue")


RUNNERS = {"double-payment": double_payment, "partial-reversal": partial_reversal, "backdated-entry": backdated_entry,
           "cron-failure": cron_failure, "reconciliation-mismatch": reconciliation_mismatch}


def parse_names(name: str) -> list[str]:
    from webapp.errors import ValidationError

    name = (name or "all").strip().lower()
    if name == "all":
        return list(SCENARIOS)
    if name not in SCENARIOS:
        raise ValidationError(f"No simulation {name!r}.", fields={"scenario": f"must be all or one of {', '.join(SCENARIOS)}"})
    return [name]


def run_one(name: str, template: Path, overrides: dict | None = None) -> Outcome:
    from webapp import db

    steps = Steps()
    outcome = Outcome(name, False, steps.lines)
    with _scratch_app(template, overrides or {}):
        session = db.new_session()
        try:
            RUNNERS[name](session, _world(session), steps)
            outcome.passed = True
        except Expectation as failed:
            outcome.failure = str(failed)
        except Exception as error:  # a scenario that crashes has failed; say how
            outcome.failure = f"{type(error).__name__}: {getattr(error, 'message', error)}"
            steps.lines.append(f"✗ unexpected error: {outcome.failure}")
        finally:
            session.rollback()
            session.close()
    return outcome


def run(session, actor, name: str = "all", overrides: dict | None = None) -> list[Outcome]:
    """Run the named scenario(s), each in a fresh scratch database, and record each result (caller commits)."""
    from webapp.services import audit

    names = parse_names(name)
    who = audit.Actor.of(actor) if getattr(actor, "id", None) else audit.Actor(None, getattr(actor, "username", "system"))
    outcomes = []
    with _migrated_template() as template:
        for scenario in names:
            started = clock.now()
            outcome = run_one(scenario, template, overrides)
            outcome.run = CheckRun(kind="SIMULATION", name=scenario, passed=outcome.passed,
                                   summary=outcome.summary()[:2000],
                                   detail=json.dumps({"steps": outcome.steps, "overrides": overrides or {}},
                                                     ensure_ascii=False, default=str),
                                   started_at=started, finished_at=clock.now(), run_by=who.label)
            session.add(outcome.run)
            session.flush()
            outcomes.append(outcome)
    return outcomes


def latest_results(session) -> dict[str, CheckRun]:
    """The latest run of each scenario."""
    latest: dict[str, CheckRun] = {}
    subquery = (select(CheckRun.name, func.max(CheckRun.id).label("id")).where(CheckRun.kind == "SIMULATION")
                .group_by(CheckRun.name).subquery())
    for run in session.scalars(select(CheckRun).join(subquery, subquery.c.id == CheckRun.id)):
        latest[run.name] = run
    return latest
