"""Answer a submission once: the same key and request get the stored response back, byte for byte."""
from __future__ import annotations

from typing import Callable

from flask import Response, make_response, request
from flask_login import current_user

from webapp import db
from webapp.services import idempotency

REPLAYED_HEADER = "Idempotent-Replayed"


def respond_once(key: str | None, request_body: dict, produce: Callable[[], object]) -> Response:
    session = db.session()
    fingerprint = idempotency.fingerprint(request.method, request.path, request_body)
    claim = idempotency.claim(session, key, current_user, fingerprint)
    if claim.replay:
        stored = claim.record
        return Response(stored.body, status=stored.status_code, content_type=stored.content_type,
                        headers={REPLAYED_HEADER: "true"})
    response = make_response(produce())
    if response.status_code >= 400:
        db.rollback_request()  # nothing was booked: release the key with everything else
    else:
        idempotency.complete(session, claim.record, response.status_code, response.get_data(as_text=True),
                             response.content_type)
    return response
