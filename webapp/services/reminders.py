"""Payment reminders (DESIGN.md §5, docs/architecture.md "Reminders"): selection, the delivery window, delivery.

Selection, for a business date D (IST), is one set-based INSERT … SELECT … ON CONFLICT DO NOTHING into the
outbox (`reminders`), never a loop over loans. The rules, from configuration:

* BEFORE_n: an instalment due on D + n (REMINDER_DAYS_BEFORE, default 3);
* DUE: an instalment due on D (REMINDER_ON_DUE_DAY);
* OVERDUE_n: an instalment due on D − n (REMINDER_OVERDUE_DAYS, default 1, 7, 15, 30),

each only while the instalment is unpaid: its `cumulative_due_paise` exceeds the money received on the loan
(posted payments net of approved reversals, as day-end counts it). This, not the stored instalment status,
decides, because the status of an instalment changes only when day-end sees it fall due, so it cannot tell
an advance that already covers a future instalment, and it lags a payment made since the last day-end.
Of a loan's candidates for D only one is kept (overdue before due before upcoming, oldest first), and none
when the loan already has a reminder for D: a borrower gets at most one reminder a day. A loan with an open
dispute (OPEN or UNDER_REVIEW) gets none: the borrower says the money is paid or not owed, and is not chased
for it until the dispute is resolved; its collectors still see the loan, flagged, on their lists.

The dedupe key (loan, instalment, rule, date) makes a re-run add nothing. Delivery happens only between
08:00 and 19:00 IST, whatever the server's TZ; outside it, rows are DEFERRED to the next 08:00 IST.
A row is claimed (attempt counted, lease set) in its own transaction before it is sent, so two workers
never send it twice; a failed send is retried with exponential backoff until REMINDER_MAX_ATTEMPTS,
then the row is FAILED with the last error. A row whose instalment was paid, or whose loan came under
dispute, before it went out is CANCELLED, not sent.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from flask import current_app
from sqlalchemy import Date, bindparam, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webapp import clock
from webapp.db import UTCDateTime
from webapp.errors import NotFound, ValidationError
from webapp.models import Borrower, CronRun, Instalment, Loan, Reminder
from webapp.models.disputes import OPEN_STATUSES as OPEN_DISPUTE_STATUSES
from webapp.models.reminders import OPEN_STATUSES, REMINDER_STATUSES
from webapp.permissions import Perm, require
from webapp.services import audit, dayend
from webapp.services.pagination import Page
from webapp.services.reminder_templates import LANGUAGES, render
from webapp.services.reminder_transports import TRANSPORTS, DeliveryError, Outgoing

JOB = "reminders"
FLAG = "REMINDERS_ENABLED"
SYSTEM = audit.Actor(None, "reminders")

# RBI's conduct rules for recovery: borrowers are contacted between 08:00 and 19:00 only. Not configuration.
WINDOW_START = time(8, 0)
WINDOW_END = time(19, 0)
LEASE = timedelta(minutes=15)  # a claimed row whose sender died is tried again after this
MAX_BACKOFF = timedelta(hours=24)
CHANNEL_OF = {"log": "LOG", "smtp": "EMAIL"}  # the webhook's channel is REMINDER_WEBHOOK_CHANNEL


# ---------------------------------------------------------------- the delivery window (IST)

def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("an aware datetime is required (a naive one would be read in the server's TZ)")
    return moment


def in_window(moment: datetime) -> bool:
    """08:00 ≤ IST wall time < 19:00."""
    local = _aware(moment).astimezone(clock.IST).time()
    return WINDOW_START <= local < WINDOW_END


def next_window_start(moment: datetime) -> datetime:
    """The next 08:00 IST at or after `moment` (aware, UTC); `moment` itself when it is exactly 08:00."""
    local = _aware(moment).astimezone(clock.IST)
    day = local.date() if local.time() <= WINDOW_START else local.date() + timedelta(days=1)
    return datetime.combine(day, WINDOW_START, tzinfo=clock.IST).astimezone(timezone.utc)


def backoff(attempts: int, base_seconds: int) -> timedelta:
    """Wait after the n-th failed attempt: base, 2·base, 4·base, … capped at a day."""
    return min(timedelta(seconds=base_seconds * 2 ** max(0, attempts - 1)), MAX_BACKOFF)


# ---------------------------------------------------------------- rules and selection

@dataclass(frozen=True)
class Rule:
    code: str  # BEFORE_3, DUE, OVERDUE_7
    due_date: date  # the due date an instalment must have for the rule to apply on the business date
    priority: int  # lower wins when one loan has several candidates on one date


def rules_for(config, business_date: date) -> list[Rule]:
    rules = [Rule(f"OVERDUE_{n}", business_date - timedelta(days=n), 1) for n in config["REMINDER_OVERDUE_DAYS"]]
    if config["REMINDER_ON_DUE_DAY"]:
        rules.append(Rule("DUE", business_date, 2))
    rules += [Rule(f"BEFORE_{n}", business_date + timedelta(days=n), 3) for n in config["REMINDER_DAYS_BEFORE"]]
    return rules


def check_date(business_date: date, config) -> None:
    today = clock.today_ist()
    earliest = today - timedelta(days=config["REMINDER_CATCHUP_DAYS"])
    if business_date > today:
        raise ValidationError("Reminders cannot run for a future date.",
                              fields={"date": f"must be on or before {today.isoformat()} (today, IST)"})
    if business_date < earliest:
        raise ValidationError("That date is too far back for reminders.",
                              fields={"date": f"must be on or after {earliest.isoformat()} (REMINDER_CATCHUP_DAYS)"})


# Money received on a loan: posted payments net of approved reversals (day-end's `received`), and what fell
# due by D, for the loans in `loans` (an SQL list or subquery).
RECEIVED_CTES = """
reversed AS (
    SELECT r.payment_id, SUM(r.amount_paise) AS amount
    FROM reversals r JOIN approvals a ON a.reversal_id = r.id AND a.status = 'APPROVED'
    JOIN payments p ON p.id = r.payment_id
    WHERE p.loan_id IN ({loans})
    GROUP BY r.payment_id
), received AS (
    SELECT p.loan_id, SUM(p.amount_paise - COALESCE(rv.amount, 0)) AS amount
    FROM payments p LEFT JOIN reversed rv ON rv.payment_id = p.id
    WHERE p.status = 'POSTED' AND p.loan_id IN ({loans})
    GROUP BY p.loan_id
), due_by_d AS (
    SELECT i.loan_id, MAX(i.cumulative_due_paise) AS amount
    FROM instalments i
    WHERE i.due_date <= :d AND i.loan_id IN ({loans})
    GROUP BY i.loan_id
)"""

# Whether the loan `{loan}` has an open dispute (see the module docstring): selection skips such loans, and
# delivery cancels what was selected before the dispute was raised.
OPEN_DISPUTE_SQL = ("EXISTS (SELECT 1 FROM disputes dp WHERE dp.loan_id = {loan} AND dp.status IN ("
                    + ", ".join(f"'{status}'" for status in OPEN_DISPUTE_STATUSES) + "))")

# What the message names as due: everything that falls due by the later of D and the instalment's due date
# (arrears included), less the money received. Positive exactly when the instalment itself is unpaid.
AMOUNT_SQL = ("(CASE WHEN COALESCE(dd.amount, 0) > c.cumulative_due_paise THEN dd.amount "
              "ELSE c.cumulative_due_paise END) - COALESCE(rc.amount, 0)")


def _selection_sql(dialect: str, rules: list[Rule], transport: str) -> str:
    as_date = (lambda p: f"CAST({p} AS DATE)") if dialect == "postgresql" else (lambda p: p)
    rule_rows = " UNION ALL ".join(
        f"SELECT '{rule.code}' AS rule, {as_date(f':due_{n}')} AS due_on, {rule.priority} AS priority"
        for n, rule in enumerate(rules))
    recipient = "b.email" if transport == "smtp" else "'+91' || b.phone"
    languages = ", ".join(f"'{code}'" for code in LANGUAGES)
    return f"""
INSERT INTO reminders (loan_id, instalment_id, rule, business_date, amount_paise, transport, channel, language,
                       recipient, status, attempts, next_attempt_at, created_at)
WITH rules AS ({rule_rows}
), candidates AS (
    SELECT i.loan_id, i.id AS instalment_id, i.due_date, i.cumulative_due_paise, r.rule, r.priority
    FROM rules r
    JOIN instalments i ON i.due_date = r.due_on
    JOIN loans l ON l.id = i.loan_id
    WHERE l.status = 'ACTIVE' AND l.disbursed_on <= :d
), {RECEIVED_CTES.format(loans='SELECT loan_id FROM candidates')}, unpaid AS (
    SELECT c.loan_id, c.instalment_id, c.rule, {AMOUNT_SQL} AS amount_due,
           ROW_NUMBER() OVER (PARTITION BY c.loan_id ORDER BY c.priority, c.due_date, c.instalment_id) AS pick
    FROM candidates c
    LEFT JOIN received rc ON rc.loan_id = c.loan_id
    LEFT JOIN due_by_d dd ON dd.loan_id = c.loan_id
    WHERE c.cumulative_due_paise > COALESCE(rc.amount, 0)
)
SELECT u.loan_id, u.instalment_id, u.rule, {as_date(':d')}, u.amount_due, :transport, :channel,
       CASE WHEN b.preferred_language IN ({languages}) THEN b.preferred_language ELSE 'en' END,
       {recipient}, 'PENDING', 0, :now, :now
FROM unpaid u
JOIN loans l ON l.id = u.loan_id
JOIN borrowers b ON b.id = l.borrower_id
WHERE u.pick = 1
  AND NOT EXISTS (SELECT 1 FROM reminders x WHERE x.business_date = :d AND x.loan_id = u.loan_id)
  AND NOT {OPEN_DISPUTE_SQL.format(loan='u.loan_id')}
ON CONFLICT (loan_id, instalment_id, rule, business_date) DO NOTHING
"""


def channel_for(config) -> str:
    transport = config["REMINDER_TRANSPORT"]
    return CHANNEL_OF.get(transport) or config["REMINDER_WEBHOOK_CHANNEL"]


def select_for_date(session: Session, business_date: date, now: datetime | None = None) -> int:
    """Put the reminders due on `business_date` in the outbox; returns how many rows were added."""
    config = current_app.config
    rules = rules_for(config, business_date)
    if not rules:
        return 0
    transport = config["REMINDER_TRANSPORT"]
    sql = _selection_sql(session.get_bind().dialect.name, rules, transport)
    dates = {f"due_{n}": rule.due_date for n, rule in enumerate(rules)} | {"d": business_date}
    statement = text(sql).bindparams(*[bindparam(name, type_=Date) for name in dates],
                                     bindparam("now", type_=UTCDateTime()))
    result = session.execute(statement, {**dates, "now": now or clock.now(), "transport": transport,
                                         "channel": channel_for(config)})
    return max(result.rowcount or 0, 0)


def render_new(session: Session, business_date: date, chunk: int = 500) -> int:
    """Write the subject and body of rows of `business_date` not yet rendered; returns how many."""
    config = current_app.config
    done = 0
    while True:
        rows = session.execute(
            select(Reminder.id, Reminder.rule, Reminder.language, Reminder.amount_paise, Borrower.name,
                   Loan.loan_number, Instalment.due_date)
            .join(Loan, Loan.id == Reminder.loan_id).join(Borrower, Borrower.id == Loan.borrower_id)
            .join(Instalment, Instalment.id == Reminder.instalment_id)
            .where(Reminder.business_date == business_date, Reminder.body.is_(None),
                   Reminder.status.in_(OPEN_STATUSES))
            .order_by(Reminder.id).limit(chunk)).all()
        if not rows:
            return done
        changes = []
        for row in rows:
            text_ = _render(config, rule=row.rule, language=row.language, name=row.name, loan_number=row.loan_number,
                            due_date=row.due_date, amount_paise=row.amount_paise)
            changes.append({"id": row.id, "subject": text_.subject, "body": text_.body, "language": text_.language})
        session.execute(update(Reminder), changes)
        done += len(changes)


def _render(config, **fields):
    return render(lender=config["REMINDER_LENDER_NAME"], channels=config["REMINDER_PAYMENT_CHANNELS"], **fields)


def amount_due_now(session: Session, reminder: Reminder) -> int:
    """The amount the reminder should name at this moment; 0 when its instalment has been paid meanwhile."""
    cumulative = session.scalar(select(Instalment.cumulative_due_paise).where(Instalment.id == reminder.instalment_id))
    due_by_d, received = session.execute(text(f"""
        WITH {RECEIVED_CTES.format(loans=':loan_id')}
        SELECT COALESCE((SELECT amount FROM due_by_d), 0), COALESCE((SELECT amount FROM received), 0)
        """).bindparams(bindparam("d", type_=Date)), {"loan_id": reminder.loan_id, "d": reminder.business_date}).one()
    if cumulative <= received:
        return 0
    return max(cumulative, due_by_d) - received


# ---------------------------------------------------------------- delivery

def defer_outside_window(session: Session, now: datetime) -> int:
    """Outside 08:00–19:00 IST: every open row whose time has come waits for the next 08:00 IST."""
    result = session.execute(
        update(Reminder).where(Reminder.status.in_(OPEN_STATUSES), Reminder.next_attempt_at <= now)
        .values(status="DEFERRED", next_attempt_at=next_window_start(now)))
    return result.rowcount or 0


def fail_exhausted(session: Session, now: datetime, max_attempts: int) -> int:
    """Rows whose last allowed attempt never reported back (the sender died after claiming them)."""
    result = session.execute(
        update(Reminder).where(Reminder.status.in_(OPEN_STATUSES), Reminder.next_attempt_at <= now,
                               Reminder.attempts >= max_attempts)
        .values(status="FAILED", last_error=func.coalesce(Reminder.last_error, "") +
                f" (gave up: {max_attempts} attempts, the last one did not report back)"))
    return result.rowcount or 0


def due_ids(session: Session, now: datetime, max_attempts: int, limit: int) -> list[int]:
    return list(session.scalars(
        select(Reminder.id).where(Reminder.status.in_(OPEN_STATUSES), Reminder.next_attempt_at <= now,
                                  Reminder.attempts < max_attempts)
        .order_by(Reminder.next_attempt_at, Reminder.id).limit(limit)))


def claim(session: Session, reminder_id: int, now: datetime, max_attempts: int) -> bool:
    """Count an attempt and lease the row, if it is still waiting; the caller commits before sending."""
    result = session.execute(
        update(Reminder).where(Reminder.id == reminder_id, Reminder.status.in_(OPEN_STATUSES),
                               Reminder.next_attempt_at <= now, Reminder.attempts < max_attempts)
        .values(attempts=Reminder.attempts + 1, next_attempt_at=now + LEASE, status="PENDING"))
    return result.rowcount == 1


@dataclass
class Outcome:
    status: str  # SENT, RETRY, FAILED, CANCELLED
    error: str | None = None


def deliver(session: Session, reminder_id: int) -> Outcome:
    """Send one claimed row and record what happened; the caller commits.

    Reads first, sends, then writes, so no write lock is held while the network call runs.
    """
    config = current_app.config
    reminder = session.get(Reminder, reminder_id)
    loan_number, name = session.execute(
        select(Loan.loan_number, Borrower.name).join(Borrower, Borrower.id == Loan.borrower_id)
        .where(Loan.id == reminder.loan_id)).one()
    amount = amount_due_now(session, reminder)
    if amount == 0:
        reminder.status, reminder.last_error = "CANCELLED", "the instalment was paid before the reminder went out"
        session.flush()
        return Outcome("CANCELLED")
    if session.scalar(text(f"SELECT {OPEN_DISPUTE_SQL.format(loan=':loan_id')}"), {"loan_id": reminder.loan_id}):
        reminder.status, reminder.last_error = "CANCELLED", "the loan came under dispute before the reminder went out"
        session.flush()
        return Outcome("CANCELLED")
    if amount != reminder.amount_paise or reminder.body is None:
        due_date = session.scalar(select(Instalment.due_date).where(Instalment.id == reminder.instalment_id))
        text_ = _render(config, rule=reminder.rule, language=reminder.language, name=name, loan_number=loan_number,
                        due_date=due_date, amount_paise=amount)
        reminder.amount_paise, reminder.subject, reminder.body = amount, text_.subject, text_.body
    message = Outgoing(reminder.id, reminder.channel, reminder.recipient, reminder.language, reminder.subject,
                       reminder.body, loan_number, reminder.rule)
    try:
        TRANSPORTS[reminder.transport](config, message)
    except DeliveryError as failure:
        return _failed(session, reminder, failure)
    reminder.status, reminder.sent_at, reminder.last_error = "SENT", clock.now(), None
    session.flush()
    return Outcome("SENT")


def _failed(session: Session, reminder: Reminder, failure: DeliveryError) -> Outcome:
    """A permanent refusal or the last allowed attempt: FAILED; otherwise wait (backoff) and try again."""
    config = current_app.config
    reminder.last_error = failure.message[:2000]
    if failure.permanent or reminder.attempts >= config["REMINDER_MAX_ATTEMPTS"]:
        reminder.status = "FAILED"
        if not failure.permanent:
            reminder.last_error = f"gave up after {reminder.attempts} attempts: {failure.message}"[:2000]
    else:
        reminder.status = "PENDING"
        reminder.next_attempt_at = clock.now() + backoff(reminder.attempts, config["REMINDER_RETRY_SECONDS"])
    session.flush()
    return Outcome("FAILED" if reminder.status == "FAILED" else "RETRY", reminder.last_error)


def record_crash(session: Session, reminder_id: int, error: Exception) -> Outcome:
    """Delivery of one row raised something unexpected: count it as a failed attempt and carry on."""
    reminder = session.get(Reminder, reminder_id)
    return _failed(session, reminder, DeliveryError(f"internal error: {type(error).__name__}: {error}",
                                                    permanent=False))


def resend(session: Session, actor, reminder_id: str | int) -> Reminder:
    """An administrator sends a FAILED reminder again: attempts start over, contact details are read afresh."""
    require(actor, Perm.ADMINISTER)
    reminder = session.get(Reminder, int(reminder_id)) if str(reminder_id).isdigit() else None
    if reminder is None:
        raise NotFound("No such reminder.")
    if reminder.status != "FAILED":
        raise ValidationError("Only a failed reminder can be sent again.",
                              fields={"status": f"is {reminder.status}; a reminder is never sent twice"})
    borrower = session.execute(select(Borrower.email, Borrower.phone).join(Loan, Loan.borrower_id == Borrower.id)
                               .where(Loan.id == reminder.loan_id)).one()
    before = {"status": reminder.status, "attempts": reminder.attempts, "last_error": reminder.last_error,
              "recipient": reminder.recipient}
    reminder.recipient = borrower.email if reminder.transport == "smtp" else f"+91{borrower.phone}"
    reminder.status, reminder.attempts, reminder.next_attempt_at = "PENDING", 0, clock.now()
    session.flush()
    audit.record(session, actor, "reminder.resend", "reminder", reminder.id, before=before,
                 after={"status": "PENDING", "attempts": 0, "recipient": reminder.recipient})
    return reminder


# ---------------------------------------------------------------- runs (CronRun rows, like day-end's)

def start_run(session: Session, business_date: date, *, stale_after_seconds: int) -> CronRun:
    """Open a RUNNING attempt for (reminders, date), or record a SKIPPED one when another is running.

    Unlike day-end, a date may run many times (the schedule runs hourly: new selections are deduped,
    deliveries pick up what is due); only two at once are refused.
    """
    running = session.scalar(select(CronRun).where(CronRun.job == JOB, CronRun.business_date == business_date,
                                                   CronRun.status == "RUNNING").with_for_update())
    if running is not None:
        beat = running.heartbeat_at or running.started_at
        if (clock.now() - beat).total_seconds() < stale_after_seconds:
            return dayend.record_skip(session, JOB, business_date,
                                      f"attempt {running.attempt} is still running on {running.worker}")
        running.status, running.finished_at = "FAILED", clock.now()
        running.error = f"abandoned: no heartbeat since {beat.isoformat()} (worker {running.worker})"
        session.flush()
    attempt = (session.scalar(select(func.max(CronRun.attempt)).where(
        CronRun.job == JOB, CronRun.business_date == business_date)) or 0) + 1
    run = CronRun(job=JOB, business_date=business_date, attempt=attempt, status="RUNNING", forced=False,
                  started_at=clock.now(), heartbeat_at=clock.now(), worker=dayend.worker_name(),
                  summary=json.dumps(RunCounts().as_dict()))
    try:
        with session.begin_nested():
            session.add(run)
            session.flush()
    except IntegrityError:
        return dayend.record_skip(session, JOB, business_date, "another attempt started at the same moment")
    return run


@dataclass
class RunCounts:
    selected: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    cancelled: int = 0
    deferred: int = 0

    def as_dict(self) -> dict:
        return {"selected": self.selected, "sent": self.sent, "retrying": self.retrying, "failed": self.failed,
                "cancelled": self.cancelled, "deferred": self.deferred}


def heartbeat(session: Session, run_id: int, counts: RunCounts, *, batch_done: bool = True) -> None:
    run = session.get(CronRun, run_id, with_for_update=True)
    run.heartbeat_at = clock.now()
    run.batches_done += 1 if batch_done else 0
    run.loans_processed = counts.selected
    run.summary = json.dumps(counts.as_dict(), sort_keys=True)


def finish_run(session: Session, run_id: int, counts: RunCounts) -> CronRun:
    run = session.get(CronRun, run_id, with_for_update=True)
    run.status, run.finished_at, run.heartbeat_at = "SUCCEEDED", clock.now(), clock.now()
    run.loans_processed = counts.selected
    run.summary = json.dumps(counts.as_dict(), sort_keys=True)
    session.flush()
    audit.record(session, SYSTEM, "reminders.succeeded", "cron_run", run.id,
                 after={"business_date": run.business_date, "attempt": run.attempt, **counts.as_dict()})
    return run


# ---------------------------------------------------------------- the admin screen

def status_counts(session: Session) -> dict[str, int]:
    counts = dict(session.execute(select(Reminder.status, func.count()).group_by(Reminder.status)).all())
    return {status: counts.get(status, 0) for status in REMINDER_STATUSES}


def outbox_page(session: Session, *, status: str | None, page: int, per_page: int):
    """One page of the outbox, newest first, with each row's loan number and due date (two queries)."""
    query = (select(Reminder, Loan.loan_number, Instalment.due_date)
             .join(Loan, Loan.id == Reminder.loan_id).join(Instalment, Instalment.id == Reminder.instalment_id))
    count = select(func.count()).select_from(Reminder)
    if status:
        query, count = query.where(Reminder.status == status), count.where(Reminder.status == status)
    rows = session.execute(query.order_by(Reminder.created_at.desc(), Reminder.id.desc())
                           .limit(per_page).offset((page - 1) * per_page)).all()
    return Page(rows, page, per_page, session.scalar(count) or 0)
