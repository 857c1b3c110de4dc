"""Every /api/v1 route × every role, compared with the matrix in webapp/permissions.py; anonymous calls get 401."""
import pytest

from tests.api.conftest import ROLE_USERS, assert_envelope
from tests.web.test_permissions_walk import expected_allowed

PUBLIC = {"/api/v1/auth/token", "/api/v1/auth/refresh", "/api/v1/auth/logout", "/api/v1/openapi.json", "/api/v1/docs"}


def api_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method, app.view_functions[rule.endpoint]


def fill(rule) -> str:
    url = rule.rule.replace("<int:approval_id>", "1")
    for argument in rule.arguments:
        url = url.replace(f"<{argument}>", "KLWALK")
    return url


def test_every_api_route_declares_who_may_use_it(app):
    declared = {rule.rule: getattr(view, "kisht_permission", None) for rule, _, view in api_routes(app)}
    assert None not in declared.values()
    assert {r for r, p in declared.items() if p == "public"} == PUBLIC


@pytest.mark.parametrize("role", list(ROLE_USERS))
def test_api_walk_matches_the_matrix(app, api, make_loan, role):
    make_loan(loan_number="KLWALK")  # in every role's scope (NPA, PUNE01, collector col)
    mismatches = []
    for rule, method, view in api_routes(app):
        if rule.rule in PUBLIC:
            continue
        response = api.call(method, fill(rule)[len("/api/v1"):], ROLE_USERS[role], json={})
        assert response.status_code != 500
        allowed = response.status_code not in (401, 403)
        if allowed != expected_allowed(view.kisht_permission, role):
            mismatches.append(f"{method} {rule.rule}: {response.status_code}")
    assert mismatches == []


def test_anonymous_calls_are_401_in_the_envelope(app, api):
    for rule, method, view in api_routes(app):
        if rule.rule in PUBLIC:
            continue
        assert_envelope(api.call(method, fill(rule)[len("/api/v1"):], json={}), 401)


@pytest.mark.parametrize("role, body, status", [
    ("collector", {"borrower_phone": "9822011111"}, 403), ("legal", {"borrower_phone": "9822011111"}, 403),
    ("finance", {"borrower_phone": "9822011111"}, 403), ("manager", {"borrower_phone": "9822011111"}, 200),
    ("admin", {"borrower_phone": "9822011111"}, 200)])
def test_only_assigners_change_a_loan(api, make_loan, role, body, status):
    make_loan(loan_number="KLWALK")
    assert_envelope(api.patch("/loans/KLWALK", ROLE_USERS[role], json=body), status)
