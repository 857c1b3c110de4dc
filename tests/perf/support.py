"""A portfolio that grows by whole units, and a counter of the SQL statements one request runs.

Each unit adds one of everything a screen lists — a loan in each branch, payments posted, held for approval
and reversed, a dispute, a contact with a promise, escalations, a priority score, reminders, a day-end run, a
shadow issue, a go-live answer, a user — plus one child to each object a detail page shows (the loan KLD's
payments, contacts and disputes, the dispute's evidence, the escalation's notes). Each `grow` also imports a
bank statement (matched, confirmed, suggested, unmatched lines and unreconcile requests) and a tracker.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import event, select

from tests.conftest import PASSWORD, loan_row, login
from tests.disputes_support import png, upload
from tests.recon_support import cash, hdfc_csv, neft, upi
from webapp import clock
from tests.shadow.conftest import tracker_xlsx
from webapp.models import Approval, CronRun, Escalation, EscalationNote, Loan, LoanScore, ReconciliationMatch, User
from webapp.models.reminders import Reminder
from webapp.permissions import SystemActor
from webapp.services import approvals, collections, disputes, golive, loans, org, payments, shadow
from webapp.services import reconciliation as recon

NOON_IST = datetime(2026, 6, 15, 6, 30, tzinfo=timezone.utc)  # a Monday, 12:00 IST: inside contact hours
TODAY = date(2026, 6, 15)
PAID_ON = TODAY - timedelta(days=2)  # posted payments and the bank lines that carry them
HELD_ON = TODAY - timedelta(days=12)  # beyond BACKDATE_APPROVAL_DAYS: held for a manager
SHADOW_DAY = TODAY - timedelta(days=1)
DETAIL_LOAN = "KLD"

# Bookkeeping statements of the test's own transaction (SAVEPOINTs the request session opens and releases,
# SQLite's BEGIN): not the app's queries.
BOOKKEEPING = re.compile(r"^\s*(SAVEPOINT|RELEASE|ROLLBACK|BEGIN|COMMIT)\b", re.IGNORECASE)


class StatementCounter:
    """Counts what the engine sends while active: `with counter: client.get(...)`."""

    def __init__(self, engine):
        self.engine = engine
        self.statements: list[str] = []

    def _seen(self, _conn, _cursor, statement, _parameters, _context, _executemany):
        if not BOOKKEEPING.match(statement):
            self.statements.append(statement)

    def __enter__(self):
        self.statements = []
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_exc):
        event.remove(self.engine, "before_cursor_execute", self._seen)

    @property
    def count(self) -> int:
        return len(self.statements)


class World:
    """The growing portfolio. `units` is its size; the detail objects are created once and grow with it."""

    def __init__(self, session):
        self.session = session
        self.system = SystemActor("perf")
        self.units = 0
        self.payments = 0
        self.users: dict[str, User] = {}
        self.ref: dict[str, object] = {}  # the objects detail pages show, by name

    # ---------------------------------------------------------------- the fixed cast

    def start(self) -> None:
        s, system = self.session, self.system
        for code, name in (("PUNE01", "Pune Camp"), ("NSK01", "Nashik Road")):
            org.create_branch(s, system, code=code, name=name)
        for username, role, branch in (("col", "collector", "PUNE01"), ("mgr", "manager", "PUNE01"),
                                       ("fin", "finance", None), ("fin2", "finance", None), ("leg", "legal", None),
                                       ("adm", "admin", None), ("col2", "collector", "NSK01")):
            self.users[username] = org.create_user(s, system, username=username, role=role, password=PASSWORD,
                                                   name=username.upper(), branch_code=branch)
        s.flush()
        loan = loans.create_loan(s, system, loan_row(loan_number=DETAIL_LOAN, principal="500000"))
        first = self._pay(DETAIL_LOAN, "UPI", amount="20000")
        self.ref["receipt"] = first.reference
        dispute = disputes.raise_dispute(s, self.users["col"], DETAIL_LOAN, {
            "category": "PAYMENT_NOT_CREDITED", "description": "Paid by UPI; not credited.",
            "payment": first.reference})
        self.ref["dispute"] = dispute.reference
        escalation = Escalation(loan_id=loan.id, branch_id=loan.branch_id, level="MANAGER_REVIEW",
                                reason="NPA", opened_on=TODAY - timedelta(days=5))
        s.add(escalation)
        s.flush()
        self.ref["escalation"] = escalation.id
        s.flush()

    def references(self) -> dict:
        """What the detail routes name: the objects grown with the portfolio, or the newest of their kind."""
        ref = self.ref
        return {"receipt": ref["receipt"], "dispute": ref["dispute"], "escalation": ref["escalation"],
                "approval": ref["approval"], "held": ref["held"], "statement": ref["statement"],
                "line": ref["line"], "issue": ref["issue"]}

    # ---------------------------------------------------------------- growth

    def grow_to(self, units: int) -> None:
        new = list(range(self.units + 1, units + 1))
        if not new:
            return
        for i in new:
            self._unit(i)
        self._statement(new)
        self._tracker()
        for i in new:
            issue = shadow.raise_issue(self.session, self.users["fin"], {
                "business_date": SHADOW_DAY.isoformat(), "kind": "DPD", "loan_number": f"KLP{i:03d}",
                "title": f"DPD differs on KLP{i:03d}", "assignee": "fin2" if i % 2 else ""})
            self.ref["issue"] = issue.id
        self.units = units
        self.session.flush()

    def _unit(self, i: int) -> None:
        s, users = self.session, self.users
        col, mgr, fin, adm = users["col"], users["mgr"], users["fin"], users["adm"]
        number = f"KLP{i:03d}"
        # Every other unit has a collector of its own, who records its payments, contact and dispute: rows
        # then point at many users, as they do in production, so a lazy load per row cannot hide behind
        # the session's identity map.
        own = User(username=f"col{i:03d}", name=f"Collector {i}", role="collector", branch_id=col.branch_id,
                   password_hash=col.password_hash)
        s.add(own)
        s.flush()
        actor = col if i % 2 else own
        loan = loans.create_loan(s, self.system, loan_row(loan_number=number, borrower_name=f"Borrower {i}",
                                                          borrower_phone=f"9{i:09d}", collector_username=actor.username))
        loans.create_loan(s, self.system, loan_row(loan_number=f"KLN{i:03d}", branch_code="NSK01",
                                                   collector_username="col2", borrower_name=f"Nashik {i}",
                                                   borrower_phone=f"8{i:09d}"))
        if i % 3 == 0:  # a current loan too, in every role's lists but legal's
            loans.create_loan(s, self.system, loan_row(
                loan_number=f"KLS{i:03d}", borrower_phone=f"7{i:09d}",
                disbursed_on=(TODAY - timedelta(days=10)).isoformat(),
                first_due_on=(TODAY + timedelta(days=20)).isoformat()))
        reversed_one = self._pay(number, "UPI", actor=actor)
        approvals.request_reversal(s, mgr, reversed_one.reference, {"reason": "DUPLICATE", "amount": "100"})
        self.ref["held"] = s.scalar(select(Approval.id).where(Approval.payment_id == self._pay(number, "NEFT", value_date=HELD_ON, actor=actor).id))
        self._pay(number, "UPI", key=f"B{i}", actor=actor)  # its bank line confirms it
        self._pay(number, "CASH", key=f"C{i}", amount=f"{1100 + i}", actor=actor)  # its cash deposit is a suggestion
        disputes.raise_dispute(s, actor, number, {"category": "WRONG_AMOUNT", "description": f"EMI differs ({i})"})
        collections.log_contact(s, actor, number, {
            "channel": "VISIT", "outcome": "PROMISE_TO_PAY", "contacted_at": "2026-06-15T11:00",
            "promise_amount": "2000", "promise_date": (TODAY + timedelta(days=3)).isoformat(), "note": "after salary"})
        for level in ("MANAGER_REVIEW", "LEGAL"):
            s.add(Escalation(loan_id=loan.id, branch_id=loan.branch_id, level=level, reason="NPA",
                             opened_on=TODAY - timedelta(days=i % 7), assignee_id=mgr.id if level != "LEGAL" else None))
        s.add(LoanScore(loan_id=loan.id, business_date=SHADOW_DAY, score=500 + i, dpd_points=100, overdue_points=100,
                        silence_points=100, broken_promise_points=0, roll_points=0, days_since_payment=2,
                        broken_promises=0, class_month_ago="SMA-2"))
        first = loan.instalments[0]
        for rule, status in (("OVERDUE_7", "PENDING"), ("OVERDUE_30", "FAILED")):
            s.add(Reminder(loan_id=loan.id, instalment_id=first.id, rule=rule, business_date=SHADOW_DAY,
                           amount_paise=888488, transport="log", channel="LOG", language="en", recipient="9000000000",
                           subject="EMI due", body="Please pay", status=status, attempts=1 if status == "PENDING" else 5,
                           last_error=None if status == "PENDING" else "gateway refused"))
        s.add(CronRun(job="dayend" if i % 2 else "reminders", business_date=TODAY - timedelta(days=i), attempt=1,
                      status="SUCCEEDED" if i % 3 else "FAILED", loans_processed=i, started_at=clock.now(),
                      finished_at=clock.now(), error=None if i % 3 else "worker lost"))
        golive.record_answer(s, adm, {"key": ("s01", "s03", "s06", "s07")[i % 4], "holds": "yes",
                                      "note": f"checked ({i})", "signatory": "adm"})
        # One more child for every detail page.
        extra = self._pay(DETAIL_LOAN, "UPI", amount="1000")
        if "approval" in self.ref:  # the receipt's reversals: all approved but the newest
            approvals.decide(s, mgr, [self.ref["approval"]], approve=True, reason="Confirmed with the branch")
        approval = approvals.request_reversal(s, fin, self.ref["receipt"], {"reason": "OTHER", "note": f"part {i}",
                                                                            "amount": "10"})
        self.ref["approval"] = approval.id
        disputes.raise_dispute(s, col, DETAIL_LOAN, {"category": "WRONG_AMOUNT", "description": f"Amount ({i})",
                                                     "payment": extra.reference})
        collections.log_contact(s, col, DETAIL_LOAN, {"channel": "VISIT", "outcome": "NOT_REACHABLE",
                                                      "contacted_at": "2026-06-15T10:00", "note": f"visit {i}"})
        s.add(EscalationNote(escalation_id=self.ref["escalation"], author_id=mgr.id, text=f"note {i}"))
        if i <= 5:  # a dispute holds at most EVIDENCE_MAX_FILES
            disputes.add_evidence(s, col, self.ref["dispute"], [upload(f"receipt-{i}.png", png())])
        s.flush()

    def _pay(self, number: str, mode: str, *, key: str | None = None, amount: str = "1000",
             value_date: date = PAID_ON, actor=None):
        self.payments += 1
        raw = {"amount": amount, "mode": mode, "value_date": value_date.isoformat()}
        if mode == "CASH":
            raw["receipt_number"] = f"R{self.payments:06d}"
        elif mode == "NEFT":
            raw["reference"] = f"HDFCN{self.payments:011d}"
        else:
            raw["reference"] = f"{5 * 10**11 + self.payments}"  # a 12-digit UPI reference
        payment = payments.record_payment(self.session, actor or self.users["fin"], number, raw).payment
        if key:
            self.ref[key] = payment
        return payment

    def _statement(self, new: list[int]) -> None:
        s, fin = self.session, self.users["fin"]
        rows = []
        for i in new:
            rows.append(upi(PAID_ON, "1000.00", self.ref[f"B{i}"].utr))
            rows.append(cash(PAID_ON, f"{1100 + i}.00"))
            rows.append(neft(PAID_ON, "777.00", f"UTIB{self.units * 100 + i:012d}", name="UNKNOWN PAYER"))
        imported = recon.import_statement(s, fin, bank="HDFC", data=hdfc_csv(rows),
                                          filename=f"statement-{len(new)}.csv")
        self.ref["statement"] = imported.statement.reference
        recon.run_matching(s, fin)
        for match in s.scalars(select(ReconciliationMatch).where(ReconciliationMatch.status == "CONFIRMED")):
            if match.id not in self.ref.setdefault("unreconciling", set()):
                recon.request_unreconcile(s, fin, match.id, "Bank recalled the credit")
                self.ref["unreconciling"].add(match.id)
                self.ref["line"] = match.line_id

    def _tracker(self) -> None:
        s = self.session
        numbers = sorted(s.scalars(select(Loan.loan_number)))
        rows = [(n, 100000 - k, 120 + (k % 3), "NPA", 0) for k, n in enumerate(numbers)]
        shadow.import_tracker(s, self.users["fin"], data=tracker_xlsx(rows, SHADOW_DAY), filename="tracker.xlsx",
                              business_date=SHADOW_DAY, layout="")


def sign_in_all(app, usernames) -> dict:
    clients = {}
    for username in usernames:
        client = app.test_client()
        response = login(client, username)
        assert response.status_code == 302, response.get_data(as_text=True)
        clients[username] = client
    return clients
