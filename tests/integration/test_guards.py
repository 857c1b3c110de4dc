"""The database itself refuses changes to loan terms, schedules and the audit log (raw SQL, no app)."""
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from webapp.models.loans import IMMUTABLE_INSTALMENT_COLUMNS, IMMUTABLE_LOAN_COLUMNS
from webapp.services import audit

NEW_VALUES = {"date": "'2030-01-01'", "timestamp": "'2030-01-01 00:00:00+00'"}


def _refused(db, sql: str):
    with pytest.raises(DBAPIError, match="kisht"):
        with db.begin_nested():
            db.execute(text(sql))


def _literal_for(column: str) -> str:
    """A value certainly different from the stored one."""
    if column.endswith("_on") or column == "due_date":
        return NEW_VALUES["date"]
    if column.endswith("_at"):
        return NEW_VALUES["timestamp"]
    if column == "loan_number":
        return "'HACKED1'"
    if column.endswith("_by_id"):
        return "(SELECT MAX(id) FROM users)"  # the row holds NULL: loans made by the system
    return f"{column} + 1"


@pytest.mark.parametrize("column", IMMUTABLE_LOAN_COLUMNS)
def test_raw_update_of_loan_terms_is_refused(db, make_loan, column):
    loan = make_loan()
    _refused(db, f"UPDATE loans SET {column} = {_literal_for(column)} WHERE id = {loan.id}")


@pytest.mark.parametrize("column", IMMUTABLE_INSTALMENT_COLUMNS)
def test_raw_update_of_the_schedule_is_refused(db, make_loan, column):
    loan = make_loan()
    _refused(db, f"UPDATE instalments SET {column} = {_literal_for(column)} WHERE loan_id = {loan.id} AND seq = 3")


def test_loans_and_instalments_cannot_be_deleted_or_extended(db, make_loan):
    loan = make_loan()
    _refused(db, f"DELETE FROM instalments WHERE loan_id = {loan.id}")
    _refused(db, f"DELETE FROM loans WHERE id = {loan.id}")
    _refused(db, "INSERT INTO instalments (loan_id, seq, due_date, principal_due_paise, interest_due_paise, "
                 "principal_paid_paise, interest_paid_paise, status) "
                 f"VALUES ({loan.id}, 13, '2027-03-05', 100, 0, 0, 0, 'DUE')")


def test_derived_position_columns_stay_writable_for_the_ledger(db, make_loan):
    loan = make_loan()
    db.execute(text(f"UPDATE loans SET overdue_since = '2026-01-05' WHERE id = {loan.id}"))
    db.execute(text(f"UPDATE instalments SET status = 'PAID' WHERE loan_id = {loan.id} AND seq = 1"))


def test_audit_rows_cannot_be_updated_or_deleted(db, make_loan):
    make_loan()
    _refused(db, "UPDATE audit_log SET action = 'nothing' WHERE seq = 1")
    _refused(db, "DELETE FROM audit_log WHERE seq = 1")
    _refused(db, "DELETE FROM audit_chain_head")


def _disable_audit_guards(db, backend):
    """What an attacker with the database owner's rights would do first; rolled back with the test."""
    if backend == "postgresql":
        db.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
    else:
        db.execute(text("DROP TRIGGER audit_log_no_update"))
        db.execute(text("DROP TRIGGER audit_log_no_delete"))


def test_chain_verifies_and_catches_an_altered_row(db, backend, make_loan):
    make_loan(loan_number="KL0001")
    make_loan(loan_number="KL0002")
    report = audit.verify_chain(db)
    assert report.ok and report.checked >= 10
    _disable_audit_guards(db, backend)
    target = db.execute(text("SELECT seq FROM audit_log WHERE action = 'loan.created' ORDER BY seq LIMIT 1")).scalar()
    db.execute(text("UPDATE audit_log SET after = replace(after, '100000.00', '1000.00') WHERE seq = :s"), {"s": target})
    db.expire_all()
    report = audit.verify_chain(db)
    assert not report.ok and report.seq == target and "altered" in report.problem


def test_chain_catches_a_removed_row_and_a_removed_tail(db, backend, make_loan):
    make_loan()
    _disable_audit_guards(db, backend)
    last = db.execute(text("SELECT MAX(seq) FROM audit_log")).scalar()
    db.execute(text("DELETE FROM audit_log WHERE seq = :s"), {"s": last})
    db.expire_all()
    report = audit.verify_chain(db)
    assert not report.ok and "removed" in report.problem
    db.execute(text("DELETE FROM audit_log WHERE seq = 3"))
    db.expire_all()
    report = audit.verify_chain(db)
    assert not report.ok and report.seq == 3 and "missing" in report.problem


def test_chain_catches_a_forged_row_inserted_out_of_order(db, backend, make_loan):
    make_loan()
    _disable_audit_guards(db, backend)
    db.execute(text("UPDATE audit_log SET seq = seq + 1000 WHERE seq = 2"))  # move one entry away
    db.execute(text(
        "INSERT INTO audit_log (seq, occurred_at, actor_label, action, entity_type, entity_id, prev_hash, hash) "
        "SELECT 2, occurred_at, 'mallory', 'loan.created', 'loan', 'FAKE', prev_hash, hash FROM audit_log WHERE seq = 1002"))
    db.expire_all()
    report = audit.verify_chain(db)
    assert not report.ok and report.seq == 2
