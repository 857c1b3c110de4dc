"""Tracker import and variance: a tracker that differs in known ways shows exactly those variances."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from tests.shadow.conftest import D, system_rows, tracker_xlsx
from webapp.errors import Forbidden, ValidationError
from webapp.models import AuditEntry, ShadowImport, ShadowRow
from webapp.services import shadow


def _import(db, user, data, day=D):
    return shadow.import_tracker(db, user, data=data, filename="tracker.xlsx", business_date=day.isoformat(), layout="EXCEL_V1")


def test_a_tracker_equal_to_the_system_converges(db, users, portfolio):
    rows = system_rows(db)
    assert set(rows) == {"KL1", "KL2", "KL3"}
    result = _import(db, users["fin"], tracker_xlsx(rows.values()))
    c = result.comparison
    assert (c.dayend_ran, c.outstanding_ok, c.collections_ok, c.buckets_ok, c.dpd_ok, c.converged) == (True,) * 6
    assert c.system_outstanding_paise == c.tracker_outstanding_paise
    assert c.system_collections_paise == c.tracker_collections_paise == portfolio["KL2"].emi_paise


def test_known_differences_show_exactly(db, users, portfolio):
    rows = system_rows(db)
    emi = portfolio["KL1"].emi_paise
    system_outstanding = sum(round(r[1] * 100) for r in rows.values())
    rows["KL1"][1] = round(rows["KL1"][1] + 1000, 2)  # ₹1,000 more outstanding in the tracker
    rows["KL2"][2] += 3  # three more days past due, same bucket
    rows["KL2"][4] = round(rows["KL2"][4] - 100, 2)  # ₹100 less collected (1.1 %)
    del rows["KL3"]  # only in the system
    rows["KLX9"] = ["KLX9", 500.0, 0, "Current", 0]  # only in the tracker
    result = _import(db, users["fin"], tracker_xlsx(rows.values()))
    v = shadow.variance(db, result.shadow_import)
    assert v.system_outstanding == system_outstanding
    kl3 = next(d for d in v.loans if d.loan_number == "KL3").system_outstanding
    assert v.tracker_outstanding == system_outstanding - kl3 + 100000 + 50000
    assert (v.system_collections, v.tracker_collections) == (emi, emi - 10000)
    assert not v.collections_ok and not v.outstanding_ok
    assert v.dpd_max == 3 and v.dpd_mean == Decimal("1.50") and not v.dpd_ok
    assert (v.only_system, v.only_tracker) == (1, 1)
    assert dict((label, (s, t)) for label, s, t in v.buckets) == {
        "Current": (1, 2), "1-30": (0, 0), "31-60": (0, 0), "61-90": (0, 0), "NPA": (2, 1)}
    assert not v.buckets_ok and not v.converged
    differing = {d.loan_number: d.differs for d in shadow.filtered(v.loans, "differs", "")}
    assert differing == {"KL1": ["outstanding"], "KL2": ["dpd", "collection"], "KL3": ["only_system"],
                         "KLX9": ["only_tracker"]}
    assert [d.loan_number for d in shadow.filtered(v.loans, "dpd", "")] == ["KL2"]
    assert [d.loan_number for d in shadow.filtered(v.loans, "all", "KL1")] == ["KL1"]
    title, header, exported = shadow.export_rows(db, users["fin"], D.isoformat(), {"show": "outstanding"})
    assert [r[0] for r in exported] == ["KL1"] and exported[0][6] == Decimal("-1000.00")


def test_reimport_makes_a_new_version_and_keeps_the_old(db, users, portfolio):
    rows = system_rows(db)
    first = _import(db, users["fin"], tracker_xlsx(list(rows.values())[:2]))
    second = _import(db, users["fin"], tracker_xlsx(rows.values()))
    assert (first.shadow_import.version, second.shadow_import.version, second.replaced_version) == (1, 2, 1)
    assert shadow.current_import(db, D).id == second.shadow_import.id
    assert db.scalar(select(func.count()).select_from(ShadowRow).where(ShadowRow.import_id == first.shadow_import.id)) == 2
    entries = db.scalars(select(AuditEntry).where(AuditEntry.action == "shadow.tracker_imported")).all()
    assert len(entries) == 2 and '"replaces_version":1' in entries[-1].after


@pytest.mark.parametrize("cells, field, problem", [
    (("KL1", "12,34.5x", 0, "Current", 0), "row 2, POS (Principal O/S)", "is not a number"),
    (("KL1", 100.123, 0, "Current", 0), "row 2, POS (Principal O/S)", "more than 2 decimal places"),
    (("KL1", 100, -4, "Current", 0), "row 2, DPD", "0 or more"),
    (("KL1", 100, 2.5, "Current", 0), "row 2, DPD", "whole number"),
    (("KL1", 100, 0, "Overdue", 0), "row 2, Bucket", "not a bucket"),
    (("", 100, 0, "Current", 0), "row 2, Loan No", "is required"),
    (("KL1", 100, 0, "Current", -5), "row 2, Collection Today", "greater than zero"),
])
def test_a_bad_cell_is_named_by_row_and_column_and_nothing_is_written(db, users, cells, field, problem):
    with pytest.raises(ValidationError) as refused:
        _import(db, users["fin"], tracker_xlsx([cells]))
    assert problem in refused.value.fields[field]
    assert db.scalar(select(func.count()).select_from(ShadowImport)) == 0


def test_file_level_refusals(db, users):
    fin = users["fin"]
    cases = [
        (b"Loan No,DPD\nKL1,3\n", D, "file", "not an .xlsx"),
        (tracker_xlsx([("KL1", 1, 0, "Current", 0)], title="Sheet9", extra_sheets=["Other"]), D, "file", "sheets are"),
        (tracker_xlsx([("KL1", 1, 0, "Current", 0)], header=["Loan No", "DPD"]), D, "file", "has no column"),
        (tracker_xlsx([("KL1", 1, 0, "Current", 0)]), D.replace(year=2027), "date", "must be before"),
        (tracker_xlsx([("KL1", 1, 0, "Current", 0), ("kl1 ", 2, 0, "Current", 0)]), D, "row 3, Loan No", "already on row 2"),
    ]
    for data, day, field, problem in cases:
        with pytest.raises(ValidationError) as refused:
            _import(db, fin, data, day)
        assert problem in refused.value.fields[field], (field, refused.value.fields)
    with pytest.raises(ValidationError) as refused:
        shadow.import_tracker(db, fin, data=tracker_xlsx([]), filename="t.xlsx", business_date="18-06-2026", layout="")
    assert "date" in refused.value.fields
    with pytest.raises(ValidationError) as refused:
        shadow.import_tracker(db, fin, data=tracker_xlsx([]), filename="t.xlsx", business_date=D.isoformat(), layout="NOPE")
    assert "layout" in refused.value.fields
    assert db.scalar(select(func.count()).select_from(ShadowImport)) == 0


def test_the_sample_tracker_layout_reads(db, users):
    from pathlib import Path

    sample = Path("/work/shared/samples/excel-tracker-layout.xlsx")
    if not sample.exists():
        pytest.skip("sample not present")
    from datetime import date

    from webapp.tracker_layouts import TRACKER_LAYOUTS

    parsed = shadow.parse_tracker(sample.read_bytes(), TRACKER_LAYOUTS["EXCEL_V1"], date(2026, 11, 27))
    assert parsed.sheet == "Tracker 27-Nov-2026" and len(parsed.lines) == 10
    assert parsed.lines[0].outstanding_paise == 8464090 and parsed.lines[0].bucket == "NPA"


def test_only_finance_and_admin_import(db, users):
    for name in ("mgr", "col", "leg"):
        with pytest.raises(Forbidden):
            _import(db, users[name], tracker_xlsx([("KL1", 1, 0, "Current", 0)]))


def test_the_template_reads_back(db, users):
    from webapp.tracker_layouts import TRACKER_LAYOUTS
    from webapp import clock

    data = shadow.template_xlsx("EXCEL_V1")
    parsed = shadow.parse_tracker(data, TRACKER_LAYOUTS["EXCEL_V1"], clock.last_business_date())
    assert [l.loan_number for l in parsed.lines] == ["KL0001"]


def test_convergence_streak_and_issue_log(db, users, portfolio):
    from jobs.dayend import run_dayend
    from datetime import timedelta

    day2 = D + timedelta(days=1)
    assert run_dayend(day2).status == "SUCCEEDED"
    _import(db, users["fin"], tracker_xlsx(system_rows(db).values()))
    _import(db, users["fin"], tracker_xlsx(system_rows(db, day2).values(), day2), day2)
    assert shadow.converged_streak(db)[0] == 2
    rows = system_rows(db, day2)
    rows["KL2"][2] += 1
    _import(db, users["fin"], tracker_xlsx(rows.values(), day2), day2)
    assert shadow.converged_streak(db)[0] == 0
    board = shadow.dashboard(db, users["mgr"], {"date_from": D.isoformat(), "date_to": day2.isoformat()})
    assert [d.converged for d in board.days] == [False, True]
    assert board.chart["marks"][0]["state"] == "pass" and board.chart["marks"][1]["state"] == "fail"
    issue = shadow.raise_issue(db, users["fin"], {"business_date": day2.isoformat(), "loan_number": "KL2", "kind": "DPD",
                                                  "title": "KL2 DPD one day apart", "assignee": "adm"})
    assert issue.status == "OPEN" and issue.assignee.username == "adm"
    with pytest.raises(ValidationError) as refused:
        shadow.update_issue(db, users["fin"], issue.id, {"status": "RESOLVED", "resolution": ""})
    assert "resolution" in refused.value.fields
    shadow.update_issue(db, users["adm"], issue.id, {"status": "RESOLVED", "resolution": "tracker formula fixed"})
    assert issue.status == "RESOLVED" and issue.resolved_at is not None
    with pytest.raises(Forbidden):
        shadow.raise_issue(db, users["mgr"], {"business_date": day2.isoformat(), "kind": "SUMMARY", "title": "x"})
    with pytest.raises(ValidationError) as refused:
        shadow.raise_issue(db, users["fin"], {"business_date": "2026-01-01", "kind": "DPD", "title": "x"})
    assert set(refused.value.fields) == {"loan_number"} or "business_date" in refused.value.fields
    title, header, rows = shadow.issue_export_rows(db, users["fin"], {})
    assert rows[0][0] == issue.id and rows[0][6] == "RESOLVED"
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action.like("shadow.issue_%"))) == 2
