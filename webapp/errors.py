"""Domain errors, and the one place that turns any error into a response.

Services raise these; views never build error responses themselves. Under /api the answer is the JSON
envelope, for HTMX requests a fragment, otherwise a friendly page. Outside debug no stack trace, SQL or
path reaches a user; unexpected errors are logged with the request id and re-raised under test.
"""
from __future__ import annotations

import logging

from flask import Flask, g, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from webapp.htmx import is_htmx

log = logging.getLogger("kisht.errors")


class DomainError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, fields: dict[str, str] | None = None, code: str | None = None,
                 attempt=None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.attempt = attempt  # an audit.RefusedAttempt to record after the rollback
        if code:
            self.code = code


class ValidationError(DomainError):
    status = 422
    code = "validation_error"


class ImmutableFieldError(ValidationError):
    """An attempt to change a field that never changes after creation (DESIGN.md §5)."""

    code = "immutable_field"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


FRIENDLY = {
    400: "The request could not be understood.",
    401: "Please sign in.",
    403: "You do not have permission to do that.",
    404: "Not found.",
    405: "That action is not allowed here.",
    413: "The upload is too large.",
    422: "Some fields need attention.",
    429: "Too many requests. Please wait a moment and try again.",
    500: "Something went wrong on our side. The error has been logged.",
}


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path in ("/healthz", "/readyz")


def error_response(status: int, code: str, message: str, fields: dict | None = None):
    # Whatever the request wrote is discarded (the refusal itself may be audited separately).
    g.rollback = True
    request_id = g.get("request_id")
    if _wants_json():
        body = {
            "success": False,
            "data": None,
            "error": {"code": code, "message": message, "fields": fields or {}},
            "meta": {"request_id": request_id},
        }
        return jsonify(body), status
    template = "errors/_fragment.html" if is_htmx() else "errors/page.html"
    html = render_template(template, status=status, message=message, fields=fields or {}, request_id=request_id)
    return html, status


def record_refused_attempt(attempt) -> None:
    """Roll back what the request wrote, then keep the refused attempt in the audit log."""
    from webapp import db
    from webapp.services import audit

    session = db.session()
    session.rollback()
    audit.record_refusal(session, attempt)
    session.commit()


def _to_login():
    g.rollback = True
    target = url_for("auth.login", next=request.full_path if request.method == "GET" else None)
    if is_htmx():
        return "", 401, {"HX-Redirect": target}
    return redirect(target)


def register(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(error: DomainError):
        if error.attempt is not None:
            record_refused_attempt(error.attempt)
        if isinstance(error, Unauthorized) and not _wants_json():
            return _to_login()
        return error_response(error.status, error.code, error.message, error.fields)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        status = error.code or 500
        code = (error.name or "error").lower().replace(" ", "_")
        message = FRIENDLY.get(status, error.description or "Error")
        if status == 400 and "CSRF" in (error.description or ""):
            code, message = "csrf_failed", "The form expired or was sent without its security token. Reload and try again."
        response = error_response(status, code, message)
        if status == 405 and hasattr(error, "valid_methods") and error.valid_methods:
            response = (*response, {"Allow": ", ".join(error.valid_methods)})
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        if app.config.get("TESTING") and not app.config.get("SHOW_FRIENDLY_500"):
            raise error
        log.exception("unhandled error", extra={"path": request.path})
        return error_response(500, "internal_error", FRIENDLY[500])
