"""Loan creation, import, scope and the few changes a loan accepts — through the one service."""
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.conftest import loan_row
from webapp import clock, errors
from webapp.errors import ImmutableFieldError, NotFound, ValidationError
from webapp.models import AuditEntry, Instalment, Loan
from webapp.services import loans

HEADER = ",".join(loans.CSV_COLUMNS)


def csv_of(*rows: dict) -> str:
    lines = [HEADER]
    for row in rows:
        lines.append(",".join(row[c] for c in loans.CSV_COLUMNS))
    return "\n".join(lines) + "\n"


def count(db, model):
    return db.scalar(select(func.count()).select_from(model))


def test_created_loan_has_exact_schedule_and_audit(db, make_loan):
    loan = make_loan(principal="100000.50", annual_rate="12.5", tenure_months="24")
    assert loan.principal_paise == 10_000_050 and loan.annual_rate_bps == 1250
    assert sum(i.principal_due_paise for i in loan.instalments) == 10_000_050
    assert len(loan.instalments) == 24
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "loan.created"))
    assert entry.entity_id == loan.loan_number and json.loads(entry.after)["principal"] == "100000.50"


@pytest.mark.parametrize("field, value, problem", [
    ("principal", "-5000", "greater than zero"),
    ("principal", "0", "greater than zero"),
    ("principal", "100.123", "2 decimal places"),
    ("principal", "1e40", "too large"),
    ("annual_rate", "61", "between 0 and 60"),
    ("annual_rate", "abc", "percentage"),
    ("tenure_months", "0", "between 1 and 480"),
    ("tenure_months", "481", "between 1 and 480"),
    ("tenure_months", "12.5", "whole number"),
    ("disbursed_on", "2026-13-01", "real calendar date"),
    ("disbursed_on", "2999-01-01", "future"),
    ("first_due_on", "2025-12-01", "before the disbursal"),
    ("borrower_phone", "12345", "10-digit"),
    ("loan_number", "a", "3–32"),
    ("branch_code", "NOPE", "no branch"),
    ("collector_username", "ghost", "no active collector"),
    ("collector_username", "col2", "does not work at branch"),
    ("collector_username", "mgr", "no active collector"),
])
def test_bad_fields_are_named(db, make_loan, field, value, problem):
    with pytest.raises(ValidationError) as refused:
        make_loan(**{field: value})
    assert problem in refused.value.fields[field]
    assert count(db, Loan) == 0


def test_duplicate_loan_number_refused(db, make_loan):
    make_loan()
    with pytest.raises(ValidationError) as refused:
        make_loan()
    assert "already exists" in refused.value.fields["loan_number"]


def test_import_creates_every_loan(db, system, users):
    text = csv_of(loan_row(loan_number="KL1"), loan_row(loan_number="KL2", borrower_phone="+91 98111 22333"))
    result = loans.import_csv(db, system, text.encode(), filename="batch.csv")
    assert result.created == 2 and count(db, Loan) == 2 and count(db, Instalment) == 24
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "loans.imported")).entity_id == "batch.csv"


def test_import_is_all_or_nothing_and_reports_every_bad_row(db, system, users, make_loan):
    make_loan(loan_number="KLOLD")
    text = csv_of(
        loan_row(loan_number="KL1"),  # fine
        loan_row(loan_number="KL2", branch_code="NOPE"),  # row 3
        loan_row(loan_number="KL3", collector_username="ghost", principal="-1"),  # row 4: two problems
        loan_row(loan_number="KL1"),  # row 5: duplicates row 2
        loan_row(loan_number="KLOLD"),  # row 6: exists
        loan_row(loan_number="KL6", annual_rate="75", tenure_months="0", first_due_on="2025-01-01",
                 disbursed_on="bad", borrower_phone="1"),  # row 7
    )
    before = count(db, Loan)
    with pytest.raises(ValidationError) as refused:
        loans.import_csv(db, system, text.encode())
    fields = refused.value.fields
    assert "no branch" in fields["row 3, branch_code"]
    assert "greater than zero" in fields["row 4, principal"]
    assert "duplicates row 2" in fields["row 5, loan_number"]
    assert "already exists" in fields["row 6, loan_number"]
    for column in ("annual_rate", "tenure_months", "disbursed_on", "borrower_phone"):
        assert f"row 7, {column}" in fields
    assert count(db, Loan) == before


@pytest.mark.parametrize("content, problem_key", [
    ("loan_number,borrower_name\nKL1,Ravi\n", "header"),
    (HEADER + "\n", "file"),
    (HEADER + "\nKL1,Ravi,9876543210,PUNE01,col,100000,12,12,2026-01-01,2026-02-05,extra,values,here\n", "row 2"),
])
def test_malformed_files_refused(db, system, users, content, problem_key):
    with pytest.raises(ValidationError) as refused:
        loans.import_csv(db, system, content.encode())
    assert problem_key in refused.value.fields


def test_import_refuses_users_without_permission(db, users):
    with pytest.raises(errors.Forbidden):
        loans.import_csv(db, users["mgr"], csv_of(loan_row()).encode())


def test_scope_out_of_range_loan_is_not_found(db, make_loan, users):
    today = clock.today_ist()
    make_loan(loan_number="KLP", branch_code="PUNE01", collector_username="col", disbursed_on=today.isoformat(),
              first_due_on=(today + timedelta(days=30)).isoformat())
    make_loan(loan_number="KLN", branch_code="NSK01", collector_username="col2")  # long overdue: NPA
    assert loans.get_for(db, users["leg"], "KLN").asset_class == "NPA"  # legal sees the NPA queue
    assert loans.get_for(db, users["col"], "KLP").loan_number == "KLP"
    for username, number in (("col", "KLN"), ("col2", "KLP"), ("mgr", "KLN"), ("mgr2", "KLP"), ("leg", "KLP")):
        with pytest.raises(NotFound):
            loans.get_for(db, users[username], number)
    assert {l.loan_number for l in loans.list_for(db, users["col"]).items} == {"KLP"}
    assert {l.loan_number for l in loans.list_for(db, users["mgr2"]).items} == {"KLN"}
    assert {l.loan_number for l in loans.list_for(db, users["fin"]).items} == {"KLP", "KLN"}


def test_search_by_number_name_or_phone(db, make_loan, users):
    make_loan(loan_number="KL10", borrower_name="Sunita Devi", borrower_phone="9000000001")
    make_loan(loan_number="KL11", borrower_name="Anil Sharma", borrower_phone="9000000002")
    make_loan(loan_number="E2E12", borrower_name="Ravi Rao", borrower_phone="9000000003")
    for term, found in (("kl10", "KL10"), ("sunita", "KL10"), ("SUNITA DEVI", "KL10"), ("devi", "KL10"),
                        ("9000000001", "KL10"), ("+91 90000 00001", "KL10"), ("e2e12", "E2E12"), ("rao", "E2E12")):
        assert [l.loan_number for l in loans.list_for(db, users["col"], q=term).items] == [found], term
    assert loans.list_for(db, users["col"], q="KL1").items == []  # a number is matched whole


@pytest.mark.parametrize("field", ["principal", "annual_rate", "tenure_months", "schedule", "dpd", "asset_class",
                                   "bucket", "status", "emi", "first_due_on"])
def test_update_refuses_immutable_fields_by_name(db, make_loan, users, field):
    loan = make_loan()
    with pytest.raises(ImmutableFieldError) as refused:
        loans.update_loan(db, users["adm"], loan.loan_number, {field: "1", "borrower_phone": "9123456780"})
    assert field in refused.value.fields and "borrower_phone" not in refused.value.fields
    assert refused.value.attempt.action == "loan.change_refused"
    db.refresh(loan)
    assert loan.principal_paise == 10_000_000 and loan.borrower.phone == "9876543210"


def test_update_reassigns_collector_and_contact_details(db, make_loan, users):
    loan = make_loan()
    loans.update_loan(db, users["mgr"], loan.loan_number,
                      {"collector_username": "", "borrower_phone": "9123456780", "borrower_language": "Hindi"})
    assert loan.collector is None and loan.borrower.phone == "9123456780" and loan.borrower.preferred_language == "hi"
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "loan.updated"))
    assert json.loads(entry.before)["borrower_phone"] == "9876543210"
    with pytest.raises(ValidationError) as refused:
        loans.update_loan(db, users["mgr"], loan.loan_number, {"collector_username": "col2"})
    assert "does not work at branch" in refused.value.fields["collector_username"]
    with pytest.raises(errors.Forbidden):
        loans.update_loan(db, users["fin"], loan.loan_number, {"borrower_phone": "9123456789"})
