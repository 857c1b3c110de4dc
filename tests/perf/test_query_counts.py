"""No N+1: every screen and every list or detail endpoint of the API runs as many SQL statements for a
portfolio of SMALL units as for one of LARGE units (tests/perf/support.py says what a unit holds).

One portfolio is built per backend and module (inside a transaction rolled back at the end); each route is
requested once at SMALL and once after the portfolio grew to LARGE, by a user already signed in. Lists are asked for
with per_page=100, so every row of the larger portfolio is on the page. A count that grows means a query
per row (or per child on a detail page): load the rows' relations with the list query, or in one query.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import pytest

from tests.api.conftest import Api
from tests.conftest import rolled_back_session
from tests.perf.support import NOON_IST, SHADOW_DAY, StatementCounter, World, sign_in_all
from webapp import clock

SMALL, LARGE = 3, 15
ALL_ROLES = ("col", "mgr", "fin", "leg", "adm")
HX = {"HX-Request": "true"}
DAY = SHADOW_DAY.isoformat()
ALL_ROWS = "per_page=100"


@dataclass(frozen=True)
class Route:
    id: str
    user: str
    path: str  # may name world references: {receipt}, {dispute}, {approval}, ...
    api: bool = False
    htmx: bool = False
    fixed: bool = False  # a detail page whose content does not grow with the portfolio

    def url(self, refs: dict) -> str:
        return self.path.format(**refs)


def screens(name: str, users, path: str, *, htmx: bool = False, fixed: bool = False) -> list[Route]:
    out = [Route(f"{name}[{user}]", user, path, fixed=fixed) for user in users]
    if htmx:
        out.append(Route(f"{name}[{users[0]},htmx]", users[0], path, htmx=True, fixed=fixed))
    return out


def endpoints(name: str, users, path: str, *, fixed: bool = False) -> list[Route]:
    return [Route(f"api {name}[{user}]", user, path, api=True, fixed=fixed) for user in users]


ROUTES: list[Route] = [
    # Homes and worklists: every loan list goes through loans.routes.render_loan_list.
    *screens("collector worklist", ["col"], f"/collector/?{ALL_ROWS}", htmx=True),
    *screens("manager home", ["mgr"], f"/manager/?{ALL_ROWS}", htmx=True),
    *screens("finance home", ["fin"], f"/finance/?{ALL_ROWS}", htmx=True),
    *screens("legal NPA queue", ["leg"], f"/legal/?{ALL_ROWS}", htmx=True),
    *screens("admin home", ["adm"], f"/admin/?{ALL_ROWS}", htmx=True),
    *screens("loan list", ALL_ROLES, f"/loans/?{ALL_ROWS}", htmx=True),
    *screens("loan list searched", ["fin"], f"/loans/?q=borrower&sort=priority&{ALL_ROWS}"),
    *screens("loan list NPA by collector", ["mgr"], f"/loans/?class=NPA&collector=col&sort=overdue&{ALL_ROWS}"),
    # The loan and what hangs off it.
    *screens("loan page", ALL_ROLES, "/loans/KLD", htmx=True),
    *screens("payment form", ["col", "mgr", "fin"], "/loans/KLD/payments/new", htmx=True),
    *screens("receipt", ALL_ROLES, "/payments/{receipt}", fixed=True),
    *screens("contact form", ["col", "mgr"], "/loans/KLD/contacts/new", htmx=True),
    *screens("raise dispute form", ["col", "mgr", "fin", "leg"], "/loans/KLD/disputes/new", htmx=True),
    # Maker-checker, collections queues, disputes.
    *screens("approvals inbox", ["mgr", "fin"], f"/approvals/?{ALL_ROWS}", htmx=True),
    *screens("approvals inbox decided", ["mgr"], f"/approvals/?status=APPROVED&{ALL_ROWS}"),
    *screens("approval page", ["mgr", "fin"], "/approvals/{approval}"),
    Route("approval page[mgr,htmx]", "mgr", "/approvals/{approval}", htmx=True, fixed=True),  # the impact alone
    *screens("backdated approval page", ["mgr"], "/approvals/{held}", fixed=True),
    *screens("escalation queue", ["mgr", "leg"], f"/escalations/?{ALL_ROWS}", htmx=True),
    *screens("escalation page", ["mgr"], "/escalations/{escalation}", htmx=True),
    *screens("dispute queue", ["col", "mgr", "fin", "leg"], f"/disputes/?{ALL_ROWS}", htmx=True),
    *screens("dispute page", ["col", "mgr", "fin", "leg"], "/disputes/{dispute}", htmx=True),
    # Administration.
    *screens("reminder outbox", ["adm"], f"/admin/reminders/?{ALL_ROWS}", htmx=True),
    *screens("reminder outbox failed", ["adm"], f"/admin/reminders/?status=FAILED&{ALL_ROWS}"),
    *screens("day-end runs", ["adm"], f"/admin/jobs?{ALL_ROWS}", htmx=True),
    *screens("kill switches", ["adm"], "/admin/flags", htmx=True),
    *screens("users", ["adm"], "/admin/users"),
    *screens("system", ["adm"], "/admin/system"),
    *screens("new loan form", ["adm"], "/admin/loans/new"),
    *screens("loan import form", ["adm"], "/admin/loans/import"),
    *screens("audit log", ["mgr", "fin", "leg", "adm"], f"/audit/?{ALL_ROWS}", htmx=True),
    # Reconciliation (finance only).
    *screens("reconciliation dashboard", ["fin"], "/reconciliation/", htmx=True),
    *screens("statements", ["fin"], f"/reconciliation/statements?{ALL_ROWS}", htmx=True),
    *screens("statement page", ["fin"], f"/reconciliation/statements/{{statement}}?{ALL_ROWS}", htmx=True),
    *screens("suggested matches", ["fin"], f"/reconciliation/matches?{ALL_ROWS}", htmx=True),
    *screens("confirmed matches", ["fin"], f"/reconciliation/matches?status=CONFIRMED&{ALL_ROWS}"),
    *screens("unmatched bank lines", ["fin"], f"/reconciliation/lines?{ALL_ROWS}", htmx=True),
    *screens("all bank lines", ["fin"], f"/reconciliation/lines?status=ALL&{ALL_ROWS}"),
    *screens("unmatched payments", ["fin"], f"/reconciliation/payments?{ALL_ROWS}", htmx=True),
    *screens("all payments", ["fin"], f"/reconciliation/payments?status=ALL&{ALL_ROWS}"),
    *screens("bank line page", ["fin"], "/reconciliation/lines/{line}", htmx=True, fixed=True),
    *screens("unreconcile requests", ["fin"], f"/reconciliation/unreconciles?{ALL_ROWS}", htmx=True),
    *screens("reconciliation summary export", ["fin"], "/reconciliation/export?what=summary"),
    *screens("bank lines export", ["fin"], "/reconciliation/export?what=bank&status=ALL"),
    *screens("payments export", ["fin"], "/reconciliation/export?what=system&status=ALL"),
    # Shadow month and go-live.
    *screens("shadow dashboard", ["mgr", "fin", "adm"], "/shadow/", htmx=True),
    *screens("tracker import form", ["fin", "adm"], "/shadow/import"),
    *screens("shadow day", ["mgr", "fin", "adm"], f"/shadow/days/{DAY}?{ALL_ROWS}", htmx=True),
    *screens("shadow day export", ["fin"], f"/shadow/days/{DAY}/export"),
    *screens("shadow issues", ["mgr", "fin", "adm"], f"/shadow/issues?{ALL_ROWS}", htmx=True),
    *screens("shadow issues export", ["fin"], "/shadow/issues/export"),
    *screens("shadow issue page", ["fin"], "/shadow/issues/{issue}", htmx=True, fixed=True),
    *screens("go-live board", ["mgr", "fin", "adm"], "/golive/", htmx=True),
    # The JSON API.
    *endpoints("loans", ALL_ROLES, f"/loans?{ALL_ROWS}"),
    *endpoints("loans filtered", ["fin"], "/loans?asset_class=NPA&branch=PUNE01&status=ACTIVE&dpd_min=1&dpd_max=999"
                                          f"&disbursed_from=2025-01-01&disbursed_to=2026-06-15&sort=overdue&{ALL_ROWS}"),
    *endpoints("loans searched", ["mgr"], f"/loans?q=borrower&collector=col&sort=priority&{ALL_ROWS}"),
    *endpoints("loan", ALL_ROLES, "/loans/KLD"),
    *endpoints("loan schedule", ALL_ROLES, f"/loans/KLD/schedule?{ALL_ROWS}", fixed=True),
    *endpoints("payment", ALL_ROLES, "/payments/{receipt}"),
    *endpoints("approvals", ["mgr", "fin"], f"/approvals?{ALL_ROWS}"),
    *endpoints("approvals reversals", ["fin"], f"/approvals?kind=REVERSAL&status=PENDING&{ALL_ROWS}"),
    *endpoints("day-end runs", ["adm"], f"/dayend/runs?{ALL_ROWS}"),
]


@dataclass
class Measured:
    status: int
    statements: list[str] = field(default_factory=list)
    body: str = ""  # the start of an unexpected answer
    size: int = 0  # bytes of the answer: a list shows more rows for the larger portfolio

    @property
    def count(self) -> int:
        return len(self.statements)


def _request(route: Route, refs: dict, clients: dict, api: Api, counter: StatementCounter) -> Measured:
    url = route.url(refs)
    token = api.token(route.user) if route.api else None  # signing in is not part of the request measured
    with counter:
        if route.api:
            response = api.get(url, token=token)
        else:
            response = clients[route.user].get(url, headers=HX if route.htmx else None)
    body = "" if response.status_code == 200 else response.get_data(as_text=True)[:2000]
    return Measured(response.status_code, list(counter.statements), body, len(response.get_data()))


@pytest.fixture(scope="module")
def measured(app, service_app, tmp_path_factory) -> dict[str, dict[str, Measured]]:
    """Build the portfolio at SMALL, measure every route, grow it to LARGE, measure again."""
    patch = pytest.MonkeyPatch()
    patch.setattr(clock, "now", lambda: NOON_IST)
    evidence = tmp_path_factory.mktemp("perf-evidence")
    for application in (app, service_app):
        patch.setitem(application.config, "EVIDENCE_DIR", str(evidence))
    engine = app.extensions["kisht.engine"]
    try:
        with rolled_back_session(app, service_app) as session:
            world = World(session)
            world.start()
            world.grow_to(SMALL)
            clients = sign_in_all(app, ALL_ROLES)
            api = Api(app.test_client())
            counter = StatementCounter(engine)
            results: dict[str, dict[str, Measured]] = {route.id: {} for route in ROUTES}
            for phase, size in (("small", SMALL), ("large", LARGE)):
                world.grow_to(size)
                refs = world.references()
                for route in ROUTES:
                    results[route.id][phase] = _request(route, refs, clients, api, counter)
            yield results
    finally:
        patch.undo()


PLACEHOLDER = r"(?:\?|%\(\w+\)s|\$\d+|%s)(?:::\w+)?"  # SQLite's ?, psycopg's %(name)s::TYPE
PLACEHOLDERS = re.compile(rf"{PLACEHOLDER}(?:\s*,\s*{PLACEHOLDER})+")


def _shape(statement: str) -> str:
    """A statement without the length of its IN lists: repeated placeholders become one."""
    return " ".join(PLACEHOLDERS.sub("…", statement).split())[:300]


def _grown(small: Measured, large: Measured) -> str:
    before, after = Counter(map(_shape, small.statements)), Counter(map(_shape, large.statements))
    lines = [f"{after[s] - before[s]:+d} × {s}" for s in after | before if after[s] != before[s]]
    return "\n".join(lines)


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.id)
def test_statement_count_does_not_grow_with_the_data(measured, route):
    small, large = measured[route.id]["small"], measured[route.id]["large"]
    assert (small.status, large.status) == (200, 200), small.body or large.body
    if not route.fixed and (ALL_ROWS in route.path or "{" in route.path):  # a list, or a detail that grew
        assert large.size > small.size, "the larger portfolio shows nothing more: the route measures nothing"
    assert large.count == small.count, (
        f"{route.path}: {small.count} statements for {SMALL} units, {large.count} for {LARGE}:\n"
        + _grown(small, large))


def test_every_listing_screen_and_endpoint_is_covered(app):
    """A new GET screen or API endpoint needs a row in ROUTES (or a reason here to leave it out)."""
    not_listings = {"/login", "/", "/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", "/api/v1/docs",
                    "/shadow/template.xlsx", "/disputes/<reference>/evidence/<evidence_id>", "/static/<path:filename>"}
    covered = {("/api/v1" + path) if route.api else path for route, path in
               ((route, re.sub(r"\?.*", "", route.path)) for route in ROUTES)}
    missing = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.rule in not_listings:
            continue
        pattern = re.compile("^" + re.sub(r"<[^>]+>", "[^/]+", rule.rule) + "$")
        if not any(pattern.match(path) for path in covered):
            missing.append(rule.rule)
    assert missing == []
