"""The go/no-go board: every section of the pre-production checklist as a row, and the four sign-offs.

Rows the system can check are checked each time the board is read, with their evidence and its time.
Rows only people can answer, and the sign-offs, are recorded by an administrator in the name of a user of
the app (GoliveAnswer rows, append-only, each audited); the latest answer per row holds. GO only when
every row holds and all four sign-offs are given.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Callable, Mapping

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from webapp import clock
from webapp.errors import ValidationError
from webapp.models import CronRun, FeatureFlag, GoliveAnswer, User
from webapp.models.dayend import FLAGS
from webapp.permissions import Perm, require
from webapp.services import audit

BACKUP_MAX_AGE = timedelta(hours=26)
INTEGRITY_MAX_AGE = timedelta(hours=26)
SIMULATION_MAX_AGE = timedelta(days=7)


@dataclass(frozen=True)
class Row:
    key: str
    section: str
    title: str
    check: str | None = None  # a system check's name; None: people answer


# Sections of the checklist (seed/pre-production-checklist.md), in its order, then the GO criteria that
# only people can judge.
ROWS: tuple[Row, ...] = (
    Row("s01", "Blocking", "1. Status field immutability"),
    Row("s02", "Blocking", "2. Idempotency on payments — no duplicate references", "duplicates"),
    Row("s03", "Blocking", "3. Backdated payment validation"),
    Row("s04", "Blocking", "4. Cron job safety — day-end succeeded for yesterday", "dayend"),
    Row("s05", "Blocking", "5. Kill switches — every flag exists and can be toggled", "flags"),
    Row("s06", "High priority", "6. Permission enforcement"),
    Row("s07", "High priority", "7. Data immutability"),
    Row("s08", "High priority", "8. Audit logging — the audit chain verifies", "audit_chain"),
    Row("s09", "High priority", "9. Database indexes"),
    Row("s10", "High priority", "10. Error handling"),
    Row("s11", "Should verify", "11. API response format"),
    Row("s12", "Should verify", "12. Authentication & authorization"),
    Row("s13", "Should verify", "13. Rate limiting"),
    Row("s14", "Should verify", "14. Logging & monitoring"),
    Row("s15", "Should verify", "15. Database backup — a backup verified within 26 h", "backup"),
    Row("s16", "Operational", "16. Environment configuration"),
    Row("s17", "Operational", "17. Deployment procedure"),
    Row("s18", "Operational", "18. Monitoring & alerts"),
    Row("s19", "Operational", "19. Documentation"),
    Row("s20", "Operational", "20. Team readiness (team trained, on-call set up)"),
    Row("s21", "Shadow month", "21. Parallel operation (tracker beside the system, issue log kept)"),
    Row("s22", "Shadow month", "22. Convergence criteria met for consecutive days", "convergence"),
    Row("s23", "Shadow month", "23. Failure simulations — all passed within 7 days", "simulations"),
    Row("s24", "Shadow month", "24. Performance testing"),
    Row("s25", "Shadow month", "25. Data integrity — integrity check clean within 26 h", "integrity"),
    Row("go-team", "GO criteria", "Team confident"),
    Row("go-rollback", "GO criteria", "Rollback plan ready"),
)
ROW_KEYS = {row.key: row for row in ROWS}
SIGNOFFS = {"system-owner": "System Owner", "technical-lead": "Technical Lead", "operations-lead": "Operations Lead",
            "finance-compliance": "Finance/Compliance"}


@dataclass
class Evidence:
    holds: bool
    text: str
    at: datetime | None


# ---------------------------------------------------------------- system checks

def _check_dayend(session: Session) -> Evidence:
    yesterday = clock.last_business_date()
    run = session.scalar(select(CronRun).where(CronRun.job == "dayend", CronRun.business_date == yesterday,
                                               CronRun.status == "SUCCEEDED").order_by(CronRun.id.desc()).limit(1))
    if run is None:
        latest = session.scalar(select(CronRun).where(CronRun.job == "dayend").order_by(CronRun.id.desc()).limit(1))
        return Evidence(False, f"no successful day-end for {yesterday:%d %b %Y}"
                        + (f"; latest attempt: {latest.business_date} {latest.status}" if latest else ""),
                        latest.finished_at if latest else None)
    return Evidence(True, f"day-end for {yesterday:%d %b %Y} succeeded (attempt {run.attempt}, "
                          f"{run.loans_processed} loans)", run.finished_at)


def _check_flags(session: Session) -> Evidence:
    from webapp.services import flags

    rows = {f.name: f for f in session.scalars(select(FeatureFlag))}
    missing = [name for name in FLAGS if name not in rows]
    if missing:
        return Evidence(False, f"missing kill switch(es): {', '.join(missing)}", clock.now())
    pinned = [name for name in FLAGS if flags.env_override(name) is not None]
    try:  # flip each one and back inside a savepoint: the database accepts the change
        with session.begin_nested() as nested:
            for row in rows.values():
                row.enabled = not row.enabled
            session.flush()
            nested.rollback()
    except Exception as problem:  # noqa: BLE001 — any refusal means it cannot be toggled
        return Evidence(False, f"a kill switch cannot be changed: {type(problem).__name__}", clock.now())
    finally:
        for row in rows.values():
            session.expire(row)
    if pinned:
        return Evidence(False, f"pinned by the environment (the admin screen cannot change them): {', '.join(pinned)}",
                        clock.now())
    return Evidence(True, f"{len(FLAGS)} kill switches present and changeable: "
                          + ", ".join(f"{n} {'on' if rows[n].enabled else 'off'}" for n in FLAGS), clock.now())


def _check_duplicates(session: Session) -> Evidence:
    from webapp.services import integrity

    check = integrity._duplicates(session)
    return Evidence(check.ok, "no UTR, cash receipt or payment reference booked twice" if check.ok
                    else "; ".join(check.problems[:3]), clock.now())


def _check_audit(session: Session) -> Evidence:
    from webapp.services import audit as audit_service

    report = audit_service.verify_chain(session)
    return Evidence(report.ok, f"{report.checked} entries verified" if report.ok else report.problem or "broken",
                    clock.now())


def _check_backup(session: Session) -> Evidence:
    from webapp.services import backup

    status = backup.status(current_app.config)
    verified = status["last_verified"]
    if verified is None:
        return Evidence(False, "no backup has been verified", None)
    fresh = clock.now() - verified.verified_at <= BACKUP_MAX_AGE
    holds = bool(verified.verified_ok) and fresh
    return Evidence(holds, f"backup {verified.name} verified {'OK' if verified.verified_ok else 'FAILED'}"
                    + ("" if fresh else " — more than 26 h ago"), verified.verified_at)


def _check_convergence(session: Session) -> Evidence:
    from webapp.services import shadow

    needed = current_app.config["SHADOW_CONVERGED_DAYS"]
    streak, last = shadow.converged_streak(session)
    if last is None:
        return Evidence(False, "no tracker has been compared yet", None)
    return Evidence(streak >= needed, f"{streak} consecutive converged day(s) up to {last:%d %b %Y}; {needed} needed",
                    None)


def _check_simulations(session: Session) -> Evidence:
    from webapp.services import simulate

    latest = simulate.latest_results(session)
    since = clock.now() - SIMULATION_MAX_AGE
    problems = []
    for name in simulate.SCENARIOS:
        run = latest.get(name)
        if run is None:
            problems.append(f"{name} never run")
        elif not run.passed:
            problems.append(f"{name} FAILED")
        elif run.finished_at < since:
            problems.append(f"{name} last passed more than 7 days ago")
    at = min((r.finished_at for r in latest.values()), default=None)
    if problems:
        return Evidence(False, "; ".join(problems), at)
    return Evidence(True, f"all {len(simulate.SCENARIOS)} simulations passed within 7 days", at)


def _check_integrity(session: Session) -> Evidence:
    from webapp.services import integrity

    run = integrity.latest(session)
    if run is None:
        return Evidence(False, "the integrity check has never run", None)
    if clock.now() - run.finished_at > INTEGRITY_MAX_AGE:
        return Evidence(False, f"last run more than 26 h ago ({run.summary})", run.finished_at)
    return Evidence(run.passed, run.summary, run.finished_at)


CHECKS: dict[str, Callable[[Session], Evidence]] = {
    "dayend": _check_dayend, "flags": _check_flags, "duplicates": _check_duplicates, "audit_chain": _check_audit,
    "backup": _check_backup, "convergence": _check_convergence, "simulations": _check_simulations,
    "integrity": _check_integrity,
}


# ---------------------------------------------------------------- the board

@dataclass
class BoardRow:
    row: Row
    evidence: Evidence
    answer: GoliveAnswer | None

    @property
    def holds(self) -> bool:
        return self.evidence.holds


@dataclass
class Signoff:
    key: str
    title: str
    answer: GoliveAnswer | None

    @property
    def holds(self) -> bool:
        return bool(self.answer and self.answer.holds)


@dataclass
class Board:
    rows: list[BoardRow]
    signoffs: list[Signoff]
    checked_at: datetime

    @property
    def go(self) -> bool:
        return all(r.holds for r in self.rows) and all(s.holds for s in self.signoffs)

    @property
    def blocking(self) -> list[str]:
        return [r.row.title for r in self.rows if not r.holds] + [f"Sign-off: {s.title}" for s in self.signoffs if not s.holds]


def latest_answers(session: Session) -> dict[tuple[str, str], GoliveAnswer]:
    subquery = (select(GoliveAnswer.kind, GoliveAnswer.key, func.max(GoliveAnswer.id).label("id"))
                .group_by(GoliveAnswer.kind, GoliveAnswer.key).subquery())
    return {(a.kind, a.key): a for a in session.scalars(select(GoliveAnswer).join(subquery, subquery.c.id == GoliveAnswer.id))}


def board(session: Session, actor) -> Board:
    require(actor, Perm.VIEW_GOLIVE)
    return evaluate(session)


def evaluate(session: Session) -> Board:
    answers = latest_answers(session)
    rows = []
    for row in ROWS:
        answer = answers.get(("ITEM", row.key))
        if row.check:
            evidence = CHECKS[row.check](session)
        elif answer is None:
            evidence = Evidence(False, "not answered yet", None)
        else:
            who = answer.signatory.name if answer.signatory else "?"
            evidence = Evidence(answer.holds, f"{'Yes' if answer.holds else 'No'} — {who}"
                                + (f": {answer.note}" if answer.note else ""), answer.recorded_at)
        rows.append(BoardRow(row, evidence, answer))
    signoffs = [Signoff(key, title, answers.get(("SIGNOFF", key))) for key, title in SIGNOFFS.items()]
    return Board(rows, signoffs, clock.now())


def _signatory(session: Session, username: str) -> User:
    username = (username or "").strip().lower()
    if not username:
        raise ValidationError("Name the person.", fields={"signatory": "is required (their username)"})
    user = session.scalar(select(User).where(User.username == username, User.active.is_(True)))
    if user is None:
        raise ValidationError("Name the person.", fields={"signatory": f"no active user {username!r}"})
    return user


def _yes_no(raw) -> bool:
    value = str(raw or "").strip().lower()
    if value not in ("yes", "no"):
        raise ValidationError("Answer yes or no.", fields={"holds": "must be yes or no"})
    return value == "yes"


def record_answer(session: Session, actor, raw: Mapping[str, str]) -> GoliveAnswer:
    """A person's answer to a row only people can judge (e.g. team trained), in a named user's name."""
    require(actor, Perm.ADMINISTER)
    key = (raw.get("key") or "").strip()
    row = ROW_KEYS.get(key)
    if row is None:
        raise ValidationError("Choose a row of the checklist.", fields={"key": f"{key!r} is not a row"})
    if row.check:
        raise ValidationError("The system checks this row itself.", fields={"key": f"{row.title} is checked by the system"})
    holds = _yes_no(raw.get("holds"))
    note = (raw.get("note") or "").strip()
    if len(note) > 1000:
        raise ValidationError("The note is too long.", fields={"note": "is at most 1000 characters"})
    if holds and not note:
        raise ValidationError("Say what shows it.", fields={"note": "is required with a yes (the evidence, e.g. training register)"})
    signatory = _signatory(session, raw.get("signatory") or getattr(actor, "username", ""))
    answer = GoliveAnswer(kind="ITEM", key=key, holds=holds, signatory_id=signatory.id, signed_on=clock.today_ist(),
                          note=note, recorded_by_id=getattr(actor, "id", None), recorded_at=clock.now())
    session.add(answer)
    session.flush()
    audit.record(session, actor, "golive.answered", "golive_row", key,
                 after={"row": row.title, "holds": holds, "by": signatory.username, "note": note})
    return answer


def record_signoff(session: Session, actor, raw: Mapping[str, str]) -> GoliveAnswer:
    """One of the four sign-offs, by a named user on a date (or its withdrawal), audited."""
    require(actor, Perm.ADMINISTER)
    key = (raw.get("key") or "").strip()
    if key not in SIGNOFFS:
        raise ValidationError("Choose the sign-off.", fields={"key": f"must be one of {', '.join(SIGNOFFS)}"})
    holds = _yes_no(raw.get("holds") or "yes")
    signatory = _signatory(session, raw.get("signatory") or "")
    signed_on = None
    text = (raw.get("signed_on") or "").strip()
    try:
        signed_on = date.fromisoformat(text) if text else clock.today_ist()
    except ValueError:
        raise ValidationError("The date is not valid.", fields={"signed_on": f"{text!r} is not a date (YYYY-MM-DD)"}) from None
    if signed_on > clock.today_ist():
        raise ValidationError("The date is not valid.", fields={"signed_on": "cannot be in the future"})
    note = (raw.get("note") or "").strip()[:1000]
    answer = GoliveAnswer(kind="SIGNOFF", key=key, holds=holds, signatory_id=signatory.id, signed_on=signed_on,
                          note=note, recorded_by_id=getattr(actor, "id", None), recorded_at=clock.now())
    session.add(answer)
    session.flush()
    audit.record(session, actor, "golive.signed" if holds else "golive.signoff_withdrawn", "golive_signoff", key,
                 after={"title": SIGNOFFS[key], "signatory": signatory.username, "name": signatory.name,
                        "signed_on": signed_on, "note": note})
    return answer


def signatories(session: Session) -> list[User]:
    return list(session.scalars(select(User).where(User.active.is_(True)).order_by(User.username)))
