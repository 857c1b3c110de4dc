"""The go/no-go board: read by admin, managers and finance; answers and sign-offs recorded by admin."""
from __future__ import annotations

from flask import Blueprint, request
from flask_login import current_user

from webapp import db
from webapp.errors import Conflict, Forbidden, ValidationError
from webapp.htmx import render
from webapp.permissions import Perm, requires
from webapp.services import golive

bp = Blueprint("golive", __name__, url_prefix="/golive")
REFUSALS = (ValidationError, Conflict, Forbidden)


def _board(status=200, **extra):
    extra.setdefault("errors", {})
    return render("golive/board.html", "golive/_board.html", status, board=golive.board(db.session(), current_user),
                  signatories=golive.signatories(db.session()), signoffs=golive.SIGNOFFS, **extra)


@bp.get("/")
@requires(Perm.VIEW_GOLIVE)
def board():
    return _board()


@bp.post("/answers")
@requires(Perm.ADMINISTER)
def answer():
    try:
        golive.record_answer(db.session(), current_user, request.form)
    except REFUSALS as refused:
        db.rollback_request()
        return _board(refused.status, message=refused.message, errors=refused.fields)
    return _board(notice="Answer recorded.")


@bp.post("/signoffs")
@requires(Perm.ADMINISTER)
def signoff():
    try:
        golive.record_signoff(db.session(), current_user, request.form)
    except REFUSALS as refused:
        db.rollback_request()
        return _board(refused.status, message=refused.message, errors=refused.fields)
    return _board(notice="Sign-off recorded.")
