"""The dispute screens over HTTP: raising with evidence from the loan page and per payment, refusals in the
form, evidence downloads and their scope, the flags on every list, the queue, review and resolution."""
from __future__ import annotations

import hashlib
import io
import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from tests.conftest import csrf_token
from tests.disputes_support import EXE, TEXT, evidence_dir, pay, pdf, png, standard_loan  # noqa: F401
from webapp import clock
from webapp.models import Approval, AuditEntry, Dispute
from webapp.services import approvals, disputes

TOKEN_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
HX = {"HX-Request": "true"}


@pytest.fixture()
def loan(make_loan):
    return make_loan(loan_number="KL1")  # PUNE01, collector col


def post_dispute(client, number="KL1", files=(), headers=None, **fields):
    html = client.get(f"/loans/{number}/disputes/new").get_data(as_text=True)
    data = {"csrf_token": TOKEN_RE.search(html).group(1), "category": "PAYMENT_NOT_CREDITED",
            "description": "Paid ₹1,000 by UPI on the 3rd; not credited.", "payment": "", "supersedes": "", **fields}
    data["evidence"] = [(io.BytesIO(content), name, content_type) for name, content, content_type in files]
    return client.post(f"/loans/{number}/disputes", data=data, content_type="multipart/form-data",
                       headers=headers or {})


def only_dispute(db) -> Dispute:
    db.expire_all()
    return db.scalars(select(Dispute)).unique().one()


def flags(html: str) -> int:
    return html.count('data-testid="dispute-flag"')


def start_and_resolve(client, reference, outcome="UPHELD", note="Checked with the bank.", **extra):
    token = csrf_token(client, f"/disputes/{reference}")
    assert client.post(f"/disputes/{reference}/review", data={"csrf_token": token}).status_code == 302
    return client.post(f"/disputes/{reference}/resolve",
                       data={"csrf_token": token, "outcome": outcome, "note": note, **extra})


def test_collector_raises_a_dispute_with_a_photo_from_the_loan_page(login_as, db, loan):
    collector = login_as("col")
    page = collector.get("/loans/KL1").get_data(as_text=True)
    assert 'href="/loans/KL1/disputes/new"' in page and 'data-testid="raise-dispute"' in page
    form = collector.get("/loans/KL1/disputes/new").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in form and 'name="evidence"' in form
    for name in ("status", "reviewer_id", "resolved_by", "resolution_note"):
        assert f'name="{name}"' not in form  # nothing the service decides is on the form
    photo, statement = png(), pdf()
    # The browser's content types lie on purpose: only the content decides.
    response = post_dispute(collector, files=[("receipt.png", photo, "application/octet-stream"),
                                              ("statement.pdf", statement, "image/png")], headers=HX)
    dispute = only_dispute(db)
    assert response.status_code == 204 and response.headers["HX-Redirect"] == f"/disputes/{dispute.reference}"
    assert [(e.original_name, e.content_type) for e in dispute.evidence] == [
        ("receipt.png", "image/png"), ("statement.pdf", "application/pdf")]
    html = collector.get(f"/disputes/{dispute.reference}").get_data(as_text=True)
    assert 'data-testid="dispute-status">OPEN<' in html and "receipt.png" in html
    assert 'data-action="dispute.raised"' in html and html.count('data-action="dispute.evidence_added"') == 2
    assert "Start review" not in html  # a collector does not review
    image = collector.get(f"/disputes/{dispute.reference}/evidence/{dispute.evidence[0].id}")
    assert image.status_code == 200 and image.data == photo and image.mimetype == "image/png"
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    assert image.headers["X-Evidence-SHA256"] == hashlib.sha256(photo).hexdigest()
    assert image.headers["Content-Disposition"].startswith("inline")
    assert "sandbox" in image.headers["Content-Security-Policy"]
    document = collector.get(f"/disputes/{dispute.reference}/evidence/{dispute.evidence[1].id}")
    assert document.data == statement and document.mimetype == "application/pdf"
    assert document.headers["Content-Disposition"].startswith("attachment")
    assert not any(part in "".join(image.headers.values()) for part in (dispute.evidence[0].stored_name,))


def test_per_payment_link_raises_a_dispute_about_that_payment(login_as, db, loan):
    payment = pay(db, db.merge(loan.collector), "KL1")
    collector = login_as("col")
    page = collector.get("/loans/KL1").get_data(as_text=True)
    link = f"/loans/KL1/disputes/new?payment={payment.reference}"
    assert link in page
    form = collector.get(link).get_data(as_text=True)
    assert f'<option selected value="{payment.reference}">' in form
    response = post_dispute(collector, payment=payment.reference, category="WRONG_AMOUNT")
    assert response.status_code == 302
    assert only_dispute(db).payment_id == payment.id


@pytest.mark.parametrize("name, content", [("invoice.png", EXE), ("statement.pdf", TEXT)])
def test_a_disguised_file_comes_back_in_the_form(login_as, db, loan, name, content):
    collector = login_as("col")
    response = post_dispute(collector, files=[(name, content, "image/png")], headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and 'id="dispute-form"' in html and "<html" not in html
    assert f"{name}: is not a PDF, JPEG or PNG file" in html and 'data-field="evidence"' in html
    assert "Choose the evidence files again." in html
    assert "Paid ₹1,000 by UPI on the 3rd; not credited." in html  # what was typed is kept
    assert db.scalar(select(Dispute.id)) is None


def test_field_errors_and_an_oversized_file(login_as, db, loan, app, monkeypatch):
    monkeypatch.setitem(app.config, "EVIDENCE_MAX_BYTES", 1000)
    collector = login_as("col")
    response = post_dispute(collector, category="", description="",
                            files=[("big.png", png(100, 100) + b"\x00" * 2000, "image/png")], headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    for field in ("category", "description", "evidence"):
        assert f'data-field="{field}"' in html
    assert "big.png: is larger than 1000 bytes" in html
    assert db.scalar(select(Dispute.id)) is None


def test_a_request_bigger_than_the_upload_limit_is_refused(login_as, db, loan, app, monkeypatch):
    collector = login_as("col")
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 4096)
    response = post_dispute(collector, files=[("huge.png", png() + b"\x00" * 8192, "image/png")])
    assert response.status_code == 413 and "The upload is too large." in response.get_data(as_text=True)
    assert db.scalar(select(Dispute.id)) is None


def test_evidence_urls_outside_scope_are_not_found(login_as, db, loan):
    collector = login_as("col")
    post_dispute(collector, files=[("receipt.png", png(), "image/png")])
    dispute = only_dispute(db)
    url = f"/disputes/{dispute.reference}/evidence/{dispute.evidence[0].id}"
    for username in ("col2", "mgr2"):
        other = login_as(username)
        assert other.get(url).status_code == 404
        assert other.get(f"/disputes/{dispute.reference}").status_code == 404
    assert login_as("adm").get(url).status_code == 403
    assert login_as("mgr").get(url).status_code == 200
    assert collector.get(f"/disputes/{dispute.reference}/evidence/0").status_code == 404
    assert collector.get(f"/disputes/KD0000000000/evidence/{dispute.evidence[0].id}").status_code == 404


def test_a_tampered_file_is_not_served_and_the_incident_is_audited(login_as, db, loan, evidence_dir, app):
    collector = login_as("col")
    post_dispute(collector, files=[("receipt.png", png(), "image/png")])
    dispute = only_dispute(db)
    item = dispute.evidence[0]
    (evidence_dir / item.stored_name[:2] / item.stored_name).write_bytes(png(3, 3))
    response = collector.get(f"/disputes/{dispute.reference}/evidence/{item.id}")
    assert response.status_code == 500 and "no longer matches the checksum" in response.get_data(as_text=True)
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "dispute.evidence_integrity_failed"))
    assert entry is not None and json.loads(entry.after)["attempted"]["evidence_id"] == item.id


def test_open_disputes_are_flagged_on_every_list_and_page(login_as, db, users, loan, make_loan):
    make_loan(loan_number="KL2", borrower_phone="9000000007")
    payment = pay(db, users["col"], "KL1")
    approvals.request_reversal(db, users["fin"], payment.reference, {"amount": "10", "reason": "DUPLICATE"})
    collector = login_as("col")
    for url in ("/collector/", "/loans/KL1"):
        assert flags(collector.get(url).get_data(as_text=True)) == 0
    post_dispute(collector, payment=payment.reference)
    worklist = collector.get("/collector/").get_data(as_text=True)
    assert flags(worklist) == 1
    assert re.search(r'<tr data-loan="KL1">(?:(?!</tr>).)*dispute-flag', worklist, re.S)
    page = collector.get("/loans/KL1").get_data(as_text=True)
    assert flags(page) == 2  # the loan's heading, and the payment in the history
    assert re.search(rf'<tr data-payment="{payment.reference}">(?:(?!</tr>).)*dispute-flag', page, re.S)
    manager = login_as("mgr")
    for url in ("/manager/", "/loans/"):
        assert flags(manager.get(url).get_data(as_text=True)) == 1, url
    inbox = manager.get("/approvals/").get_data(as_text=True)
    approval_id = db.scalar(select(Approval.id))
    assert re.search(rf'<tr data-approval="{approval_id}">(?:(?!</tr>).)*dispute-flag', inbox, re.S)
    assert flags(login_as("fin").get("/finance/").get_data(as_text=True)) == 1


def test_loan_list_flags_cost_the_same_queries_for_one_or_many_disputes(login_as, db, users, app, make_loan):
    for n in range(6):
        make_loan(loan_number=f"KLQ{n}", borrower_phone=f"900000010{n}")
    finance = login_as("fin")

    def statements_for(url):
        seen = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        engine = app.extensions["kisht.engine"]
        event.listen(engine, "before_cursor_execute", listener)
        try:
            assert finance.get(url).status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        return len([s for s in seen if "disputes" in s])

    disputes.raise_dispute(db, users["col"], "KLQ0", {"category": "CHARGES", "description": "x"})
    one = statements_for("/loans/")
    for n in range(1, 6):
        disputes.raise_dispute(db, users["col"], f"KLQ{n}", {"category": "CHARGES", "description": "x"})
    assert statements_for("/loans/") == one == 1
    assert flags(finance.get("/loans/").get_data(as_text=True)) == 6


def test_manager_reviews_and_upholds_and_the_flag_goes(login_as, db, loan):
    post_dispute(login_as("col"), files=[("receipt.png", png(), "image/png")])
    dispute = only_dispute(db)
    manager = login_as("mgr")
    assert flags(manager.get("/manager/").get_data(as_text=True)) == 1
    html = manager.get(f"/disputes/{dispute.reference}").get_data(as_text=True)
    assert "Start review" in html and 'id="resolve-form"' not in html
    token = csrf_token(manager, f"/disputes/{dispute.reference}")
    assert manager.post(f"/disputes/{dispute.reference}/review", data={"csrf_token": token}).status_code == 302
    html = manager.get(f"/disputes/{dispute.reference}").get_data(as_text=True)
    assert 'id="resolve-form"' in html and "UNDER REVIEW" in html
    no_note = manager.post(f"/disputes/{dispute.reference}/resolve",
                           data={"csrf_token": token, "outcome": "UPHELD", "note": ""}, headers=HX)
    fragment = no_note.get_data(as_text=True)
    assert no_note.status_code == 422 and 'id="resolve-panel"' in fragment and 'data-field="note"' in fragment
    assert "<html" not in fragment
    done = manager.post(f"/disputes/{dispute.reference}/resolve", headers=HX,
                        data={"csrf_token": token, "outcome": "UPHELD", "note": "Receipt matches the cash book."})
    assert done.status_code == 204 and done.headers["HX-Redirect"] == f"/disputes/{dispute.reference}"
    html = manager.get(f"/disputes/{dispute.reference}").get_data(as_text=True)
    assert "RESOLVED UPHELD" in html and 'data-testid="resolved-note"' in html
    assert "Receipt matches the cash book." in html and 'data-action="dispute.resolved_upheld"' in html
    assert f"supersedes={dispute.reference}" in html
    assert flags(manager.get("/manager/").get_data(as_text=True)) == 0
    assert flags(manager.get("/loans/KL1").get_data(as_text=True)) == 0


def test_upheld_payment_dispute_creates_a_reversal_request_from_the_screen(login_as, db, users, loan):
    payment = pay(db, users["col"], "KL1", amount="1500")
    post_dispute(login_as("col"), payment=payment.reference, category="WRONG_LOAN")
    dispute = only_dispute(db)
    manager = login_as("mgr")
    response = start_and_resolve(manager, dispute.reference, note="Belongs to another loan.", reversal="y",
                                 reversal_amount="", reversal_reason="WRONG_LOAN")
    assert response.status_code == 302
    dispute = only_dispute(db)
    assert dispute.reversal_approval.status == "PENDING" and dispute.reversal_approval.maker_id == users["mgr"].id
    html = manager.get(f"/disputes/{dispute.reference}").get_data(as_text=True)
    assert f'href="/approvals/{dispute.reversal_approval_id}"' in html
    assert 'data-action="dispute.reversal_requested"' in html
    finance = login_as("fin")
    finance_inbox = finance.get("/approvals/").get_data(as_text=True)
    assert f'value="{dispute.reversal_approval_id}"' in finance_inbox  # another person decides it
    detail = finance.get(f"/approvals/{dispute.reversal_approval_id}").get_data(as_text=True)
    assert f'href="/disputes/{dispute.reference}"' in detail and "Belongs to another loan." in detail


def test_who_may_review_and_what_the_screens_offer(login_as, db, loan):
    manager = login_as("mgr")
    post_dispute(manager)
    dispute = only_dispute(db)
    html = manager.get(f"/disputes/{dispute.reference}").get_data(as_text=True)
    assert "Start review" not in html and "you raised this dispute" in html
    token = csrf_token(manager, f"/disputes/{dispute.reference}")
    refused = manager.post(f"/disputes/{dispute.reference}/review", data={"csrf_token": token})
    assert refused.status_code == 403 and "you raised this dispute" in refused.get_data(as_text=True)
    collector = login_as("col")
    token = csrf_token(collector, f"/disputes/{dispute.reference}")
    assert collector.post(f"/disputes/{dispute.reference}/review", data={"csrf_token": token}).status_code == 403
    assert only_dispute(db).status == "OPEN"


def test_a_resolved_dispute_refuses_changes_with_the_reason(login_as, db, loan):
    post_dispute(login_as("col"))
    dispute = only_dispute(db)
    assert start_and_resolve(login_as("mgr"), dispute.reference, outcome="REJECTED").status_code == 302
    collector = login_as("col")
    token = csrf_token(collector, f"/disputes/{dispute.reference}")
    response = collector.post(f"/disputes/{dispute.reference}/evidence", content_type="multipart/form-data",
                              data={"csrf_token": token, "evidence": [(io.BytesIO(png()), "late.png", "image/png")]})
    html = response.get_data(as_text=True)
    assert response.status_code == 409 and "was resolved (rejected)" in html and "supersedes it" in html
    assert db.scalar(select(AuditEntry.id).where(AuditEntry.action == "dispute.change_refused")) is not None
    assert not only_dispute(db).evidence
    # New information: a new dispute that supersedes the old one, from the link on the resolved page.
    form = collector.get(f"/loans/KL1/disputes/new?supersedes={dispute.reference}").get_data(as_text=True)
    assert 'data-testid="supersedes"' in form
    assert post_dispute(collector, supersedes=dispute.reference, description="New bank advice.").status_code == 302
    newer = db.scalars(select(Dispute).where(Dispute.supersedes_id == dispute.id)).unique().one()
    assert f"/disputes/{newer.reference}" in collector.get(f"/disputes/{dispute.reference}").get_data(as_text=True)


def test_evidence_can_be_added_to_an_open_dispute(login_as, db, loan):
    collector = login_as("col")
    post_dispute(collector)
    dispute = only_dispute(db)
    token = csrf_token(collector, f"/disputes/{dispute.reference}")
    bad = collector.post(f"/disputes/{dispute.reference}/evidence", content_type="multipart/form-data", headers=HX,
                         data={"csrf_token": token, "evidence": [(io.BytesIO(EXE), "x.png", "image/png")]})
    assert bad.status_code == 422 and 'id="evidence-form"' in bad.get_data(as_text=True)
    good = collector.post(f"/disputes/{dispute.reference}/evidence", content_type="multipart/form-data",
                          data={"csrf_token": token, "evidence": [(io.BytesIO(pdf()), "advice.pdf", "text/plain")]})
    assert good.status_code == 302
    assert [e.content_type for e in only_dispute(db).evidence] == ["application/pdf"]


def test_the_queue_filters_and_swaps_its_table(login_as, db, users, loan):
    disputes.raise_dispute(db, users["col"], "KL1", {"category": "CHARGES", "description": "Bounce charge twice."})
    disputes.raise_dispute(db, users["col"], "KL1", {"category": "WRONG_AMOUNT", "description": "Short by ₹100."})
    manager = login_as("mgr")
    html = manager.get("/disputes/").get_data(as_text=True)
    assert 'data-testid="disputes-title"' in html and html.count("<tr data-dispute=") == 2
    assert "you can review" in html
    fragment = manager.get("/disputes/?category=CHARGES", headers=HX).get_data(as_text=True)
    assert fragment.startswith('\n<div id="dispute-table">') or '<div id="dispute-table">' in fragment[:200]
    assert "<html" not in fragment and fragment.count("<tr data-dispute=") == 1
    assert manager.get("/disputes/?status=RESOLVED_UPHELD").get_data(as_text=True).count("<tr data-dispute=") == 0
    assert manager.get("/disputes/?age=0-7&per_page=1").get_data(as_text=True).count("<tr data-dispute=") == 1
    assert manager.get("/disputes/?age=forever").status_code == 422
    assert login_as("mgr2").get("/disputes/").get_data(as_text=True).count("<tr data-dispute=") == 0
    assert login_as("adm").get("/disputes/").status_code == 403


def test_manager_home_shows_open_disputes_by_age_with_overdue_highlighted(login_as, db, users, loan, monkeypatch):
    long_ago = clock.now() - timedelta(days=40)
    with monkeypatch.context() as patch:
        patch.setattr(clock, "now", lambda: long_ago)
        old = disputes.raise_dispute(db, users["col"], "KL1", {"category": "CHARGES", "description": "Old one."})
    disputes.raise_dispute(db, users["col"], "KL1", {"category": "OTHER", "description": "New one."})
    html = login_as("mgr").get("/manager/").get_data(as_text=True)
    assert 'data-testid="dispute-ageing"' in html
    overdue = re.search(r'<a class="card([^"]*)" href="/disputes/\?age=overdue" data-testid="dispute-band-overdue">'
                        r'\s*<div class="card-title">[^<]*</div>\s*<div class="card-figure">(\d+)</div>', html)
    assert overdue and overdue.group(2) == "1" and "card-overdue" in overdue.group(1)
    assert re.search(r'data-testid="dispute-band-0-7">\s*<div class="card-title">[^<]*</div>\s*'
                     r'<div class="card-figure">1</div>', html)
    assert re.search(rf'<tr data-dispute="{old.reference}" class="overdue">', html)


def test_legal_sees_a_conduct_complaint_loan_and_resolves_it(login_as, db, standard_loan):
    legal = login_as("leg")
    assert "KLSTD" not in legal.get("/legal/").get_data(as_text=True)
    assert legal.get("/loans/KLSTD").status_code == 404
    post_dispute(login_as("col"), number="KLSTD", category="CONDUCT_COMPLAINT",
                 description="Agent visited at 21:00 and shouted at the borrower's family.")
    dispute = only_dispute(db)
    home = legal.get("/legal/").get_data(as_text=True)
    assert '<tr data-loan="KLSTD">' in home and flags(home) == 1
    assert dispute.reference in legal.get("/disputes/").get_data(as_text=True)
    manager = login_as("mgr")
    assert "Start review" not in manager.get(f"/disputes/{dispute.reference}").get_data(as_text=True)
    assert start_and_resolve(legal, dispute.reference, outcome="UPHELD", note="Agent warned; visit log checked.") \
        .status_code == 302
    assert only_dispute(db).status == "RESOLVED_UPHELD"
    assert '<tr data-loan="KLSTD">' in legal.get("/legal/").get_data(as_text=True)  # stays in legal's scope


@pytest.mark.parametrize("username, shown", [("col", True), ("mgr", True), ("fin", True), ("leg", True),
                                             ("adm", False)])
def test_disputes_link_in_the_navigation(login_as, username, shown):
    html = login_as(username).get("/", follow_redirects=True).get_data(as_text=True)
    assert ('href="/disputes/">Disputes</a>' in html) is shown
