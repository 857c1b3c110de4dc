"""The user guide's screenshots (docs/guide/): each role's main screens, taken in real Chromium.

Every run writes them to a temporary folder; with KISHT_GUIDE_SCREENSHOTS=docs/guide/img the run refreshes
the committed ones (`KISHT_GUIDE_SCREENSHOTS=docs/guide/img .venv/bin/python -m pytest e2e/test_guide.py`).
The guide pages name each file; a test checks that every picture they show is one this run takes.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import login

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "guide"

# role page → (username, [(screenshot name, path, text the screen must show)])
SHOTS = {
    "collector": ("col", [("collector-worklist", "/collector/", "My worklist"),
                          ("collector-loan", "/loans/E2E001", "E2E001")]),
    "manager": ("mgr", [("manager-home", "/manager/", "Branch overview"),
                        ("manager-approvals", "/approvals/", "Approvals")]),
    "finance": ("fin", [("finance-home", "/finance/", "Portfolio"),
                        ("finance-reconciliation", "/reconciliation/", "Reconciliation")]),
    "legal": ("leg", [("legal-npa-queue", "/legal/", "NPA queue")]),
    "admin": ("adm", [("admin-overview", "/admin/", "Overview"), ("admin-jobs", "/admin/jobs", "Day-end"),
                      ("admin-flags", "/admin/flags", "Kill switches"), ("admin-system", "/admin/system", "System")]),
}


@pytest.fixture(scope="module")
def shots_dir(tmp_path_factory) -> Path:
    target = os.environ.get("KISHT_GUIDE_SCREENSHOTS")
    folder = (ROOT / target) if target else tmp_path_factory.mktemp("guide")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("role", list(SHOTS))
def test_screens_of_each_role(new_page, shots_dir, role):
    username, shots = SHOTS[role]
    page: Page = new_page(viewport={"width": 1280, "height": 800})
    login(page, username)
    for name, path, text in shots:
        response = page.goto(path)
        assert response.status == 200, (path, response.status)
        expect(page.locator("main, body").first).to_contain_text(text)
        page.screenshot(path=str(shots_dir / f"{name}.png"), full_page=True)
        assert (shots_dir / f"{name}.png").stat().st_size > 5_000


def test_the_guide_shows_only_screenshots_this_run_takes():
    taken = {name for _user, shots in SHOTS.values() for name, _path, _text in shots}
    for role in SHOTS:
        page = (GUIDE / f"{role}.md").read_text()
        shown = set(re.findall(r"\(img/([a-z-]+)\.png\)", page))
        assert shown and shown <= taken, role
        for name in shown:
            assert (GUIDE / "img" / f"{name}.png").exists(), name
