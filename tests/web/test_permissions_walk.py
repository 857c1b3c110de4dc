"""Every registered route × every role, compared with the matrix in webapp/permissions.py."""
import pytest

from tests.conftest import csrf_token
from webapp.permissions import MATRIX, Perm

ROLES_USERS = {"collector": "col", "manager": "mgr", "finance": "fin", "legal": "leg", "admin": "adm"}


def routes(app, *, screens_only: bool = False):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        if screens_only and rule.rule.startswith("/api/"):
            continue  # token auth, not the session: walked by tests/api/test_matrix.py
        yield rule, app.view_functions[rule.endpoint]


def test_every_route_declares_who_may_use_it(app):
    undeclared = [rule.rule for rule, view in routes(app) if getattr(view, "kisht_permission", None) is None]
    assert undeclared == []


def expected_allowed(declared, role: str) -> bool:
    if declared in ("public", "signed_in"):
        return True
    if isinstance(declared, tuple) and declared[0] == "home":
        return declared[1] == role
    if isinstance(declared, tuple) and declared[0] == "any":
        return any(perm in MATRIX[role] for perm in declared[1])
    return Perm(declared) in MATRIX[role]


def fill(rule, loan_number: str) -> str:
    url = rule.rule
    for argument in rule.arguments:
        url = url.replace(f"<{argument}>", loan_number)
    return url


@pytest.mark.parametrize("role", list(ROLES_USERS))
def test_route_walk_matches_matrix(app, login_as, make_loan, role):
    make_loan(loan_number="KLWALK")  # PUNE01, collector col, NPA: in every role's scope
    client = login_as(ROLES_USERS[role])
    token = csrf_token(client, "/")
    mismatches = []
    for rule, view in routes(app, screens_only=True):
        if rule.rule == "/logout":
            continue  # signing out ends the walk's session; covered in test_auth
        url = fill(rule, "KLWALK")
        method = "GET" if "GET" in rule.methods else "POST"
        response = client.open(url, method=method, data={"csrf_token": token} if method == "POST" else None)
        allowed = response.status_code not in (401, 403)
        if allowed != expected_allowed(view.kisht_permission, role):
            mismatches.append(f"{method} {url}: {response.status_code}")
    assert mismatches == []


def test_anonymous_users_are_sent_to_sign_in(app, client):
    for rule, view in routes(app, screens_only=True):
        if view.kisht_permission == "public" or "GET" not in rule.methods:
            continue
        response = client.get(fill(rule, "KL1"))
        assert response.status_code == 302 and "/login" in response.headers["Location"], rule.rule


def test_matrix_follows_the_design_table():
    """DESIGN.md §6 in words: the rules the checklist names."""
    assert Perm.RECORD_PAYMENT not in MATRIX["legal"]  # legal cannot record payments
    assert Perm.RECONCILE not in MATRIX["collector"] and Perm.RECONCILE not in MATRIX["manager"]
    assert all(Perm.CREATE_LOANS not in MATRIX[r] for r in ("collector", "manager", "finance", "legal"))
    assert Perm.APPROVE_BACKDATED in MATRIX["manager"] and Perm.READ_AUDIT not in MATRIX["collector"]
    assert all(Perm.ADMINISTER not in MATRIX[r] for r in ("collector", "manager", "finance", "legal"))
