"""The audit log, read-only, within each reader's scope."""
from flask import Blueprint, current_app, request
from flask_login import current_user
from sqlalchemy import select

from webapp import db
from webapp.htmx import render
from webapp.models import AuditEntry
from webapp.permissions import Perm, audit_filter, requires
from webapp.services.pagination import clamp, paginate

bp = Blueprint("audit_log", __name__, url_prefix="/audit")


@bp.get("/")
@requires(Perm.READ_AUDIT)
def index():
    page, per_page = clamp(request.args.get("page"), request.args.get("per_page"), current_app.config["PAGE_SIZE"])
    query = select(AuditEntry).where(audit_filter(current_user))
    entity = request.args.get("entity", "").strip()[:64]
    if entity:
        query = query.where(AuditEntry.entity_id == entity)
    result = paginate(db.session(), query.order_by(AuditEntry.seq.desc()), page, per_page)
    return render("audit_log/index.html", "audit_log/_table.html", page=result, entity=entity)
