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
    refuse_unstorable_text({name: value for name, value in body.items()})
    return body


def _storable(value) -> bool:
    """Text PostgreSQL can store: no NUL character, no lone surrogate (invalid UTF-8)."""
    if isinstance(value, str):
        if "\x00" in value:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    return True


def refuse_unstorable_text(values: Mapping[str, object]) -> None:
    bad = {name: "contains a NUL or an invalid character" for name, value in values.items()
           if not _storable(name) or not _storable(value)}
    if bad:
        raise ValidationError("The request is not valid.", fields={printable(k): v for k, v in bad.items()})


def printable(name: str) -> str:
    return name if _storable(name) else name.encode("utf-8", "replace").decode("utf-8").replace("\x00", "?")


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


def checked(operation_id: str, body: Mapping) -> dict:
    """The body, checked against the schema the OpenAPI document publishes for this operation."""
    from webapp.api import validate
    from webapp.api.openapi import BODIES

    errors = validate.object_problems(dict(body), BODIES[operation_id])
    if errors:
        raise ValidationError("The request is not valid.", fields=errors)
    return dict(body)


def pagination() -> tuple[int, int]:
    errors = {}
    page = _int_arg("page", 1, 1, 1_000_000, errors)
    per_page = _int_arg("per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE, errors)
    if errors:
        raise ValidationError("The query is not valid.", fields=errors)
    return page, per_page


def _int_arg(name: str, default: int | None, low: int, high: int, errors: dict) -> int | None:
    if name not in request.args:
        return default
    raw = request.args.get(name, "").strip()
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
    raw = request.args.get(name, "")
    if name in request.args and raw not in choices:
        raise ValidationError("The query is not valid.", fields={name: f"must be one of {', '.join(choices)}"})
    return raw


def date_args(*names: str) -> dict[str, date]:
    present = {name: request.args.get(name, "") or "-" for name in names if name in request.args}  # empty: refused
    return loans.parse_dates(present, names)


def text_arg(name: str, limit: int = 64) -> str:
    return request.args.get(name, "").strip()[:limit]
