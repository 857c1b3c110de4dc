"""Shadow month in the browser: finance uploads the Excel tracker, a bad row is refused by row and column,
a corrected one is compared, and the loans only the tracker knows are listed; the go/no-go board says NO-GO.

The tracker names loans E2ESHD1 and E2ESHD2, which the system does not have: they must show as
"only in the tracker", whatever else the shared e2e database holds.
"""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from e2e.conftest import login
from webapp import clock

pytestmark = pytest.mark.e2e
HEADER = ["Loan No", "Customer Name", "Branch", "Collector", "EMI", "POS (Principal O/S)", "DPD", "Bucket", "Collection Today"]


def workbook(path, rows):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = clock.last_business_date().strftime("Tracker %d-%b-%Y")
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    book.save(path)
    return str(path)


def test_finance_imports_the_tracker_and_sees_the_variance(new_page, tmp_path):
    page = new_page()
    login(page, "fin")
    page.goto("/shadow/import")
    day = clock.last_business_date().isoformat()
    page.fill("input[name=date]", day)
    bad = workbook(tmp_path / "bad.xlsx", [["E2ESHD1", "Ravi", "Pune", "col", 100, 5000.5, "ten", "Current", 0]])
    page.set_input_files("input[name=file]", bad)
    page.get_by_test_id("import-tracker").click()
    expect(page.get_by_test_id("shadow-error")).to_contain_text("row 2, DPD")
    good = workbook(tmp_path / "good.xlsx", [["E2ESHD1", "Ravi", "Pune", "col", 100, 5000.5, 10, "1-30", 0],
                                             ["E2ESHD2", "Sunita", "Pune", "col", 100, 7000, 0, "Current", 250]])
    page.fill("input[name=date]", day)
    page.set_input_files("input[name=file]", good)
    page.get_by_test_id("import-tracker").click()
    expect(page.get_by_test_id("shadow-title")).to_contain_text("Variance for")
    page.select_option("select[name=show]", "only_tracker")
    page.click("form.filters button[type=submit]")
    expect(page.locator("[data-loan]")).to_have_count(2)
    expect(page.locator('[data-loan="E2ESHD1"]')).to_have_attribute("data-differs", "only_tracker")
    expect(page.get_by_test_id("only-tracker")).to_have_text("2")
    page.goto("/shadow/")
    expect(page.get_by_test_id("trend-chart")).to_be_visible()
    page.goto("/golive/")
    expect(page.get_by_test_id("decision")).to_contain_text("NO-GO")
