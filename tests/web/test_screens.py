"""Loan screens, admin forms and imports through the test client."""
import io

from sqlalchemy import func, select

from tests.conftest import csrf_token, loan_row
from tests.integration.test_loans import csv_of
from webapp.models import AuditEntry, Loan


def test_loan_page_shows_schedule_in_indian_grouping(login_as, make_loan):
    make_loan()
    html = login_as("col").get("/loans/KL0001").get_data(as_text=True)
    assert "₹1,00,000.00" in html and "₹8,884.88" in html and html.count('<tr class="status-') == 12


def test_loan_links_are_the_loan_pages_address(app, login_as, make_loan):
    """Lists link their loans with loan_url: what url_for gives, under a path prefix too, and it opens the loan."""
    from flask import url_for

    from webapp.loans.routes import loan_url

    for base_url in ("http://localhost/", "http://localhost/kisht/"):
        with app.test_request_context("/", base_url=base_url):
            for number in ("KL0001", "KL 1/2", "KL@1", "कर्ज़1"):
                assert loan_url(number) == url_for("loans.show", number=number), (base_url, number)
    make_loan(loan_number="KL0007")
    client = login_as("col")
    worklist = client.get("/collector/").get_data(as_text=True)
    assert '<a href="/loans/KL0007">KL0007</a>' in worklist
    assert client.get("/loans/KL0007").status_code == 200


def test_out_of_scope_loan_is_404_not_403(login_as, make_loan):
    make_loan(loan_number="KLN", branch_code="NSK01", collector_username="col2", borrower_name="Meena Kale")
    for username in ("col", "mgr"):
        response = login_as(username).get("/loans/KLN")
        assert response.status_code == 404 and "Meena Kale" not in response.get_data(as_text=True)


def test_worklist_search_returns_only_the_table_for_htmx(login_as, make_loan):
    make_loan(loan_number="KL1", borrower_name="Sunita Devi", borrower_phone="9000000001")
    make_loan(loan_number="KL2", borrower_name="Anil Sharma", borrower_phone="9000000002")
    response = login_as("col").get("/collector/?q=sunita", headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html and "KL1" in html and "KL2" not in html


def test_admin_creates_a_loan_and_bad_input_creates_nothing(login_as, db, users):
    client = login_as("adm")
    token = csrf_token(client, "/admin/loans/new")
    bad = client.post("/admin/loans/new", data={**loan_row(principal="-100", tenure_months="abc"), "csrf_token": token})
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422 and 'data-field="principal"' in html and 'data-field="tenure_months"' in html
    assert db.scalar(select(func.count()).select_from(Loan)) == 0
    good = client.post("/admin/loans/new", data={**loan_row(), "csrf_token": token})
    assert good.status_code == 302 and good.headers["Location"] == "/loans/KL0001"


def test_form_has_no_field_for_derived_or_immutable_state(login_as, users):
    html = login_as("adm").get("/admin/loans/new").get_data(as_text=True)
    for name in ("dpd", "asset_class", "bucket", "status", "schedule", "emi"):
        assert f'name="{name}"' not in html


def test_extra_posted_fields_are_ignored_not_stored(login_as, db, users):
    client = login_as("adm")
    token = csrf_token(client, "/admin/loans/new")
    client.post("/admin/loans/new", data={**loan_row(), "dpd": "0", "asset_class": "STANDARD", "csrf_token": token})
    loan = db.scalar(select(Loan))
    assert loan.asset_class == "NPA" and loan.dpd > 90  # computed from the schedule, never taken from input


def test_import_page_reports_rows_and_imports_nothing(login_as, db, users):
    client = login_as("adm")
    token = csrf_token(client, "/admin/loans/import")
    bad = csv_of(loan_row(loan_number="KL1"), loan_row(loan_number="KL2", branch_code="NOPE"))
    response = client.post("/admin/loans/import", data={"csrf_token": token, "file": (io.BytesIO(bad.encode()), "loans.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 422 and "row 3, branch_code" in response.get_data(as_text=True)
    assert db.scalar(select(func.count()).select_from(Loan)) == 0
    good = csv_of(loan_row(loan_number="KL1"), loan_row(loan_number="KL2"))
    response = client.post("/admin/loans/import", data={"csrf_token": token, "file": (io.BytesIO(good.encode()), "loans.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 200 and "Imported 2 loan(s)" in response.get_data(as_text=True)
    not_utf8 = client.post("/admin/loans/import", data={"csrf_token": token, "file": (io.BytesIO(b"\xff\xfe\x00bad"), "x.csv")},
                           content_type="multipart/form-data")
    assert not_utf8.status_code == 422 and "UTF-8" in not_utf8.get_data(as_text=True)


def test_manager_reassigns_collector_and_it_is_audited(login_as, db, make_loan):
    make_loan()
    client = login_as("mgr")
    token = csrf_token(client, "/loans/KL0001")
    response = client.post("/admin/loans/KL0001/collector", data={"csrf_token": token, "collector_username": ""})
    assert response.status_code == 302
    db.expire_all()
    assert db.scalar(select(Loan)).collector_id is None
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "loan.updated")).actor_label == "mgr"


def test_audit_log_is_scoped_to_the_managers_branch(db, login_as, make_loan):
    make_loan(loan_number="KLP")
    make_loan(loan_number="KLN", branch_code="NSK01", collector_username="col2")
    db.commit()  # the audit entries are appended at commit; the request's session sees them after it
    html = login_as("mgr").get("/audit/").get_data(as_text=True)
    assert "KLP" in html and "KLN" not in html
    assert login_as("col").get("/audit/").status_code == 403
