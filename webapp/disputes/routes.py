"""Disputes: the raise form (from the loan page and per payment), the review queue, the dispute page with its
timeline, review and resolution, and evidence downloads (only through here, only within the loan's scope)."""
from __future__ import annotations

import io

from flask import Blueprint, current_app, request, send_file, url_for
from flask_login import current_user

from webapp import clock, db, money
from webapp.disputes.forms import ActionForm, DisputeForm, ResolveForm, choice
from webapp.errors import Conflict, ValidationError
from webapp.htmx import redirect_to, render
from webapp.models.disputes import DISPUTE_CATEGORIES, DISPUTE_STATUSES
from webapp.permissions import Perm, requires, requires_any
from webapp.services import disputes, evidence, loans, payments
from webapp.services.pagination import clamp

bp = Blueprint("disputes", __name__)
WORKERS = (Perm.RAISE_DISPUTE, Perm.RESOLVE_DISPUTE)


@bp.app_context_processor
def _dispute_flags():
    """For any template listing payments (whichever route renders it): which have an open dispute, one query a
    call; and the loan page's disputes (a loan list's come with its flags: loans.flags_for). The loan was
    authorised by the route that shows it."""
    return {
        "disputed_payment_ids": lambda ids: disputes.disputed_payment_ids(db.session(), ids),
        "open_disputes_on": lambda loan: disputes.open_on_loan(db.session(), loan),
        "disputes_of": lambda loan: disputes.for_loan(db.session(), loan),
        "open_disputes_by_age": lambda: disputes.open_by_age(db.session(), current_user),
        "oldest_open_disputes": lambda limit=10: disputes.oldest_open(db.session(), current_user, limit),
        "dispute_age": disputes.age_days, "dispute_band": disputes.band_of,
        "dispute_of_approval": lambda approval: disputes.of_approval(db.session(), approval),
    }


def _uploads() -> list[evidence.Upload]:
    # A file input left empty still sends a part with an empty name: that is not a file.
    return [evidence.Upload(f.filename, f.stream) for f in request.files.getlist("evidence") if f and f.filename]


# ---------------------------------------------------------------- the queue

@bp.get("/disputes/")
@requires_any(*WORKERS)
def index():
    page, per_page = clamp(request.args.get("page"), request.args.get("per_page"), current_app.config["PAGE_SIZE"])
    filters = disputes.parse_queue_filters(request.args)
    result = disputes.queue(db.session(), current_user, filters, page, per_page)
    return render("disputes/index.html", "disputes/_queue.html", page=result, filters=filters,
                  bands=disputes.bands(), categories=DISPUTE_CATEGORIES, statuses=DISPUTE_STATUSES,
                  today=clock.today_ist(), band_of=disputes.band_of, age_days=disputes.age_days,
                  can_review=disputes.can_review)


# ---------------------------------------------------------------- raising

def _raise_context(loan, form: DisputeForm, **extra) -> dict:
    history = payments.history(db.session(), loan)
    form.payment.choices = [choice("", f"The loan itself ({loan.loan_number})")] + [
        choice(p.reference, f"Payment {p.reference} · {p.value_date:%d %b %Y} · {p.mode} · "
                            f"{money.format_inr(p.amount_paise)}") for p in history]
    supersedes = disputes.on_loan(db.session(), loan, form.supersedes.data) if form.supersedes.data else None
    return {"loan": loan, "form": form, "supersedes": supersedes, "errors": {}, "message": "", **extra}


@bp.get("/loans/<number>/disputes/new")
@requires(Perm.RAISE_DISPUTE)
def new(number: str):
    loan = loans.get_for(db.session(), current_user, number)
    form = DisputeForm(formdata=None, payment=request.args.get("payment", "").upper(),
                       category=request.args.get("category", "").upper(),
                       supersedes=request.args.get("supersedes", "").upper())
    return render("disputes/new.html", "disputes/_raise_form.html", **_raise_context(loan, form))


@bp.post("/loans/<number>/disputes")
@requires(Perm.RAISE_DISPUTE)
def create(number: str):
    form = DisputeForm()
    loan = loans.get_for(db.session(), current_user, number)
    uploads = _uploads()
    try:
        dispute = disputes.raise_dispute(db.session(), current_user, number, form.dispute_fields(), uploads)
    except (ValidationError, Conflict) as refused:
        db.rollback_request()
        loan = loans.get_for(db.session(), current_user, number)
        return render("disputes/new.html", "disputes/_raise_form.html", refused.status,
                      **_raise_context(loan, form, errors=refused.fields, message=refused.message,
                                       files_dropped=bool(uploads)))
    return redirect_to(url_for("disputes.show", reference=dispute.reference))


# ---------------------------------------------------------------- the dispute page

def _page_context(dispute, **extra) -> dict:
    session = db.session()
    return {
        "dispute": dispute, "timeline": disputes.timeline(session, dispute),
        "superseded_by": disputes.superseded_by(session, dispute),
        "can_review": disputes.can_review(current_user, dispute),
        "review_problem": disputes.resolver_problem(current_user, dispute),
        "age": disputes.age_days(dispute), "band": disputes.band_of(dispute),
        "action_form": ActionForm(formdata=None),
        "resolve_form": extra.pop("resolve_form", None) or ResolveForm(
            formdata=None, reversal_reason=disputes.default_reversal_reason(dispute)),
        "errors": {}, "evidence_errors": {}, "human_size": evidence.human_size,
        "max_files": current_app.config["EVIDENCE_MAX_FILES"],
        "max_bytes": current_app.config["EVIDENCE_MAX_BYTES"], **extra,
    }


@bp.get("/disputes/<reference>")
@requires_any(*WORKERS)
def show(reference: str):
    dispute = disputes.get_for(db.session(), current_user, reference)
    return render("disputes/show.html", "disputes/_detail.html", **_page_context(dispute))


@bp.post("/disputes/<reference>/review")
@requires(Perm.RESOLVE_DISPUTE)
def start_review(reference: str):
    dispute = disputes.start_review(db.session(), current_user, reference)
    return redirect_to(url_for("disputes.show", reference=dispute.reference))


@bp.post("/disputes/<reference>/resolve")
@requires(Perm.RESOLVE_DISPUTE)
def resolve(reference: str):
    form = ResolveForm()
    try:
        dispute = disputes.resolve(db.session(), current_user, reference, outcome=form.outcome.data or "",
                                   note=form.note.data or "", reversal=form.reversal_fields())
    except ValidationError as refused:
        db.rollback_request()
        dispute = disputes.get_for(db.session(), current_user, reference)
        return render("disputes/show.html", "disputes/_resolve_form.html", 422,
                      **_page_context(dispute, resolve_form=form, errors=refused.fields, message=refused.message))
    return redirect_to(url_for("disputes.show", reference=dispute.reference))


@bp.post("/disputes/<reference>/evidence")
@requires(Perm.RAISE_DISPUTE)
def add_evidence(reference: str):
    ActionForm()  # the CSRF token is checked app-wide before we get here
    try:
        disputes.add_evidence(db.session(), current_user, reference, _uploads())
    except ValidationError as refused:
        db.rollback_request()
        dispute = disputes.get_for(db.session(), current_user, reference)
        return render("disputes/show.html", "disputes/_evidence_form.html", 422,
                      **_page_context(dispute, evidence_errors=refused.fields, message=refused.message))
    return redirect_to(url_for("disputes.show", reference=reference.strip().upper()))


@bp.get("/disputes/<reference>/evidence/<evidence_id>")
@requires_any(*WORKERS)
def evidence_file(reference: str, evidence_id: str):
    item, data = disputes.evidence_for(db.session(), current_user, reference, evidence_id)
    image = item.content_type.startswith("image/")
    response = send_file(io.BytesIO(data), mimetype=item.content_type, as_attachment=not image,
                         download_name=item.original_name, etag=item.sha256, max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Evidence-SHA256"] = item.sha256
    return response
