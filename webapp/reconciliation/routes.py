"""Finance reconciliation screens: statement import, matches and suggestions, the two unmatched queues,
bank lines, unreconcile requests (maker-checker), the dashboard with its daily close, and exports.

Every route needs `reconcile` (finance only): collectors and managers get 403 everywhere here. Views are
thin: parse, call one service, render one partial (the same one serves the page and the HTMX swap; a
refusal comes back as that partial with the message and the problem per field).
"""
from __future__ import annotations

from typing import NamedTuple

from flask import Blueprint, Response, current_app, redirect, request, url_for
from flask_login import current_user
from markupsafe import Markup, escape

from webapp import clock, db
from webapp.errors import Conflict, Forbidden, NotFound, ValidationError
from webapp.htmx import is_htmx, redirect_to, render, trigger
from webapp.money import format_inr
from webapp.models.payments import MODES as PAYMENT_MODES
from webapp.models.reconciliation import LINE_MODES
from webapp.permissions import Perm, requires
from webapp.services import reconciliation as recon
from webapp.services.pagination import clamp

bp = Blueprint("reconciliation", __name__, url_prefix="/reconciliation")
REFUSALS = (ValidationError, Conflict, Forbidden)
CHANGED = "reconciliation-changed"


def _paging():
    return clamp(request.args.get("page") or request.form.get("page"), request.args.get("per_page"),
                 current_app.config["PAGE_SIZE"])


def _changed(response_tuple):
    """Mark a successful change so open counters (the tabs) refresh."""
    body, status = response_tuple
    response = current_app.make_response((body, status))
    return trigger(response, CHANGED)


@bp.app_context_processor
def _helpers():
    return {"recon_kind_label": lambda kind: recon.KIND_LABELS.get(kind, kind), "recon_figure_cells": figure_cells,
            "recon_grid_columns": GRID_COLUMNS}


class GridColumn(NamedTuple):
    """A figure column of the dashboard grid: its cell name, heading, Figures field and the list behind it."""
    name: str
    label: str
    field: str
    list_name: str
    list_status: str


GRID_COLUMNS = (GridColumn("system", "System", "system", "payments", "ALL"),
                GridColumn("reconciled", "Reconciled", "reconciled", "payments", "RECONCILED"),
                GridColumn("system-unmatched", "System unmatched", "system_unmatched", "payments", "UNMATCHED"),
                GridColumn("bank", "Bank credits", "bank", "lines", "ALL"),
                GridColumn("matched", "Matched", "matched", "lines", "MATCHED"),
                GridColumn("unmatched", "Unmatched", "unmatched", "lines", "UNMATCHED"),
                GridColumn("mismatches", "Mismatches", "mismatch", "lines", "MISMATCH"))


def figure_cells(figures: recon.Figures, day: str, mode: str, paths: dict[str, str]) -> Markup:
    """One grid row's figure cells, each linking to the list behind it (`paths`: "payments" and "lines").
    Written here, not as a Jinja macro: a 14-day grid has hundreds of cells, and a macro call with its
    escaping for each was most of the page's CPU."""
    query = f"day={escape(day)}&amp;mode={escape(mode)}"
    cells = []
    for column in GRID_COLUMNS:
        count = getattr(figures, f"{column.field}_count")
        if count:
            figure = (f'<a href="{escape(paths[column.list_name])}?status={column.list_status}&amp;{query}">'
                      f'{format_inr(getattr(figures, f"{column.field}_paise"))}</a>'
                      f'<br><small class="muted">{count}</small>')
        else:
            figure = '<span class="muted">—</span>'
        cells.append(f'<td data-label="{column.label}" class="num" data-cell="{column.name}">{figure}</td>')
    return Markup("".join(cells))


# ---------------------------------------------------------------- dashboard and close

def _dashboard(status=200, **extra):
    source = request.form if request.method == "POST" else request.args
    date_from, date_to = recon.parse_range(source)
    board = recon.dashboard(db.session(), current_user, date_from, date_to)
    return render("reconciliation/dashboard.html", "reconciliation/_dashboard.html", status, board=board, **extra)


@bp.get("/")
@requires(Perm.RECONCILE)
def dashboard():
    return _dashboard()


@bp.post("/days/<day>/close")
@requires(Perm.RECONCILE)
def close_day(day: str):
    try:
        closed = recon.close_day(db.session(), current_user, day, request.form.get("note", ""))
    except REFUSALS as refused:
        db.rollback_request()
        return _dashboard(refused.status, message=refused.message, errors=refused.fields)
    if not is_htmx():
        return redirect(url_for(".dashboard", date_from=request.form.get("date_from") or None,
                                date_to=request.form.get("date_to") or None))
    return _changed(_dashboard(notice=f"{closed.business_date:%d %b %Y} is closed."))


@bp.get("/export")
@requires(Perm.RECONCILE)
def export():
    what = (request.args.get("what") or "summary").lower()
    fmt = (request.args.get("format") or "csv").lower()
    if fmt not in ("csv", "xlsx"):
        raise ValidationError("Choose an export format.", fields={"format": "must be csv or xlsx"})
    title, header, rows = recon.export_rows(db.session(), current_user, what, request.args)
    stamp = clock.today_ist().isoformat()
    if fmt == "csv":
        body, mimetype = recon.to_csv(header, rows), "text/csv; charset=utf-8"
    else:
        body, mimetype = recon.to_xlsx(title, header, rows), \
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return Response(body, mimetype=mimetype, headers={
        "Content-Disposition": f'attachment; filename="reconciliation-{what}-{stamp}.{fmt}"'})


# ---------------------------------------------------------------- statements

def _statements_page(status=200, partial="reconciliation/_import_form.html", **extra):
    page, per_page = _paging()
    result = recon.statement_list(db.session(), current_user, page, per_page)
    extra.setdefault("errors", {})
    return render("reconciliation/statements.html", partial, status, page=result,
                  banks=recon.bank_choices(), chosen_bank=request.form.get("bank", ""), **extra)


@bp.get("/statements")
@requires(Perm.RECONCILE)
def statements():
    return _statements_page(partial="reconciliation/_statement_list.html")  # HTMX: the pager swaps the list


@bp.post("/statements")
@requires(Perm.RECONCILE)
def import_statement():
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _statements_page(422, message="Choose the statement file to import.", errors={"file": "is required"})
    try:
        imported = recon.import_statement(db.session(), current_user, bank=request.form.get("bank", ""),
                                          data=upload.read(), filename=upload.filename)
    except REFUSALS as refused:
        db.rollback_request()
        return _statements_page(refused.status, message=refused.message, errors=refused.fields)
    return redirect_to(url_for(".statement", reference=imported.statement.reference))


@bp.get("/statements/<reference>")
@requires(Perm.RECONCILE)
def statement(reference: str):
    session = db.session()
    found = recon.get_statement(session, current_user, reference)
    page, per_page = _paging()
    filters = recon.ListFilters(status="ALL", statement=found.reference)
    lines = recon.bank_lines(session, current_user, filters, page, per_page)
    return render("reconciliation/statement.html", "reconciliation/_lines.html", statement=found, page=lines,
                  filters=filters, held=recon.matches_of_lines(session, [l.id for l in lines.items]),
                  counts=recon.statement_status_counts(session, found), warnings=recon.warnings_of(found),
                  ageing=None, target=url_for(".statement", reference=found.reference))


@bp.post("/run")
@requires(Perm.RECONCILE)
def run_matching():
    recon.run_matching(db.session(), current_user)
    return redirect_to(url_for(".matches", status="SUGGESTED"))


# ---------------------------------------------------------------- matches: suggestions, mismatches, confirmed

def _matches_page(status=200, **extra):
    page, per_page = _paging()
    source = request.form if request.method == "POST" else request.args
    wanted = (source.get("status") or "SUGGESTED").upper()
    result = recon.match_list(db.session(), current_user, wanted, page, per_page)
    return render("reconciliation/matches.html", "reconciliation/_matches.html", status, page=result,
                  status_filter=wanted if wanted in recon.MATCH_LIST_STATUSES else "SUGGESTED", **extra)


@bp.get("/matches")
@requires(Perm.RECONCILE)
def matches():
    return _matches_page()


def _after_match_action(action, done_message):
    """Confirm/dismiss/unreconcile from the matches list or from a bank line's page: answer with that
    screen's partial (refusals included), or go back to it without HTMX."""
    back = request.form.get("back", "matches")
    line_id = request.form.get("line_id")
    try:
        result = action()
    except REFUSALS as refused:
        db.rollback_request()
        if back == "line" and line_id:
            return _line_page(line_id, refused.status, message=refused.message, errors=refused.fields)
        return _matches_page(refused.status, message=refused.message, errors=refused.fields)
    if back == "line" and line_id:
        if not is_htmx():
            return redirect(url_for(".line", line_id=line_id))
        return _changed(_line_page(line_id, notice=done_message(result)))
    if not is_htmx():
        return redirect(url_for(".matches", status=request.form.get("status") or "SUGGESTED"))
    return _changed(_matches_page(notice=done_message(result)))


@bp.post("/matches/<match_id>/confirm")
@requires(Perm.RECONCILE)
def confirm(match_id: str):
    return _after_match_action(lambda: recon.confirm(db.session(), current_user, match_id),
                               lambda m: f"Match {m.id} confirmed: {len(m.payments)} payment(s) reconciled.")


@bp.post("/matches/<match_id>/dismiss")
@requires(Perm.RECONCILE)
def dismiss(match_id: str):
    return _after_match_action(lambda: recon.dismiss(db.session(), current_user, match_id,
                                                     request.form.get("reason", "")),
                               lambda m: f"Match {m.id} dismissed.")


@bp.post("/matches/<match_id>/unreconcile")
@requires(Perm.RECONCILE)
def request_unreconcile(match_id: str):
    return _after_match_action(lambda: recon.request_unreconcile(db.session(), current_user, match_id,
                                                                 request.form.get("reason", "")),
                               lambda r: f"Unreconcile requested (request {r.id}); another finance user decides.")


# ---------------------------------------------------------------- bank lines and payments (queues, drill-downs)

@bp.get("/lines")
@requires(Perm.RECONCILE)
def lines():
    session = db.session()
    filters = recon.parse_list_filters(request.args, statuses=recon.LINE_FILTER_STATUSES, modes=LINE_MODES,
                                       default_status="UNMATCHED")
    page, per_page = _paging()
    result = recon.bank_lines(session, current_user, filters, page, per_page)
    ageing = recon.bank_line_ageing(session, filters) if filters.status == "UNMATCHED" else None
    return render("reconciliation/lines.html", "reconciliation/_lines.html", page=result, filters=filters,
                  held=recon.matches_of_lines(session, [l.id for l in result.items]), ageing=ageing,
                  modes=LINE_MODES, statuses=recon.LINE_FILTER_STATUSES, target=url_for(".lines"))


@bp.get("/payments")
@requires(Perm.RECONCILE)
def system_payments():
    session = db.session()
    filters = recon.parse_list_filters(request.args, statuses=recon.PAYMENT_FILTER_STATES,
                                       modes=PAYMENT_MODES + ("NONCASH",), default_status="UNMATCHED")
    page, per_page = _paging()
    result = recon.system_payments(session, current_user, filters, page, per_page)
    ageing = recon.payment_ageing(session, filters) if filters.status == "UNMATCHED" else None
    return render("reconciliation/payments.html", "reconciliation/_payments.html", page=result, filters=filters,
                  held=recon.matches_of_payments(session, [p.id for p in result.items]), ageing=ageing,
                  modes=PAYMENT_MODES + ("NONCASH",), statuses=recon.PAYMENT_FILTER_STATES,
                  coverage_start=recon.coverage_start(session))


def _line_page(line_id, status=200, **extra):
    session = db.session()
    found = recon.get_line(session, current_user, line_id)
    history = recon.line_history(session, found)
    extra.setdefault("errors", {})
    return render("reconciliation/line.html", "reconciliation/_line.html", status, line=found, history=history,
                  requests=recon.requests_of(session, [m.id for m in history]), modes=recon.ELECTRONIC,
                  decidable=recon.decidable, **extra)


@bp.get("/lines/<line_id>")
@requires(Perm.RECONCILE)
def line(line_id: str):
    return _line_page(line_id)


def _line_action(line_id: str, action, done_message, *, unknown_field: str | None = None):
    try:
        result = action()
    except REFUSALS as refused:
        db.rollback_request()
        return _line_page(line_id, refused.status, message=refused.message, errors=refused.fields,
                          form=request.form)
    except NotFound as missing:
        if unknown_field is None:
            raise
        db.rollback_request()  # e.g. no such loan: a problem with that field, on this page
        return _line_page(line_id, 422, message=missing.message, errors={unknown_field: missing.message},
                          form=request.form)
    if not is_htmx():
        return redirect(url_for(".line", line_id=line_id))
    return _changed(_line_page(line_id, notice=done_message(result)))


@bp.post("/lines/<line_id>/match")
@requires(Perm.RECONCILE)
def match_by_hand(line_id: str):
    return _line_action(line_id, lambda: recon.match_by_hand(db.session(), current_user, line_id,
                                                             request.form.get("payments", "")),
                        lambda m: f"Matched by hand: {', '.join(p.reference for p in m.payments)} reconciled.")


@bp.post("/lines/<line_id>/payment")
@requires(Perm.RECONCILE)
def payment_from_line(line_id: str):
    def message(result):
        booked, match = result
        if match is not None:
            return f"Payment {booked.payment.reference} booked on {booked.payment.loan.loan_number} and reconciled."
        return (f"Payment {booked.payment.reference} booked on {booked.payment.loan.loan_number}; it is backdated and "
                "waits for a manager's approval. Run matching once it is approved.")

    return _line_action(line_id, lambda: recon.payment_from_line(
        db.session(), current_user, line_id, loan_number=request.form.get("loan_number", ""),
        mode=request.form.get("mode") or None), message, unknown_field="loan_number")


# ---------------------------------------------------------------- unreconcile requests (maker-checker)

def _unreconciles_page(status=200, **extra):
    page, per_page = _paging()
    source = request.form if request.method == "POST" else request.args
    wanted = (source.get("status") or "PENDING").upper()
    result = recon.unreconcile_list(db.session(), current_user, wanted, page, per_page)
    return render("reconciliation/unreconciles.html", "reconciliation/_unreconciles.html", status, page=result,
                  status_filter=wanted if wanted in ("PENDING", "APPROVED", "REJECTED") else "PENDING",
                  decidable=recon.decidable, **extra)


@bp.get("/unreconciles")
@requires(Perm.RECONCILE)
def unreconciles():
    return _unreconciles_page()


@bp.post("/unreconciles/<request_id>/decide")
@requires(Perm.RECONCILE)
def decide_unreconcile(request_id: str):
    action = request.form.get("action")
    try:
        if action not in ("approve", "reject"):
            raise ValidationError("The decision is not valid.", fields={"action": "must be approve or reject"})
        decided = recon.decide_unreconcile(db.session(), current_user, request_id, approve=action == "approve",
                                           reason=request.form.get("reason", ""))
    except REFUSALS as refused:
        db.rollback_request()
        return _unreconciles_page(refused.status, message=refused.message, errors=refused.fields)
    if not is_htmx():
        return redirect(url_for(".unreconciles"))
    return _changed(_unreconciles_page(notice=f"Unreconcile request {decided.id} {decided.status.lower()}."))
