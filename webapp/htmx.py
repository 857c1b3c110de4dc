"""HTMX helpers: one partial serves the full page and the swap."""
from __future__ import annotations

import json

from flask import redirect, render_template, request


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def render(page_template: str, partial_template: str, status: int = 200, **context):
    """The partial alone for an HTMX request, else the page that includes it."""
    return render_template(partial_template if is_htmx() else page_template, **context), status


def trigger(response, event: str, detail=None):
    """Attach an HX-Trigger event (toasts and the like) to a response."""
    response.headers["HX-Trigger"] = json.dumps({event: detail if detail is not None else True})
    return response


def redirect_to(url: str):
    """A redirect that HTMX follows as a full page load (a followed 302 would swap a partial in)."""
    if is_htmx():
        return "", 204, {"HX-Redirect": url}
    return redirect(url)
