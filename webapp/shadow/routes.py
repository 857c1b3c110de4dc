"""Shadow month screens. Thin: parse, call one service (webapp/services/shadow.py), render one partial.

A refused import comes back as the import form with every problem by row and column (422), and nothing
is written. Exports are CSV or Excel, like reconciliation's.
"""
from __future__ import annotations

from flask import Blueprint, Response, current_app, request, url_for
from flask_login import current_user

from webapp import clock, db
from webapp.errors import Conflict, Forbidden, NotFound, ValidationError
from webapp.htmx import redirect_to, render
from webapp.models.shadow import ISSUE_KINDS, ISSUE_STATUSES
from webapp.permissions import Perm, requires
from webapp.services import reconciliation as recon
from webapp.services import shadow
from webapp.services.pagination import clamp

bp = Blueprint("shadow", __name__, url_prefix="/shadow")
REFUSALS = (ValidationError, Conflict, Forbidden)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _paging():
    return clamp(request.args.get("page"), request.args.get("per_page"), current_app.config["PAGE_SIZE"])


def _download(title: str, header: list, rows: list, stem: str):
    fmt = (request.args.get("format") or "csv").lower()
    if fmt not in ("csv", "xlsx"):
        raise ValidationError("Choose an export format.", fields={"format": "must be csv or xlsx"})
    body = recon.to_csv(header, rows) if fmt == "csv" else recon.to_xlsx(title, header, rows)
    return Response(body, mimetype="text/csv; charset=utf-8" if fmt == "csv" else XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{stem}.{fmt}"'})


@bp.get("/")
@requires(Perm.VIEW_SHADOW)
def dashboard():
    board = shadow.dashboard(db.session(), current_user, request.args)
    return render("shadow/dashboard.html", "shadow/_dashboard.html", board=board)


def _import_form(status=200, **extra):
    extra.setdefault("errors", {})
    return render("shadow/import.html", "shadow/_import_form.html", status, layouts=shadow.layout_choices(),
                  chosen_layout=request.form.get("layout", ""), chosen_date=request.form.get("date", ""), **extra)


@bp.get("/import")
@requires(Perm.SHADOW_IMPORT)
def import_form():
    return _import_form()


@bp.post("/import")
@requires(Perm.SHADOW_IMPORT)
def import_tracker():
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _import_form(422, message="Choose the tracker file to import.", errors={"file": "is required"})
    try:
        result = shadow.import_tracker(db.session(), current_user, data=upload.read(), filename=upload.filename,
                                       business_date=request.form.get("date", ""), layout=request.form.get("layout", ""))
    except REFUSALS as refused:
        db.rollback_request()
        return _import_form(refused.status, message=refused.message, errors=refused.fields)
    return redirect_to(url_for(".day", day=result.shadow_import.business_date.isoformat()))


@bp.get("/template.xlsx")
@requires(Perm.SHADOW_IMPORT)
def template():
    layout = request.args.get("layout") or next(iter(current_app.config["TRACKER_LAYOUTS"]))
    return Response(shadow.template_xlsx(layout), mimetype=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="tracker-template-{layout}.xlsx"'})


@bp.get("/days/<day>")
@requires(Perm.VIEW_SHADOW)
def day(day: str):
    page, per_page = _paging()
    view = shadow.day_view(db.session(), current_user, day, request.args, page, per_page)
    return render("shadow/day.html", "shadow/_differences.html", view=view, kinds=ISSUE_KINDS,
                  users=shadow.assignable_users(db.session()))


@bp.post("/days/<day>/compare")
@requires(Perm.SHADOW_IMPORT)
def compare(day: str):
    shadow.compare_again(db.session(), current_user, day)
    return redirect_to(url_for(".day", day=day))


@bp.get("/days/<day>/export")
@requires(Perm.VIEW_SHADOW)
def export_day(day: str):
    title, header, rows = shadow.export_rows(db.session(), current_user, day, request.args)
    return _download(title, header, rows, f"shadow-variance-{shadow.parse_day(day).isoformat()}")


@bp.get("/issues")
@requires(Perm.VIEW_SHADOW)
def issues():
    page, per_page = _paging()
    result = shadow.issue_list(db.session(), current_user, request.args, page, per_page)
    return render("shadow/issues.html", "shadow/_issues.html", page=result, chosen_status=request.args.get("status", ""),
                  statuses=ISSUE_STATUSES)


@bp.post("/issues")
@requires(Perm.WORK_SHADOW_ISSUES)
def raise_issue():
    try:
        issue = shadow.raise_issue(db.session(), current_user, request.form)
    except REFUSALS as refused:
        db.rollback_request()
        return render("shadow/issue_refused.html", "shadow/_issue_refused.html", refused.status,
                      message=refused.message, errors=refused.fields)
    return redirect_to(url_for(".issue", issue_id=issue.id))


@bp.get("/issues/export")
@requires(Perm.VIEW_SHADOW)
def export_issues():
    title, header, rows = shadow.issue_export_rows(db.session(), current_user, request.args)
    return _download(title, header, rows, f"shadow-issues-{clock.today_ist().isoformat()}")


def _issue_page(issue_id, status=200, **extra):
    issue = shadow.get_issue(db.session(), current_user, issue_id)
    extra.setdefault("errors", {})
    return render("shadow/issue.html", "shadow/_issue_form.html", status, issue=issue, statuses=ISSUE_STATUSES,
                  users=shadow.assignable_users(db.session()), **extra)


@bp.get("/issues/<issue_id>")
@requires(Perm.VIEW_SHADOW)
def issue(issue_id):
    return _issue_page(issue_id)


@bp.post("/issues/<issue_id>")
@requires(Perm.WORK_SHADOW_ISSUES)
def update_issue(issue_id):
    try:
        shadow.update_issue(db.session(), current_user, issue_id, request.form)
    except REFUSALS as refused:
        db.rollback_request()
        return _issue_page(issue_id, refused.status, message=refused.message, errors=refused.fields)
    return _issue_page(issue_id, notice="Saved.")
