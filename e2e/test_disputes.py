"""A collector raises a dispute with a photo from the loan page; the branch manager reviews and upholds it.
The loan carries the dispute flag while the dispute is open and loses it once resolved.

Loan E2EDSP1 (collector "dspcol", branch PUNE01) is used by this file only.
"""
from __future__ import annotations

import re
import struct
import zlib

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import login

pytestmark = pytest.mark.e2e

LOAN = "E2EDSP1"


def tiny_png() -> bytes:
    """A real 2 × 2 PNG (RGB), built by hand: signature, IHDR, IDAT, IEND, each chunk with its CRC."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    pixels = b"".join(b"\x00" + b"\xff\x99\x33" * 2 for _ in range(2))  # filter byte + two orange pixels a row
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(pixels)) + chunk(b"IEND", b""))


def heading_flag(page: Page):
    return page.locator("h1 [data-testid=dispute-flag]")


def row_flag(page: Page):
    return page.locator(f"#loan-table tr[data-loan={LOAN}] [data-testid=dispute-flag]")


def test_collector_raises_a_dispute_with_a_photo_and_the_manager_upholds_it(new_page, base_url):
    photo = tiny_png()

    # Before: no flag on the worklist or the loan page.
    collector = new_page()
    login(collector, "dspcol")
    expect(collector.locator(f"#loan-table tr[data-loan={LOAN}]")).to_have_count(1)
    expect(row_flag(collector)).to_have_count(0)
    collector.goto(f"/loans/{LOAN}")
    expect(heading_flag(collector)).to_have_count(0)
    expect(collector.locator("#loan-disputes")).to_contain_text("No disputes.")

    # The collector raises a dispute from the loan page, attaching the photo of the borrower's receipt.
    collector.click("[data-testid=raise-dispute]")
    expect(collector).to_have_url(f"{base_url}/loans/{LOAN}/disputes/new")
    form = collector.locator("form#dispute-form")
    form.locator("[name=category]").select_option("CHARGES")
    form.locator("[name=description]").fill("A bounce charge was levied although the cheque was honoured.")
    form.locator("input[name=evidence]").set_input_files(
        files=[{"name": "receipt.png", "mimeType": "image/png", "buffer": photo}])
    with collector.expect_response(lambda r: r.request.method == "POST"
                                   and r.url.endswith(f"/loans/{LOAN}/disputes")) as answer:
        form.locator("button[type=submit]").click()
    assert answer.value.status == 204  # HX-Redirect to the new dispute's page
    expect(collector).to_have_url(re.compile(r"/disputes/KD[0-9A-Z]{10}$"))
    reference = collector.url.rsplit("/", 1)[-1]
    expect(collector.get_by_test_id("dispute-status")).to_have_text("OPEN")
    expect(collector.get_by_test_id("dispute-category")).to_have_text("Charges")
    evidence = collector.get_by_test_id("evidence").locator("tbody tr")
    expect(evidence).to_have_count(1)
    expect(evidence.locator("td[data-label=File]")).to_have_text("receipt.png")
    expect(evidence.locator("td[data-label=Type]")).to_have_text("image/png")
    expect(collector.locator("button", has_text="Start review")).to_have_count(0)  # not the collector's to review

    # The photo comes back byte for byte, as the stored type, through the scoped route only.
    href = evidence.locator("td[data-label=File] a").get_attribute("href")
    download = collector.request.get(href)
    assert download.status == 200 and download.body() == photo
    assert download.headers["content-type"] == "image/png" and download.headers["x-content-type-options"] == "nosniff"
    outsider = new_page()
    login(outsider, "col2")  # NSK01: neither the loan nor its evidence exists for them
    assert outsider.request.get(href).status == 404

    # While open, the loan is flagged on the collector's worklist and on the loan page.
    collector.goto(f"/loans/{LOAN}")
    expect(heading_flag(collector)).to_have_count(1)
    expect(collector.locator(f"#loan-disputes tr[data-dispute={reference}]")).to_contain_text("OPEN")
    collector.goto("/collector/")
    expect(row_flag(collector)).to_have_count(1)

    # The branch manager sees it on the home screen (flag and age band), opens it from the Disputes queue …
    manager = new_page()
    login(manager, "mgr")
    expect(row_flag(manager)).to_have_count(1)
    expect(manager.get_by_test_id("dispute-band-0-7").locator(".card-figure")).to_have_text("1")
    manager.click("nav.nav a:has-text('Disputes')")
    expect(manager).to_have_url(base_url + "/disputes/")
    row = manager.locator(f"[data-testid=disputes] tr[data-dispute={reference}]")
    expect(row).to_contain_text("you can review")
    row.locator("td[data-label=Dispute] a").click()
    expect(manager).to_have_url(f"{base_url}/disputes/{reference}")

    # … starts the review and upholds it with a note.
    manager.click("button:has-text('Start review')")
    expect(manager.get_by_test_id("dispute-status")).to_have_text("UNDER REVIEW")
    resolve = manager.locator("form#resolve-form")
    resolve.locator("input[name=outcome][value=UPHELD]").check()
    resolve.locator("[name=note]").fill("Cheque was honoured on presentation; the charge is reversed in the books.")
    resolve.locator("button[type=submit]").click()
    expect(manager.get_by_test_id("dispute-status")).to_have_text("RESOLVED UPHELD")
    expect(manager.get_by_test_id("dispute-resolution")).to_contain_text("Upheld by MGR")
    expect(manager.get_by_test_id("resolved-note")).to_contain_text("can no longer change")
    expect(manager.locator("form#resolve-form")).to_have_count(0)
    expect(manager.get_by_test_id("timeline").locator("li")).to_have_count(4)
    expect(manager.get_by_test_id("timeline").locator("li strong")).to_have_text(
        ["Raised", "Evidence added", "Review started", "Resolved: upheld"])

    # After: the flag is gone everywhere.
    manager.goto(f"/loans/{LOAN}")
    expect(heading_flag(manager)).to_have_count(0)
    expect(manager.locator(f"#loan-disputes tr[data-dispute={reference}]")).to_contain_text("RESOLVED UPHELD")
    manager.goto("/manager/")
    expect(row_flag(manager)).to_have_count(0)
    expect(manager.get_by_test_id("dispute-band-0-7").locator(".card-figure")).to_have_text("0")
    collector.goto(f"/loans/{LOAN}")
    expect(heading_flag(collector)).to_have_count(0)
    collector.goto("/collector/")
    expect(row_flag(collector)).to_have_count(0)
