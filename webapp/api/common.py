"""The envelope, the request body and query rules shared by every /api/v1 endpoint.

Success: {"success": true, "data": …, "error": null, "meta": {"request_id": …, [page …]}}. Errors are
answered by webapp/errors.py in the same envelope.
"""
from __future__ import annotations

from datetime import date
from typing import Mapping

from flask import g, jsonify, request
from flask_login import current_user

from webapp.errors import DomainError, ImmutableFieldError, ValidationError
from webapp.services import audit, loans
from webapp.services.pagination import MAX_PER_PAGE, Page

DEFAULT_PER_PAGE = 25

# Fields no client may set: derived by the ledger and day-end, or fixed when the loan is created. A body
# naming any of them is refused with 422 naming each one, and the attempt is audited.
READ_ONLY_FIELDS = ("dpd", "bucket", "asset_class", "status", "instalment_status", "installment_status",
                    "instalments", "installments", "schedule", "principal", "rate", "annual_rate", "interest_rate",
                    "tenure", "tenure_months", "emi", "outstanding_principal", "overdue_amount", "position_date",
                    "days_past_due", "class")
# POST /loans creates the loan with these terms; they are refused on every other request.
CREATION_TERMS = ("principal", "annual_rate", "tenure_months")


class BadRequest(DomainError):
    status = 400
    code = "bad_request"


def ok(data, status: int = 200, meta: dict | None = None, headers: dict | None = None):
    body = {"success": True, "data": data, "error": None, "meta": {"request_id": g.get("request_id"), **(meta or {})}}
    return jsonify(body), status, headers or {}


def page_meta(page: Page) -> dict:
    return {"page": page.page, "per_page": page.per_page, "total": page.total, "pages": page.pages}


def listing(page: Page, serialize) -> tuple:
    return ok([serialize(item) for item in page.items], meta=page_meta(page))


def json_object() -> dict:
    """The request body: a JSON object, or 400 naming what is wrong."""
    if not request.is_json:
        raise BadRequest("The body must be JSON (Content-Type: application/json).",
                         fields={"body": "must be a JSON object"})
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.", fields={"body": "must be a JSON object"})
    return body


def refuse_read_only(body: Mapping, *, allowed: tuple[str, ...] = (), entity: tuple[str, str] | None = None,
                     branch_id: int | None = None) -> None:
    """422 naming every read-only field in `body`; the attempt is kept in the audit log after the rollback."""
    named = sorted(k for k in body if k in READ_ONLY_FIELDS and k not in allowed)
    if not named:
        return
    entity_type, entity_id = entity or ("api", f"{request.method} {request.path}")
    raise ImmutableFieldError(
        f"These fields are read-only: {', '.join(named)}.",
        fields={k: "is read-only; it is derived or fixed when the loan is created" for k in named},
        attempt=audit.RefusedAttempt(audit.Actor.of(current_user), "api.read_only_refused", entity_type,
                                     str(entity_id), {k: _plain(body[k]) for k in named}, branch_id))


def _plain(value):
    return value if isinstance(value, (str, int, bool)) or value is None else str(value)


def fields(body: Mapping, spec: Mapping[str, tuple[type, bool]]) -> dict:
    """Check names and JSON types: spec maps a field to (str | int | dict, required). Errors name each field."""
    errors: dict[str, str] = {}
    for name in body:
        if name not in spec:
            errors[name] = "is not a field of this request"
    values = {}
    for name, (kind, required) in spec.items():
        value = body.get(name)
        if value is None:
            if required:
                errors[name] = "is required"
            continue
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            errors[name] = "must be a whole number"
        elif kind is str and not isinstance(value, str):
            errors[name] = "must be a string" + (" (a decimal string like \"8791.59\")" if name == "amount" else "")
        elif kind is dict and not isinstance(value, dict):
            errors[name] = "must be an object"
        else:
            values[name] = value
    if errors:
        raise ValidationError("The request is not valid.", fields=errors)
    return values


def pagination() -> tuple[int, int]:
    errors = {}
    page = _int_arg("page", 1, 1, 1_000_000, errors)
    per_page = _int_arg("per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE, errors)
    if errors:
        raise ValidationError("The query is not valid.", fields=errors)
    return page, per_page


def _int_arg(name: str, default: int | None, low: int, high: int, errors: dict) -> int | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        errors[name] = f"must be a whole number from {low} to {high}"
        return default
    return int(raw)


def int_args(*names: str, low: int = 0, high: int = 100_000) -> dict[str, int | None]:
    errors: dict[str, str] = {}
    values = {name: _int_arg(name, None, low, high, errors) for name in names}
    if errors:
        raise ValidationError("The query is not valid.", fields=errors)
    return values


def choice_arg(name: str, choices) -> str:
    raw = request.args.get(name, "").strip()
    if raw and raw.upper() not in {c.upper() for c in choices}:
        raise ValidationError("The query is not valid.", fields={name: f"must be one of {', '.join(choices)}"})
    return next((c for c in choices if c.upper() == raw.upper()), "") if raw else ""


def date_args(*names: str) -> dict[str, date]:
    return loans.parse_dates(request.args, names)


def text_arg(name: str, limit: int = 64) -> str:
    return request.args.get(name, "").strip()[:limit]
