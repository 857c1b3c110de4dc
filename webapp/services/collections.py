"""Collections workflows: the contact log, promises to pay, priority scores and escalation queues.

Contacts follow RBI's recovery conduct: calls and visits only between 08:00 and 19:00 IST, and no more
than a configured number of calls per loan per day. Scores and escalations are set-based SQL run by jobs
after day-end; their factors and reasons are stored so screens can say why.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Mapping

from flask import current_app
from sqlalchemy import Date, bindparam, func, select, text
from sqlalchemy.orm import Session

from webapp import clock, money
from webapp.db import days_sql, dpd_sql
from webapp.errors import Conflict, NotFound, ValidationError
from webapp.models import Borrower, Contact, Escalation, EscalationNote, Loan, LoanScore, Promise, User
from webapp.models.collections import CHANNELS, ESCALATION_LEVELS, OUTCOMES
from webapp.permissions import Perm, in_scope, require
from webapp.services import audit, loans, replay
from webapp.services.pagination import Page, paginate

CONTACT_HOURS = (time(8, 0), time(19, 0))  # IST, RBI's recovery conduct
CLASS_RANK = {"STANDARD": 0, "SMA-0": 1, "SMA-1": 2, "SMA-2": 3, "NPA": 4}
SYSTEM = audit.Actor(None, "collections")


# ---------------------------------------------------------------- contacts and promises

def parse_contact_time(raw: str | None, now: datetime) -> datetime:
    """'YYYY-MM-DDTHH:MM' in IST (a browser's datetime-local), or now when empty."""
    value = (raw or "").strip()
    if not value:
        return now
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a date and time like 2026-11-28T10:30 (IST)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=clock.IST)
    return moment


def log_contact(session: Session, actor, loan_number: str, raw: Mapping[str, object]) -> Contact:
    """Record a call or visit; a PROMISE_TO_PAY outcome also records the promise (amount and date)."""
    require(actor, Perm.LOG_CONTACT)
    loan = loans.get_for(session, actor, loan_number, lock=True)  # serialises the daily call count
    config, now = current_app.config, clock.now()
    text_of = {k: ("" if raw.get(k) is None else str(raw.get(k)).strip()) for k in
               ("channel", "outcome", "note", "contacted_at", "promise_amount", "promise_date")}
    errors: dict[str, str] = {}
    channel, outcome = text_of["channel"].upper(), text_of["outcome"].upper()
    if channel not in CHANNELS:
        errors["channel"] = f"must be one of {', '.join(CHANNELS)}"
    if outcome not in OUTCOMES:
        errors["outcome"] = f"must be one of {', '.join(OUTCOMES)}"
    if len(text_of["note"]) > 1000:
        errors["note"] = "must be at most 1000 characters"
    contacted_at = now
    try:
        contacted_at = parse_contact_time(text_of["contacted_at"], now)
        local = clock.to_ist(contacted_at)
        if contacted_at > now + timedelta(minutes=5):
            errors["contacted_at"] = "cannot be in the future"
        elif contacted_at < now - timedelta(days=config["CONTACT_BACKDATE_DAYS"]):
            errors["contacted_at"] = f"must be within the last {config['CONTACT_BACKDATE_DAYS']} days"
        elif not CONTACT_HOURS[0] <= local.time() < CONTACT_HOURS[1]:
            errors["contacted_at"] = ("calls and visits are allowed only between 08:00 and 19:00 IST "
                                      "(RBI fair practices for recovery)")
    except ValueError as problem:
        errors["contacted_at"] = str(problem)
    promise = None
    if outcome == "PROMISE_TO_PAY":
        promise, promise_errors = _parse_promise(session, loan, text_of, config)
        errors.update(promise_errors)
    if errors:
        raise ValidationError("The contact is not valid.", fields=errors)
    if channel == "CALL":
        day = clock.to_ist(contacted_at).date()
        calls = session.scalar(select(func.count()).select_from(Contact).where(
            Contact.loan_id == loan.id, Contact.channel == "CALL",
            Contact.contacted_at >= clock.start_of_ist_day(day), Contact.contacted_at < clock.start_of_ist_day(day, 1)))
        if calls >= config["CONTACT_MAX_CALLS_PER_DAY"]:
            raise ValidationError("Too many calls.", fields={
                "channel": f"{calls} calls already logged for this loan on {day.isoformat()}; "
                           f"the limit is {config['CONTACT_MAX_CALLS_PER_DAY']} a day"}, code="call_limit")
    contact = Contact(loan_id=loan.id, made_by_id=getattr(actor, "id", None), channel=channel, outcome=outcome,
                      note=text_of["note"], contacted_at=contacted_at)
    session.add(contact)
    session.flush()
    after = {"channel": channel, "outcome": outcome, "note": text_of["note"], "contacted_at": contacted_at}
    if promise is not None:
        amount, promised_for = promise
        session.add(Promise(loan_id=loan.id, branch_id=loan.branch_id, contact_id=contact.id, amount_paise=amount,
                            made_on=clock.today_ist(), promised_for=promised_for))
        session.flush()
        after["promise"] = {"amount": money.as_str(amount), "promised_for": promised_for}
    audit.record(session, actor, "contact.logged", "loan", loan.loan_number, after=after, branch_id=loan.branch_id)
    return contact


def _parse_promise(session, loan, text_of, config) -> tuple[tuple[int, date] | None, dict]:
    errors, amount, promised_for = {}, None, None
    try:
        amount = money.to_paise(money.parse_rupees(text_of["promise_amount"]))
        position = replay.live_position(session, loan)
        payable = sum(row.unpaid for row in position.instalments) - position.advance_paise
        if amount > payable:
            errors["promise_amount"] = f"is more than the {money.format_inr(payable)} still payable"
    except money.MoneyError as problem:
        errors["promise_amount"] = str(problem) if text_of["promise_amount"] else "is required for a promise"
    today = clock.today_ist()
    try:
        promised_for = loans.parse_date(text_of["promise_date"])
        if promised_for < today:
            errors["promise_date"] = "cannot be in the past"
        elif promised_for > today + timedelta(days=config["PROMISE_MAX_DAYS"]):
            errors["promise_date"] = f"must be within {config['PROMISE_MAX_DAYS']} days"
    except ValueError as problem:
        errors["promise_date"] = str(problem) if text_of["promise_date"] else "is required for a promise"
    return ((amount, promised_for) if not errors else None), errors


def contacts_of(session: Session, loan_id: int, limit: int = 50) -> list[Contact]:
    return list(session.scalars(select(Contact).where(Contact.loan_id == loan_id)
                                .order_by(Contact.contacted_at.desc()).limit(limit)))


PROMISES_SHOWN = 100  # the manager's panel lists this many, earliest first, and says when there are more


def promises_due(session: Session, actor, days: int = 7) -> tuple[list, bool]:
    """Open promises falling due within `days`, in the actor's scope (the manager's panel): the earliest
    PROMISES_SHOWN as rows of loan_number, borrower, amount_paise, promised_for and logged_by (who took the
    promise), no more; and whether more fall due. Plain rows, because whole promises bring their loans,
    borrowers, branches and users: ten times the work."""
    today = clock.today_ist()
    due = (in_scope(select(Promise.id), actor, Promise)
           .where(Promise.status == "OPEN", Promise.promised_for <= today + timedelta(days=days))
           .order_by(Promise.promised_for, Promise.id).limit(PROMISES_SHOWN + 1).subquery())
    rows = list(session.execute(
        select(Loan.loan_number, Borrower.name.label("borrower"), Promise.amount_paise, Promise.promised_for,
               User.name.label("logged_by"))
        .select_from(Promise).join(due, due.c.id == Promise.id)
        .join(Loan, Loan.id == Promise.loan_id).join(Borrower, Borrower.id == Loan.borrower_id)
        .join(Contact, Contact.id == Promise.contact_id).outerjoin(User, User.id == Contact.made_by_id)
        .order_by(Promise.promised_for, Promise.id)))
    return rows[:PROMISES_SHOWN], len(rows) > PROMISES_SHOWN


# SQL run inside each day-end batch: promises with enough paid since they were made are KEPT; those
# whose date has passed without it are BROKEN.
SETTLE_PROMISES = """
UPDATE promises SET
    status = CASE WHEN (SELECT COALESCE(SUM(p.amount_paise), 0) FROM payments p
                        WHERE p.loan_id = promises.loan_id AND p.status = 'POSTED'
                          AND p.value_date >= promises.made_on AND p.value_date <= :d
                          AND p.value_date <= promises.promised_for) >= promises.amount_paise
                  THEN 'KEPT' ELSE 'BROKEN' END,
    settled_on = :d
WHERE status = 'OPEN' AND loan_id >= :lo AND loan_id < :hi
  AND (promised_for <= :d OR (SELECT COALESCE(SUM(p.amount_paise), 0) FROM payments p
                               WHERE p.loan_id = promises.loan_id AND p.status = 'POSTED'
                                 AND p.value_date >= promises.made_on AND p.value_date <= :d)
                              >= promises.amount_paise)
"""


# ---------------------------------------------------------------- priority scores

def _rank_sql(column: str) -> str:
    return "CASE " + " ".join(f"WHEN {column} = '{name}' THEN {rank}" for name, rank in CLASS_RANK.items()) + " END"


def score_loans(session: Session, business_date: date) -> int:
    """Recompute every open loan's score from its live position (one DELETE, one INSERT … SELECT)."""
    dialect = session.get_bind().dialect.name
    w = current_app.config["SCORE_WEIGHTS"]
    d = "CAST(:d AS DATE)" if dialect == "postgresql" else ":d"
    least = "LEAST" if dialect == "postgresql" else "MIN"
    greatest = "GREATEST" if dialect == "postgresql" else "MAX"
    silence = f"{least}({days_sql(d, 'COALESCE(lp.last_paid, l.disbursed_on)', dialect)}, 365)"
    parts = {
        "dpd": f"{w['dpd']} * {least}({dpd_sql(d, 'l.overdue_since', dialect)}, 365)",
        "overdue": f"{w['overdue']} * {least}(l.overdue_paise / 100000, 1000)",
        "silence": f"{w['silence']} * {greatest}({silence}, 0)",
        "broken": f"{w['broken_promise']} * COALESCE(bp.broken, 0)",
        "roll": f"{w['roll']} * {greatest}({_rank_sql('l.asset_class')} - COALESCE({_rank_sql('m.asset_class')}, 0), 0)",
    }
    session.execute(text("DELETE FROM loan_scores"))
    statement = text(f"""
        INSERT INTO loan_scores (loan_id, business_date, score, dpd_points, overdue_points, silence_points,
                                 broken_promise_points, roll_points, days_since_payment, broken_promises,
                                 class_month_ago)
        SELECT l.id, :d, {' + '.join(parts.values())}, {parts['dpd']}, {parts['overdue']}, {parts['silence']},
               {parts['broken']}, {parts['roll']}, {greatest}({silence}, 0), COALESCE(bp.broken, 0), m.asset_class
        FROM loans l
        LEFT JOIN (SELECT loan_id, MAX(value_date) AS last_paid FROM payments WHERE status = 'POSTED'
                   GROUP BY loan_id) lp ON lp.loan_id = l.id
        LEFT JOIN (SELECT loan_id, COUNT(*) AS broken FROM promises
                   WHERE status = 'BROKEN' AND settled_on > :since GROUP BY loan_id) bp ON bp.loan_id = l.id
        LEFT JOIN dayend_positions m ON m.business_date = :month_ago AND m.loan_id = l.id
        WHERE l.status = 'ACTIVE' AND l.disbursed_on <= :d
    """).bindparams(*(bindparam(k, type_=Date) for k in ("d", "since", "month_ago")))
    result = session.execute(statement, {"d": business_date, "since": business_date - timedelta(days=90),
                                         "month_ago": business_date - timedelta(days=30)})
    return result.rowcount


def score_of(session: Session, loan_id: int) -> LoanScore | None:
    return session.get(LoanScore, loan_id)


# ---------------------------------------------------------------- escalations

@dataclass(frozen=True)
class Rule:
    asset_class: str | None
    min_dpd: int | None
    level: str


def parse_rules(spec: str) -> list[Rule]:
    rules = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        condition, _, level = part.partition(":")
        condition, level = condition.strip().upper(), level.strip().upper()
        if level not in ESCALATION_LEVELS:
            raise ValueError(f"escalation level {level!r} is not one of {', '.join(ESCALATION_LEVELS)}")
        if condition.startswith("DPD>="):
            rules.append(Rule(None, int(condition[5:]), level))
        elif condition in CLASS_RANK:
            rules.append(Rule(condition, None, level))
        else:
            raise ValueError(f"escalation condition {condition!r} must be a class or DPD>=N")
    return rules


def _level_sql(rules: list[Rule]) -> str:
    """The highest level whose condition a day-end row meets, else NULL."""
    order = sorted(rules, key=lambda r: ESCALATION_LEVELS.index(r.level), reverse=True)
    arms = [f"WHEN {'d.asset_class = ' + repr(r.asset_class) if r.asset_class else f'd.dpd >= {r.min_dpd}'} "
            f"THEN '{r.level}'" for r in order]
    return "CASE " + " ".join(arms) + " END"


def escalate(session: Session, business_date: date) -> dict[str, int]:
    """Open one escalation per loan at the level its day-end row calls for; close those no longer called for."""
    from webapp.services import dayend  # dayend imports this module's promise rule

    level = _level_sql(parse_rules(current_app.config["ESCALATION_RULES"]))
    dayend.analyze_day(session, business_date)
    params = {"d": business_date}
    dates = [bindparam("d", type_=Date)]
    stale = f"""
        SELECT e.id FROM escalations e
        LEFT JOIN dayend_positions d ON d.business_date = :d AND d.loan_id = e.loan_id
        WHERE e.status = 'OPEN' AND (d.loan_id IS NULL OR {level} IS NULL OR {level} <> e.level)"""
    closing = session.execute(text(f"""
        SELECT e.id, e.loan_id, e.branch_id, e.level, d.asset_class FROM escalations e
        LEFT JOIN dayend_positions d ON d.business_date = :d AND d.loan_id = e.loan_id
        WHERE e.id IN ({stale})""").bindparams(*dates), params).all()
    session.execute(text(f"UPDATE escalations SET status = 'CLOSED', closed_on = :d, "
                         f"closed_reason = 'no longer meets the rule' WHERE id IN ({stale})").bindparams(*dates), params)
    opened = session.execute(text(f"""
        INSERT INTO escalations (loan_id, branch_id, level, status, reason, opened_on)
        SELECT d.loan_id, l.branch_id, {level}, 'OPEN', d.asset_class || ', DPD ' || CAST(d.dpd AS VARCHAR(8)), :d
        FROM dayend_positions d JOIN loans l ON l.id = d.loan_id
        WHERE d.business_date = :d AND {level} IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM escalations e WHERE e.loan_id = d.loan_id AND e.level = {level}
                          AND e.status = 'OPEN')
        RETURNING loan_id, branch_id, level
    """).bindparams(*dates), params).all()
    audit.record_many(session, SYSTEM, "escalation.closed", "loan", [
        (loan_id, {"level": lvl}, {"status": "CLOSED", "asset_class": cls or "CLOSED", "business_date": business_date},
         branch_id) for _, loan_id, branch_id, lvl, cls in closing])
    audit.record_many(session, SYSTEM, "escalation.opened", "loan", [
        (loan_id, None, {"level": lvl, "business_date": business_date}, branch_id)
        for loan_id, branch_id, lvl in opened])
    return {"opened": len(opened), "closed": len(closing)}


QUEUE_LEVELS = {"manager": ("MANAGER_REVIEW", "SENIOR_REVIEW"), "legal": ("LEGAL",)}


def queue(session: Session, actor, *, level: str = "", status: str = "OPEN", page: int = 1,
          per_page: int = 25) -> Page:
    require(actor, Perm.WORK_ESCALATIONS)
    levels = QUEUE_LEVELS.get(actor.role, ())
    query = select(Escalation).where(Escalation.level.in_(levels),
                                     Escalation.status == ("CLOSED" if status == "CLOSED" else "OPEN"))
    if actor.role == "manager":
        query = query.where(Escalation.branch_id == actor.branch_id)
    if level in levels:
        query = query.where(Escalation.level == level)
    query = query.order_by(Escalation.next_action_on.is_(None), Escalation.next_action_on, Escalation.opened_on,
                           Escalation.id)
    return paginate(session, query, page, per_page)


def get_escalation(session: Session, actor, escalation_id, *, lock: bool = False) -> Escalation:
    require(actor, Perm.WORK_ESCALATIONS)
    try:
        ident = int(escalation_id)
    except (TypeError, ValueError):
        raise NotFound(f"No escalation {escalation_id}.") from None
    query = select(Escalation).where(Escalation.id == ident, Escalation.level.in_(QUEUE_LEVELS.get(actor.role, ())))
    if actor.role == "manager":
        query = query.where(Escalation.branch_id == actor.branch_id)
    if lock:
        query = query.with_for_update(of=Escalation)
    escalation = session.scalars(query).unique().one_or_none()
    if escalation is None:
        raise NotFound(f"No escalation {escalation_id}.")
    return escalation


def work_escalation(session: Session, actor, escalation_id, raw: Mapping[str, object]) -> Escalation:
    """Assign, note, set the next action date, record legal notice dates. Each change is audited."""
    escalation = get_escalation(session, actor, escalation_id, lock=True)
    if escalation.status != "OPEN":
        raise Conflict(f"Escalation {escalation.id} is closed.", code="closed")
    errors, before, after = {}, {}, {}
    value = {k: ("" if raw.get(k) is None else str(raw.get(k)).strip()) for k in
             ("assignee", "note", "next_action_on", "notice_sent_on", "notice_served_on")}
    if value["assignee"]:
        user = session.scalar(select(User).where(User.username == value["assignee"].lower(), User.active.is_(True)))
        allowed = user is not None and (
            (actor.role == "legal" and user.role == "legal")
            or (actor.role == "manager" and user.role in ("collector", "manager") and user.branch_id == actor.branch_id))
        if not allowed:
            errors["assignee"] = "must be an active colleague who works this queue"
        else:
            before["assignee"] = escalation.assignee.username if escalation.assignee else None
            escalation.assignee, after["assignee"] = user, user.username
    today = clock.today_ist()
    for name, may_be_future in (("next_action_on", True), ("notice_sent_on", False), ("notice_served_on", False)):
        if not value[name]:
            continue
        if name.startswith("notice") and escalation.level != "LEGAL":
            errors[name] = "legal notice dates belong to the legal queue"
            continue
        try:
            parsed = loans.parse_date(value[name], not_after=None if may_be_future else today)
            if may_be_future and parsed < today:
                raise ValueError("cannot be in the past")
            before[name], after[name] = getattr(escalation, name), parsed
            setattr(escalation, name, parsed)
        except ValueError as problem:
            errors[name] = str(problem)
    if escalation.notice_served_on and escalation.notice_sent_on and escalation.notice_served_on < escalation.notice_sent_on:
        errors["notice_served_on"] = "cannot be before the notice was sent"
    if len(value["note"]) > 2000:
        errors["note"] = "must be at most 2000 characters"
    if errors:
        raise ValidationError("The change is not valid.", fields=errors)
    if value["note"]:
        session.add(EscalationNote(escalation=escalation, author_id=getattr(actor, "id", None), text=value["note"]))
        after["note"] = value["note"]
    if not after:
        raise ValidationError("Nothing to change.", fields={"note": "write a note or change a field"})
    session.flush()
    audit.record(session, actor, "escalation.worked", "loan", escalation.loan.loan_number, before=before,
                 after={"escalation_id": escalation.id, "level": escalation.level, **after},
                 branch_id=escalation.branch_id)
    return escalation


def worklist_sort(session: Session, requested: str) -> tuple[str, str]:
    """The order a worklist uses and what the screen should say about it."""
    from webapp.services import flags

    if requested != "priority":
        return requested, ""
    if not flags.is_enabled(session, "SCORING_ENABLED"):
        return "dpd", "Priority scoring is switched off: loans are ordered by days past due, then overdue amount."
    if session.scalar(select(LoanScore.loan_id).limit(1)) is None:  # any score at all (not a count of them all)
        return "dpd", "No priority scores yet: loans are ordered by days past due, then overdue amount."
    return "priority", ""
