"""Recording payments on the loan page, refusing bad ones inline, booking a double submit once, and the
maker-checker path of a backdated payment through the manager's Approvals inbox.

Each scenario has its own seeded loan (E2EPAY1…5, collector "paycol", branch PUNE01): two EMIs in arrears,
40 days past due. UTRs are unique across the whole system, so every test draws fresh random ones.
"""
from __future__ import annotations

import random
import re
from datetime import timedelta

import pytest
from playwright.sync_api import Locator, Page, expect

from e2e.conftest import login
from webapp import clock

pytestmark = pytest.mark.e2e

_random = random.SystemRandom()


def utr() -> str:
    """A fresh 12-digit UPI/IMPS reference."""
    return str(_random.randrange(10**11, 10**12))


def receipt_number() -> str:
    return f"E2E/{_random.randrange(10**8, 10**9)}"


def open_loan(page: Page, number: str) -> Locator:
    """Open the loan page and wait for HTMX to load the payment form into it."""
    page.goto(f"/loans/{number}")
    form = page.locator("form#payment-form")
    expect(form.locator("[name=amount]")).to_be_visible()
    return form


def fill_payment(form: Locator, amount: str, mode: str, reference: str = "", receipt: str = "",
                 value_date: str | None = None) -> None:
    form.locator("[name=amount]").fill(amount)
    form.locator("[name=mode]").select_option(mode)
    form.locator("[name=reference]").fill(reference)
    form.locator("[name=receipt_number]").fill(receipt)
    if value_date is not None:
        form.locator("[name=value_date]").fill(value_date)


def submit(page: Page, form: Locator, number: str):
    """Click "Record payment" and return the response to the HTMX post."""
    with page.expect_response(lambda r: r.request.method == "POST"
                              and r.url.endswith(f"/loans/{number}/payments")) as answer:
        form.locator("button[type=submit]").click()
    return answer.value


def history_rows(page: Page) -> Locator:
    # tr[data-payment]: managers also get a "request a reversal" sub-row under each posted payment.
    return page.locator("[data-testid=payment-history] tbody tr[data-payment]")


def cell(row: Locator, label: str) -> Locator:
    return row.locator(f"td[data-label='{label}']")


def test_collector_records_cash_and_upi_and_the_arrears_clear(page: Page):
    login(page, "paycol")
    form = open_loan(page, "E2EPAY1")
    expect(page.get_by_test_id("dpd")).to_have_text("40")
    expect(page.get_by_test_id("overdue")).to_have_text("₹53,309.28")  # two EMIs of ₹26,654.64
    expect(page.locator("[data-testid=payment-history]")).to_have_count(0)
    # The value date defaults to today in IST, and every form carries a one-time key.
    expect(form.locator("[name=value_date]")).to_have_value(clock.today_ist().isoformat())
    expect(form.locator("input[type=hidden][name=idempotency_key]")).to_have_value(re.compile(r"^[0-9a-f]{32}$"))
    expect(form.locator("[name=mode] option")).to_have_text(["CASH", "UPI", "NEFT", "RTGS", "IMPS", "CHEQUE"])

    # Cash for the oldest EMI, with the number of the paper receipt handed over.
    cash_receipt = receipt_number()
    fill_payment(form, "26654.64", "CASH", receipt=cash_receipt)
    assert submit(page, form, "E2EPAY1").status == 201
    receipt = page.get_by_test_id("receipt")
    expect(receipt.get_by_test_id("receipt-status")).to_have_text("POSTED")
    expect(receipt.get_by_test_id("receipt-amount")).to_have_text("₹26,654.64")
    expect(receipt).to_contain_text(cash_receipt)
    cash_reference = receipt.get_attribute("data-reference")
    assert re.fullmatch(r"KP[0-9A-Z]{10}", cash_reference or "")
    # The position above the form refreshes by itself (HX-Trigger payment-booked): one EMI still overdue.
    expect(page.get_by_test_id("overdue")).to_have_text("₹26,654.64")

    # UPI for the rest of the arrears and more: one lakh, grouped the Indian way on the receipt.
    page.click("[data-testid=receipt] a:has-text('Record another payment')")
    form = page.locator("form#payment-form")
    upi = utr()
    fill_payment(form, "100000", "UPI", reference=upi)
    assert submit(page, form, "E2EPAY1").status == 201
    receipt = page.get_by_test_id("receipt")
    expect(receipt.get_by_test_id("receipt-status")).to_have_text("POSTED")
    expect(receipt.get_by_test_id("receipt-amount")).to_have_text("₹1,00,000.00")
    expect(receipt).to_contain_text(upi)
    upi_reference = receipt.get_attribute("data-reference")
    assert upi_reference != cash_reference
    expect(page.get_by_test_id("overdue")).to_have_text("₹0.00")
    expect(page.get_by_test_id("dpd")).to_have_text("0")

    # After a reload (the server's view, not the swapped fragments): both payments, nothing overdue.
    page.reload()
    rows = history_rows(page)
    expect(rows).to_have_count(2)
    cash_row = page.locator(f"tr[data-payment={cash_reference}]")
    expect(cell(cash_row, "Amount")).to_have_text("₹26,654.64")
    expect(cell(cash_row, "Mode")).to_have_text("CASH")
    expect(cell(cash_row, "UTR / receipt")).to_have_text(cash_receipt)
    expect(cell(cash_row, "Status")).to_have_text("POSTED")
    upi_row = page.locator(f"tr[data-payment={upi_reference}]")
    expect(cell(upi_row, "Amount")).to_have_text("₹1,00,000.00")
    expect(cell(upi_row, "Mode")).to_have_text("UPI")
    expect(cell(upi_row, "UTR / receipt")).to_have_text(upi)
    expect(cell(upi_row, "Status")).to_have_text("POSTED")
    expect(page.get_by_test_id("dpd")).to_have_text("0")
    expect(page.get_by_test_id("overdue")).to_have_text("₹0.00")


def test_short_upi_reference_is_refused_inline_and_books_nothing(page: Page):
    login(page, "paycol")
    form = open_loan(page, "E2EPAY2")
    fill_payment(form, "8884.88", "UPI", reference="12345")
    assert submit(page, form, "E2EPAY2").status == 422
    form = page.locator("form#payment-form")
    expect(form.locator("small.error[data-field=reference]")).to_have_text("is not valid: a UPI reference is 12 digits")
    expect(form.locator("[name=reference]")).to_have_attribute("aria-invalid", "true")
    expect(form.locator("small.error")).to_have_count(1)  # only the reference is wrong
    # What was typed is still there to correct.
    expect(form.locator("[name=amount]")).to_have_value("8884.88")
    expect(form.locator("[name=mode]")).to_have_value("UPI")
    expect(page.get_by_test_id("receipt")).to_have_count(0)

    # Nothing was booked: the loan, opened afresh in another tab, has no payments and is still 40 days late.
    other = page.context.new_page()
    other.goto("/loans/E2EPAY2")
    expect(other.get_by_text("No payments yet.")).to_be_visible()
    expect(other.locator("[data-testid=payment-history]")).to_have_count(0)
    expect(other.get_by_test_id("dpd")).to_have_text("40")

    # Cash without its receipt number is refused next to that field, too.
    fill_payment(form, "8884.88", "CASH")
    assert submit(page, form, "E2EPAY2").status == 422
    form = page.locator("form#payment-form")
    expect(form.locator("small.error[data-field=receipt_number]")).to_have_text("is required for cash")
    expect(form.locator("small.error")).to_have_count(1)

    other.reload()
    expect(other.locator("[data-testid=payment-history]")).to_have_count(0)


def test_double_clicked_submit_books_once(page: Page):
    login(page, "paycol")
    form = open_loan(page, "E2EPAY3")
    fill_payment(form, "1111.11", "UPI", reference=utr())
    posts = []
    page.on("request", lambda r: posts.append(r) if r.method == "POST" and "/payments" in r.url else None)
    form.locator("button[type=submit]").dblclick()
    expect(page.get_by_test_id("receipt-status")).to_have_text("POSTED")
    assert posts, "the double click sent no request at all"

    page.reload()
    expect(history_rows(page).filter(has=page.locator("td[data-label=Amount]", has_text="₹1,111.11"))).to_have_count(1)


# Posts the payment form's current data (CSRF token and idempotency key included) `times` times at once.
POST_FORM_JS = """async (times) => {
    const form = document.querySelector('form#payment-form');
    const post = async () => {
        const r = await fetch(form.action, {method: 'POST', body: new FormData(form), headers: {'HX-Request': 'true'}});
        return {status: r.status, replayed: r.headers.get('Idempotent-Replayed'), body: await r.text()};
    };
    return Promise.all(Array.from({length: times}, post));
}"""


def test_two_simultaneous_posts_of_one_form_book_once(page: Page):
    """Past the button (which HTMX disables while posting): the same form data, key and all, sent twice at once."""
    login(page, "paycol")
    form = open_loan(page, "E2EPAY3")
    upi = utr()
    fill_payment(form, "2222.22", "UPI", reference=upi)
    answers = page.evaluate(POST_FORM_JS, 2)
    statuses = sorted(a["status"] for a in answers)
    # One books (201); the other replays that very answer (201, Idempotent-Replayed) or, if it arrived
    # while the first was still booking, is told to retry (409). Never a second booking, never a 5xx.
    assert statuses[0] == 201 and statuses[1] in (201, 409), answers
    if statuses == [201, 201]:
        assert answers[0]["body"] == answers[1]["body"]
        assert sorted(str(a["replayed"]) for a in answers) == ["None", "true"]

    # Sent again later, the same form gets the first answer back, byte for byte, and still books nothing.
    booked = next(a for a in answers if a["status"] == 201)
    [again] = page.evaluate(POST_FORM_JS, 1)
    assert (again["status"], again["replayed"], again["body"]) == (201, "true", booked["body"])

    page.reload()
    rows = history_rows(page).filter(has=page.locator("td[data-label=Amount]", has_text="₹2,222.22"))
    expect(rows).to_have_count(1)
    expect(cell(rows.first, "UTR / receipt")).to_have_text(upi)


def test_backdated_payment_waits_for_a_manager_who_approves_it(new_page, base_url):
    ten_days_ago = (clock.today_ist() - timedelta(days=10)).isoformat()

    # The collector records two EMIs received ten days ago: held, not posted.
    collector = new_page()
    login(collector, "paycol")
    form = open_loan(collector, "E2EPAY4")
    upi = utr()
    fill_payment(collector.locator("form#payment-form"), "17769.76", "UPI", reference=upi, value_date=ten_days_ago)
    assert submit(collector, form, "E2EPAY4").status == 202
    receipt = collector.get_by_test_id("receipt")
    expect(receipt.get_by_test_id("receipt-status")).to_have_text("PENDING APPROVAL")
    expect(receipt).to_contain_text("waits for a manager's approval")
    reference = receipt.get_attribute("data-reference")
    collector.reload()
    expect(cell(collector.locator(f"tr[data-payment={reference}]"), "Status")).to_have_text("PENDING APPROVAL")
    expect(collector.get_by_test_id("dpd")).to_have_text("40")  # a held payment does not change the loan

    # The maker cannot approve it: a collector has no Approvals link, and the inbox is forbidden.
    expect(collector.locator("nav.nav a", has_text="Approvals")).to_have_count(0)
    assert collector.goto("/approvals/").status == 403
    expect(collector.locator("h1")).to_have_text("You do not have permission to do that.")
    expect(collector.get_by_test_id("approvals")).to_have_count(0)

    # The branch manager makes a backdated entry of their own on another loan …
    manager = new_page()
    login(manager, "mgr")
    form = open_loan(manager, "E2EPAY5")
    fill_payment(form, "8884.88", "CASH", receipt=receipt_number(), value_date=ten_days_ago)
    assert submit(manager, form, "E2EPAY5").status == 202
    expect(manager.get_by_test_id("receipt-status")).to_have_text("PENDING APPROVAL")

    # … then opens Approvals: the collector's entry can be ticked, their own only says "own".
    manager.click("nav.nav a:has-text('Approvals')")
    expect(manager).to_have_url(base_url + "/approvals/")
    table = manager.get_by_test_id("approvals")
    theirs = table.locator("tbody tr").filter(has=manager.locator("td[data-label=Loan] a", has_text="E2EPAY4"))
    own = table.locator("tbody tr").filter(has=manager.locator("td[data-label=Loan] a", has_text="E2EPAY5"))
    expect(theirs).to_have_count(1)
    expect(own).to_have_count(1)
    expect(theirs.locator("input[type=checkbox][name=approval_id]")).to_have_count(1)
    expect(cell(theirs, "Amount")).to_have_text("₹17,769.76")
    expect(cell(theirs, "Maker")).to_have_text("PAYCOL")
    expect(cell(own, "Select")).to_have_text("own")
    expect(own.locator("input[name=approval_id]")).to_have_count(0)
    expect(manager.locator("textarea[name=reason]")).to_be_visible()
    expect(manager.locator("button", has_text="Approve selected")).to_be_visible()
    expect(manager.locator("button", has_text="Reject selected")).to_be_visible()

    # Forging the decision past the screen does not help: the server refuses the maker, and it stays pending.
    own_id = own.get_attribute("data-approval")
    forged = manager.evaluate("""async (id) => {
        const body = new FormData();
        body.append('csrf_token', document.querySelector('.decide-form input[name=csrf_token]').value);
        body.append('approval_id', id);
        body.append('action', 'approve');
        body.append('reason', 'approving my own entry');
        const r = await fetch('/approvals/decide', {method: 'POST', body});
        return {status: r.status, body: await r.text()};
    }""", own_id)
    assert forged["status"] == 403 and "you cannot decide an entry you made yourself" in forged["body"], forged
    manager.reload()
    expect(own).to_have_count(1)

    # Their own entry's page shows the impact but no decision buttons.
    own.locator("td[data-label='#'] a").click()
    expect(manager.get_by_test_id("impact")).to_be_visible()
    expect(manager.locator("button", has_text="Approve")).to_have_count(0)
    expect(manager.get_by_text("You made this entry")).to_be_visible()
    manager.go_back()

    # The collector's entry: the impact shows the loan going from 40 days past due to current.
    theirs.locator("td[data-label='#'] a").click()
    expect(manager).to_have_url(re.compile(r"/approvals/\d+$"))
    expect(manager.locator("h1")).to_contain_text("Backdated payment")
    expect(manager.locator("dl.facts")).to_contain_text(reference)
    expect(manager.get_by_test_id("dpd-before")).to_have_text("40")
    expect(manager.get_by_test_id("dpd-after")).to_have_text("0")
    manager.fill("textarea[name=reason]", "Bank statement shows the credit on the value date.")
    manager.click("button[name=action][value=approve]")
    expect(manager).to_have_url(base_url + "/approvals/")
    expect(table.locator("tbody tr").filter(has=manager.locator("td[data-label=Loan] a", has_text="E2EPAY4"))) \
        .to_have_count(0)

    # The loan now shows the payment posted and the arrears cleared, for the manager and the collector alike.
    for viewer in (manager, collector):
        viewer.goto("/loans/E2EPAY4")
        expect(cell(viewer.locator(f"tr[data-payment={reference}]"), "Status")).to_have_text("POSTED")
        expect(viewer.get_by_test_id("dpd")).to_have_text("0")
        expect(viewer.get_by_test_id("overdue")).to_have_text("₹0.00")

    # The decision is on record in the approved list.
    manager.goto("/approvals/?status=APPROVED")
    decided = manager.get_by_test_id("approvals").locator("tbody tr").filter(
        has=manager.locator("td[data-label=Loan] a", has_text="E2EPAY4"))
    expect(cell(decided, "Decision")).to_have_text(
        "approved by MGR: Bank statement shows the credit on the value date.")


def test_loan_page_title_is_the_loan_number(page: Page):
    # Guards a regression: loans/_history.html was once included inside {% block title %}, so the payments
    # table's HTML became the browser tab's title.
    login(page, "paycol")
    page.goto("/loans/E2EPAY2")
    assert page.title() == "E2EPAY2 · Kisht"
