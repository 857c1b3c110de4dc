"""The shadow month and go/no-go screens: finance imports and sees the variances; refusals are named."""
from __future__ import annotations

import io

from tests.conftest import csrf_token
from tests.shadow.conftest import D, system_rows, tracker_xlsx


def _upload(client, data, day=D):
    token = csrf_token(client, "/shadow/import")
    return client.post("/shadow/import", data={"csrf_token": token, "date": day.isoformat(), "layout": "EXCEL_V1",
                                               "file": (io.BytesIO(data), "tracker.xlsx")},
                       content_type="multipart/form-data", headers={"HX-Request": "true"})


def test_finance_imports_and_sees_exactly_the_variances(db, login_as, portfolio):
    rows = system_rows(db)
    rows["KL2"][2] += 3
    del rows["KL3"]
    client = login_as("fin")
    response = _upload(client, tracker_xlsx(rows.values()))
    assert response.status_code == 204 and response.headers["HX-Redirect"] == f"/shadow/days/{D.isoformat()}"
    html = client.get(f"/shadow/days/{D.isoformat()}").get_data(as_text=True)
    assert 'data-loan="KL2" data-differs="dpd"' in html and 'data-loan="KL3" data-differs="only_system"' in html
    assert 'data-loan="KL1"' not in html  # equal on both sides: not in the "any difference" list
    assert 'data-testid="dpd-figures">max 3 · mean 1.50' in html
    csv = client.get(f"/shadow/days/{D.isoformat()}/export?format=csv&show=differs").get_data(as_text=True)
    assert csv.count("\n") == 3 and "KL2" in csv and "KL3" in csv
    board = client.get("/shadow/").get_data(as_text=True)
    assert 'data-testid="trend-chart"' in board and f'data-day="{D.isoformat()}"' in board
    raised = client.post("/shadow/issues", data={"csrf_token": csrf_token(client, "/shadow/"), "business_date": D.isoformat(),
                                                 "loan_number": "KL2", "kind": "DPD", "title": "KL2 DPD differs"})
    assert raised.status_code == 302 and "/shadow/issues/" in raised.headers["Location"]
    assert "KL2 DPD differs" in client.get("/shadow/").get_data(as_text=True)


def test_a_bad_tracker_is_refused_with_row_and_column(db, login_as):
    client = login_as("fin")
    response = _upload(client, tracker_xlsx([("KL1", "abc", 0, "Current", 0)]))
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and 'data-field="row 2, POS (Principal O/S)"' in html
    response = _upload(client, b"not a workbook")
    assert response.status_code == 422 and "not an .xlsx" in response.get_data(as_text=True)


def test_who_sees_what(db, login_as):
    assert login_as("mgr").get("/shadow/import").status_code == 403
    assert login_as("mgr").get("/shadow/").status_code == 200
    assert login_as("col").get("/shadow/").status_code == 403
    assert login_as("leg").get("/golive/").status_code == 403
    manager_board = login_as("mgr").get("/golive/").get_data(as_text=True)
    assert "NO-GO" in manager_board and "record-signoff" not in manager_board
    admin = login_as("adm")
    assert 'data-testid="record-signoff"' in admin.get("/golive/").get_data(as_text=True)
    refused = admin.post("/golive/signoffs", data={"csrf_token": csrf_token(admin, "/golive/"), "key": "system-owner",
                                                   "signatory": ""})
    assert refused.status_code == 422 and 'data-field="signatory"' in refused.get_data(as_text=True)
    signed = admin.post("/golive/signoffs", data={"csrf_token": csrf_token(admin, "/golive/"), "key": "system-owner",
                                                  "signatory": "adm"})
    assert signed.status_code == 200 and 'data-signoff="system-owner" data-holds="yes"' in signed.get_data(as_text=True)
    mgr = login_as("mgr")
    assert mgr.post("/golive/signoffs", data={"csrf_token": csrf_token(mgr, "/golive/"), "key": "system-owner",
                                              "signatory": "mgr"}).status_code == 403
