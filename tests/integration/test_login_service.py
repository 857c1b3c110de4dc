"""Sign-in: counters, lockout and its expiry, and an audit entry for every outcome."""
from datetime import timedelta

from sqlalchemy import select

from tests.conftest import PASSWORD
from webapp import clock
from webapp.models import AuditEntry
from webapp.services import org


def attempt(db, username, password):
    return org.authenticate(db, username, password, max_attempts=5, lockout_minutes=15)


def actions(db):
    return [e.action for e in db.scalars(select(AuditEntry).where(AuditEntry.action.like("%login%") |
                                                                   (AuditEntry.action == "user.locked"))
                                         .order_by(AuditEntry.seq))]


def test_success_failure_and_lockout(db, users, monkeypatch):
    assert attempt(db, "col", PASSWORD).user is users["col"]
    for _ in range(4):
        assert attempt(db, "col", "wrong-password").message == org.INVALID
    locked = attempt(db, "col", "wrong-password")
    assert locked.user is None and "locked" in locked.message
    assert attempt(db, "col", PASSWORD).user is None  # the right password does not open a locked account
    assert attempt(db, "mgr", PASSWORD).user is users["mgr"]  # others are unaffected
    later = clock.now() + timedelta(minutes=16)
    monkeypatch.setattr(clock, "now", lambda: later)
    assert attempt(db, "col", PASSWORD).user is users["col"]
    assert actions(db) == ["login.succeeded"] + ["login.failed"] * 5 + ["user.locked", "login.refused",
                                                                       "login.succeeded", "login.succeeded"]


def test_unknown_and_inactive_users_get_the_same_answer(db, users):
    users["fin"].active = False
    assert attempt(db, "nobody", "whatever-password").message == org.INVALID
    assert attempt(db, "fin", PASSWORD).message == org.INVALID
