"""Reconciliation screens over HTTP: finance only, import form and its refusals, HTMX partials, confirm and
dismiss, the dashboard and its close, exports, unreconcile by a second person, dispute flags."""
import csv
import io
import re
from datetime import date, datetime, timedelta, timezone

import openpyxl
import pytest
from sqlalchemy import select

from tests.conftest import csrf_token, login
from tests.recon_support import cash, hdfc_csv, imps, neft, upi
from webapp import clock
from webapp.models import AuditEntry, Payment, ReconciliationMatch, StatementLine
from webapp.services import disputes, org, payments
from webapp.services import reconciliation as recon

TODAY = date(2026, 6, 15)
D2, D3 = TODAY - timedelta(days=2), TODAY - timedelta(days=3)
HX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def fixed_today(monkeypatch):
    noon_ist = datetime(2026, 6, 15, 6, 30, tzinfo=timezone.utc)
    monkeypatch.setattr(clock, "now", lambda: noon_ist)


@pytest.fixture()
def loan(make_loan):
    make_loan(loan_number="KL2", borrower_name="Sunita Devi", borrower_phone="9000000002")
    return make_loan(loan_number="KL1")


def pay(db, user, reference, amount="8884.88", mode="UPI", loan_number="KL1", day=D2):
    return payments.record_payment(db, user, loan_number, {"amount": amount, "mode": mode, "reference": reference,
                                                           "value_date": day.isoformat()}).payment


def upload(client, data: bytes, bank="HDFC", name="statement.csv", headers=HX):
    token = csrf_token(client, "/reconciliation/statements")
    return client.post("/reconciliation/statements", headers=headers, content_type="multipart/form-data",
                       data={"csrf_token": token, "bank": bank, "file": (io.BytesIO(data), name)})


def post(client, url, data=None, headers=HX):
    token = csrf_token(client, "/reconciliation/")
    return client.post(url, data={"csrf_token": token, **(data or {})}, headers=headers)


def text_of(response) -> str:
    return response.get_data(as_text=True)


def test_only_finance_reaches_reconciliation(app, login_as, loan):
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/reconciliation")]
    assert len(rules) >= 15
    for username in ("col", "mgr", "leg", "adm"):
        client = login_as(username)
        token = csrf_token(client, "/")
        for rule in rules:
            url = re.sub(r"<[^>]+>", "1", rule.rule)
            method = "GET" if "GET" in rule.methods else "POST"
            response = client.open(url, method=method, data={"csrf_token": token} if method == "POST" else None)
            assert response.status_code == 403, (username, method, url, response.status_code)
    fin = login_as("fin")
    assert fin.get("/reconciliation/").status_code == 200
    assert 'href="/reconciliation/">Reconciliation</a>' in text_of(fin.get("/finance/"))
    assert "Reconciliation</a>" not in text_of(login_as("mgr").get("/manager/"))


def test_import_through_the_form_then_the_statement_page(login_as, db, loan):
    client = login_as("fin")
    page = text_of(client.get("/reconciliation/statements"))
    assert 'id="import-form"' in page and 'value="HDFC"' in page and 'value="SBI"' in page
    response = upload(client, hdfc_csv([neft(D2, "8884.88", "HDFCN26306258176"), cash(D2, "500.00")]))
    assert response.status_code == 204
    statement_url = response.headers["HX-Redirect"]
    html = text_of(client.get(statement_url))
    assert html.count("data-line=") == 2 and "HDFCN26306258176" in html and "(reference)" in html
    assert 'data-testid="statement-credits">2 · ₹9,384.88' in html
    # Without HTMX the same post redirects.
    plain = upload(client, hdfc_csv([cash(D2, "700.00")], opening="1.00"), headers={})
    assert plain.status_code == 302 and "/reconciliation/statements/BS" in plain.headers["Location"]


def test_a_refused_file_comes_back_as_the_form_with_every_problem(login_as, db, loan):
    client = login_as("fin")
    bad = hdfc_csv([neft(D2, "8884.88", "HDFCN26306258176"), ("31/02/26", "X", "", "1.00", None),
                    neft(D2, "12a", "HDFCN26306258177")])
    response = upload(client, bad)
    html = text_of(response)
    assert response.status_code == 422 and 'id="import-form"' in html and "<html" not in html
    assert 'data-field="row 3, Date"' in html and 'data-field="row 4, Deposit Amt."' in html
    assert db.scalar(select(StatementLine.id)) is None
    missing = upload(client, b"")
    assert missing.status_code == 422 and 'data-field="file"' in text_of(missing)
    good = hdfc_csv([neft(D2, "8884.88", "HDFCN26306258176")])
    assert upload(client, good).status_code == 204
    again = upload(client, good)
    assert again.status_code == 409 and "already imported" in text_of(again)
    wrong_bank = upload(client, hdfc_csv([cash(D2, "1.00")]), bank="SBI")
    assert wrong_bank.status_code == 422 and "SBI statements are imported as XLSX" in text_of(wrong_bank)


def test_confirming_a_suggestion_changes_the_dashboard(login_as, db, users, loan):
    payment = pay(db, users["col"], "111111111111")  # the bank shows another reference: a suggestion only
    client = login_as("fin")
    assert upload(client, hdfc_csv([upi(D2, "8884.88", "154335349840")])).status_code == 204
    board = text_of(client.get("/reconciliation/"))
    assert 'data-testid="total-matched">0<' in board and 'data-testid="open-suggestions">1<' in board
    listed = text_of(client.get("/reconciliation/matches"))
    match_id = re.search(r'data-match="(\d+)" data-kind="AMOUNT_DATE"', listed).group(1)
    response = post(client, f"/reconciliation/matches/{match_id}/confirm", {"status": "SUGGESTED"})
    html = text_of(response)
    assert response.status_code == 200 and 'id="match-table"' in html and "<html" not in html
    assert "confirmed" in html and response.headers["HX-Trigger"] == '{"reconciliation-changed": true}'
    db.expire_all()
    assert db.get(Payment, payment.id).reconciled_at is not None
    board = text_of(client.get("/reconciliation/", headers=HX))
    assert 'id="recon-dashboard"' in board and "<html" not in board
    assert 'data-testid="total-matched">1<' in board and 'data-testid="open-suggestions">0<' in board
    again = post(client, f"/reconciliation/matches/{match_id}/confirm")
    assert again.status_code == 409 and "only a suggestion can be confirmed" in text_of(again)
    # Locked: the reversal form is gone from the loan page, and a reversal request is refused and audited.
    loan_page = text_of(client.get("/loans/KL1"))
    assert 'data-testid="reconciled"' in loan_page and f"Request a reversal of {payment.reference}" not in loan_page
    token = csrf_token(client, "/loans/KL1")
    refused = client.post(f"/payments/{payment.reference}/reversals", headers=HX,
                          data={"csrf_token": token, "reason": "DUPLICATE", "amount": "", "note": ""})
    assert refused.status_code == 409 and "reconciled with the bank statement" in text_of(refused)
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "payment.change_refused"))
    assert entry is not None and entry.entity_id == payment.reference


def test_mismatch_blocks_the_close_until_dismissed(login_as, db, users, loan):
    pay(db, users["col"], "194650323160", amount="4500", mode="IMPS")
    client = login_as("fin")
    upload(client, hdfc_csv([imps(D2, "4050.00", "194650323160")]))
    board = text_of(client.get("/reconciliation/"))
    assert 'data-testid="open-mismatches">1<' in board and f'data-testid="close-{D2.isoformat()}"' in board
    refused = post(client, f"/reconciliation/days/{D2.isoformat()}/close",
                   {"date_from": (TODAY - timedelta(days=13)).isoformat(), "date_to": TODAY.isoformat()})
    assert refused.status_code == 409 and "open mismatch" in text_of(refused) and 'id="recon-dashboard"' in text_of(refused)
    mismatch = db.scalar(select(ReconciliationMatch).where(ReconciliationMatch.status == "MISMATCH"))
    no_reason = post(client, f"/reconciliation/matches/{mismatch.id}/dismiss", {"status": "MISMATCH"})
    assert no_reason.status_code == 422 and 'data-field="reason"' in text_of(no_reason)
    post(client, f"/reconciliation/matches/{mismatch.id}/dismiss", {"status": "MISMATCH", "reason": "bank charges"})
    closed = post(client, f"/reconciliation/days/{D2.isoformat()}/close")
    assert closed.status_code == 200 and f'data-testid="closed-{D2.isoformat()}"' in text_of(closed)
    assert "by FIN at" in text_of(closed)


def test_exports_summary_csv_and_lines_xlsx(login_as, db, users, loan):
    client = login_as("fin")
    upload(client, hdfc_csv([neft(D2, "8884.88", "HDFCN26306258176"),
                             (D3, "=HYPERLINK(\"http://evil\")", "", "100.00", None)]))
    response = client.get(f"/reconciliation/export?what=summary&format=csv&date_from={D3}&date_to={TODAY}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:4] == ["Date", "Mode", "System payments", "System amount"]
    assert rows[-1][0] == "TOTAL" and rows[-1][rows[0].index("Bank amount")] == "8984.88"
    response = client.get("/reconciliation/export?what=bank&format=xlsx&status=ALL")
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    sheet = openpyxl.load_workbook(io.BytesIO(response.get_data())).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    header = values[1]
    narrations = [row[header.index("Narration")] for row in values[2:]]
    assert narrations[0] == "'=HYPERLINK(\"http://evil\")"  # never a formula
    assert [row[header.index("Amount")] for row in values[2:]] == [100, 8884.88]
    assert client.get("/reconciliation/export?what=bank&format=pdf").status_code == 422
    assert client.get("/reconciliation/export?what=nothing").status_code == 404


def test_unreconcile_asked_by_one_finance_user_decided_by_another(app, login_as, db, system, users, loan):
    org.create_user(db, system, username="fin2", role="finance", password="correct-horse-battery", name="FIN2")
    payment = pay(db, users["col"], "154335349840")
    first = login_as("fin")
    upload(first, hdfc_csv([upi(D2, "8884.88", "154335349840")]))
    match = db.scalar(select(ReconciliationMatch).where(ReconciliationMatch.status == "CONFIRMED"))
    line_page = text_of(first.get(f"/reconciliation/lines/{match.line_id}"))
    assert f'data-testid="unreconcile-{match.id}"' in line_page
    no_reason = post(first, f"/reconciliation/matches/{match.id}/unreconcile",
                     {"back": "line", "line_id": str(match.line_id)})
    assert no_reason.status_code == 422 and 'data-field="reason"' in text_of(no_reason)
    asked = post(first, f"/reconciliation/matches/{match.id}/unreconcile",
                 {"back": "line", "line_id": str(match.line_id), "reason": "wrong loan"})
    assert asked.status_code == 200 and "Unreconcile requested" in text_of(asked)
    request_id = re.search(r'data-request="(\d+)"', text_of(first.get("/reconciliation/unreconciles"))).group(1)
    assert "You asked for this" in text_of(first.get("/reconciliation/unreconciles"))
    own = post(first, f"/reconciliation/unreconciles/{request_id}/decide", {"action": "approve", "reason": "ok"})
    assert own.status_code == 403 and "another finance user must decide" in text_of(own)
    second = app.test_client()
    assert login(second, "fin2").status_code == 302
    decided = post(second, f"/reconciliation/unreconciles/{request_id}/decide", {"action": "approve", "reason": "ok"})
    assert decided.status_code == 200 and "approved" in text_of(decided)
    db.expire_all()
    assert db.get(Payment, payment.id).reconciled_at is None


def test_disputed_payments_are_flagged_in_reconciliation_lists(login_as, db, users, loan):
    payment = pay(db, users["col"], "111111111111")
    disputes.raise_dispute(db, users["col"], "KL1", {"category": "WRONG_AMOUNT", "description": "I paid less",
                                                     "payment": payment.reference})
    client = login_as("fin")
    upload(client, hdfc_csv([upi(D2, "8884.88", "154335349840")]))
    for url in ("/reconciliation/payments?status=UNMATCHED", "/reconciliation/matches?status=SUGGESTED"):
        html = text_of(client.get(url))
        assert payment.reference in html and 'data-testid="dispute-flag"' in html, url
    line_id = db.scalar(select(StatementLine.id))
    assert 'data-testid="dispute-flag"' in text_of(client.get(f"/reconciliation/lines/{line_id}"))


def test_booking_a_bank_credit_from_its_page(login_as, db, users, loan):
    client = login_as("fin")
    upload(client, hdfc_csv([neft(D2, "8884.88", "HDFCN26306258176")]))
    line_id = db.scalar(select(StatementLine.id))
    unknown = post(client, f"/reconciliation/lines/{line_id}/payment", {"loan_number": "NOPE1", "mode": "NEFT"})
    assert unknown.status_code == 422 and 'data-field="loan_number"' in text_of(unknown)
    booked = post(client, f"/reconciliation/lines/{line_id}/payment", {"loan_number": "KL2", "mode": "NEFT"})
    html = text_of(booked)
    assert booked.status_code == 200 and "booked on KL2 and reconciled" in html and 'data-status="MATCHED"' in html
    payment = db.scalar(select(Payment).where(Payment.utr == "HDFCN26306258176"))
    assert payment.loan.loan_number == "KL2" and payment.reconciled_at is not None


def test_queues_and_filters(login_as, db, users, loan):
    pay(db, users["col"], "111111111111", amount="100")
    client = login_as("fin")
    upload(client, hdfc_csv([imps(D3, "2368.92", "691937865764")]))
    bank = text_of(client.get("/reconciliation/lines"))
    assert "Bank credits without a payment" in bank and 'data-testid="age-0-3"' in bank and bank.count("data-line=") == 1
    system = text_of(client.get("/reconciliation/payments"))
    assert "Payments without a bank line" in system and system.count('data-payment="KP') == 1
    assert client.get("/reconciliation/lines?status=BOGUS").status_code == 422
    assert client.get("/reconciliation/?date_from=2026-13-01").status_code == 422
    assert client.get("/reconciliation/lines/999999").status_code == 404
    assert client.get("/reconciliation/statements/BSNOTHING").status_code == 404


def test_every_figure_of_the_day_grid_links_to_its_list(app, login_as, db, users, loan):
    """Each figure of the grid links to the list its column names, and that list holds as many rows as the
    figure counts; an empty figure is a dash, with no link."""
    pay(db, users["col"], "154335349840")
    pay(db, users["col"], "222222222222", amount="500.00", day=D3)
    client = login_as("fin")
    assert upload(client, hdfc_csv([upi(D2, "8884.88", "154335349840"), neft(D3, "100.00", "HDFCN26306258999")])) \
        .status_code == 204
    board = text_of(client.get("/reconciliation/"))
    links = re.findall(r'data-cell="([\w-]+)"><a href="([^"]+)">([^<]+)</a><br><small class="muted">(\d+)</small>',
                       board)
    assert {name for name, *_ in links} >= {"system", "reconciled", "system-unmatched", "bank", "matched", "unmatched"}
    with app.test_request_context():
        from flask import url_for

        expected = url_for("reconciliation.lines", status="UNMATCHED", day=D3.isoformat(), mode="NEFT")
    assert expected.replace("&", "&amp;") in board
    column_lists = {"system": ("payments", "ALL"), "reconciled": ("payments", "RECONCILED"),
                    "system-unmatched": ("payments", "UNMATCHED"), "bank": ("lines", "ALL"),
                    "matched": ("lines", "MATCHED"), "unmatched": ("lines", "UNMATCHED"),
                    "mismatches": ("lines", "MISMATCH")}
    for name, href, figure, count in links:
        href = href.replace("&amp;", "&")
        list_name, status = column_lists[name]
        assert href.startswith(f"/reconciliation/{list_name}?status={status}&day="), (name, href)
        page = text_of(client.get(href))
        rows = page.count("<tr data-payment=" if list_name == "payments" else "<tr data-line=")
        assert rows == int(count) > 0 and figure.startswith("₹"), (name, href, rows, count)
    d3_upi = board.split(f'data-day="{D3.isoformat()}"')[1].split("</tbody>")[0].split('data-mode="UPI"')[1]
    assert '<td data-label="Bank credits" class="num" data-cell="bank"><span class="muted">—</span></td>' in d3_upi
