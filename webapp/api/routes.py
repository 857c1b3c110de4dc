"""/api/v1: thin views over the same services, permission matrix and data scope as the screens."""
from __future__ import annotations

from flask import Blueprint, g, render_template, request
from flask_login import AnonymousUserMixin, current_user

from webapp import db
from webapp.api import common, serializers, tokens
from webapp.api.common import BadRequest, checked, json_object, ok, refuse_read_only
from webapp.errors import DomainError, NotFound, Unauthorized, ValidationError
from webapp.idempotent import respond_once
from webapp.models.loans import ASSET_CLASSES, LOAN_STATUSES
from webapp.models.dayend import RUN_STATUSES
from webapp.models.payments import APPROVAL_KINDS, APPROVAL_STATUSES
from webapp.permissions import Perm, public, requires, requires_any
from webapp.services import approvals, disputes, idempotency, job_runs, loans, payments, reconciliation, replay
from webapp.services.pagination import Page

bp = Blueprint("api", __name__, url_prefix="/api/v1")
PUBLIC_ENDPOINTS = {"api.issue_token", "api.refresh_token", "api.logout", "api.openapi", "api.docs"}


@bp.before_request
def _authenticate():
    """Token auth only: a browser session cookie never authenticates an API call (so no CSRF is needed)."""
    g._login_user = AnonymousUserMixin()
    if request.endpoint is None or request.endpoint in ("api.openapi", "api.docs"):
        return
    _refuse_unknown_query_parameters()
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    common.refuse_unstorable_text({**request.args, **(request.view_args or {})})
    user, family = tokens.user_for_access_token(db.session(), tokens.bearer(request.headers.get("Authorization")))
    g._login_user = user
    g.api_family = family


def _refuse_unknown_query_parameters() -> None:
    """A misspelt filter (?clas=NPA) must not silently widen a list: only documented parameters are accepted."""
    from webapp.api.openapi import query_parameters

    rule = request.url_rule.rule[len(bp.url_prefix):]
    known = query_parameters(rule, request.method)
    unknown = sorted(name for name in request.args if name not in known)
    if unknown:
        raise ValidationError("The query is not valid.", fields={
            common.printable(name) or "(empty name)": "is not a parameter of this request" for name in unknown})


# ---------------------------------------------------------------- authentication

@bp.post("/auth/token")
@public
def issue_token():
    values = checked("issueToken", json_object())
    session = db.session()
    result = tokens.sign_in(session, values["username"], values["password"])
    if isinstance(result, str):
        session.commit()  # failed-attempt counters, lockout and the audit entries stay
        raise Unauthorized(result, code="invalid_credentials")
    return ok(result.as_dict(), 201)


@bp.post("/auth/refresh")
@public
def refresh_token():
    values = checked("refreshToken", json_object())
    session = db.session()
    result = tokens.refresh(session, values["refresh_token"])
    if isinstance(result, Unauthorized):
        session.commit()  # the family stays revoked
        raise result
    return ok(result.as_dict(), 200)


@bp.post("/auth/logout")
@public
def logout():
    """Ends the token family of the bearer access token (or of `refresh_token` in the body)."""
    session = db.session()
    header = tokens.bearer(request.headers.get("Authorization"))
    values = checked("logout", json_object()) if request.content_length or request.is_json else {}
    if header:
        _user, family = tokens.user_for_access_token(session, header)
    elif values.get("refresh_token"):
        family = tokens.family_of_refresh(session, values["refresh_token"])
    else:
        raise Unauthorized("Send the access token (Authorization: Bearer …) or the refresh token to sign out.")
    if family.revoked_at is None:
        tokens.revoke_family(session, family, "logout")
    return ok({"revoked": True})


# ---------------------------------------------------------------- loans

LOAN_SORTS = tuple(loans.SORTS)


@bp.get("/loans")
@requires(Perm.VIEW_LOANS)
def list_loans():
    page, per_page = common.pagination()
    dpd = common.int_args("dpd_min", "dpd_max")
    dates = common.date_args("disbursed_from", "disbursed_to")
    if dpd["dpd_min"] is not None and dpd["dpd_max"] is not None and dpd["dpd_min"] > dpd["dpd_max"]:
        raise ValidationError("The query is not valid.", fields={"dpd_max": "must not be less than dpd_min"})
    filters = loans.ListFilters(
        branch=common.text_arg("branch", 16), bucket=common.text_arg("bucket", 16),
        status=common.choice_arg("status", LOAN_STATUSES), dpd_min=dpd["dpd_min"], dpd_max=dpd["dpd_max"],
        disbursed_from=dates.get("disbursed_from"), disbursed_to=dates.get("disbursed_to"))
    result = loans.list_for(db.session(), current_user, q=common.text_arg("q"),
                            asset_class=common.choice_arg("asset_class", ASSET_CLASSES),
                            sort=common.choice_arg("sort", LOAN_SORTS) or "dpd",
                            collector=common.text_arg("collector"), page=page, per_page=per_page, filters=filters)
    return common.listing(result, serializers.loan_item)


@bp.post("/loans")
@requires(Perm.CREATE_LOANS)
def create_loan():
    body = json_object()
    refuse_read_only(body, allowed=common.CREATION_TERMS)
    values = checked("createLoan", body)
    session = db.session()
    loan = loans.create_loan(session, current_user, {k: str(v) for k, v in values.items()})
    return ok(serializers.loan_detail(loan, replay.live_position(session, loan)), 201)


@bp.get("/loans/<loan_number>")
@requires(Perm.VIEW_LOANS)
def get_loan(loan_number: str):
    session = db.session()
    loan = loans.get_for(session, current_user, loan_number)
    return ok(serializers.loan_detail(loan, replay.live_position(session, loan)))


@bp.patch("/loans/<loan_number>")
@requires(Perm.VIEW_LOANS)  # the service refuses read-only fields (audited) before it requires assign_collector
def update_loan(loan_number: str):
    body = json_object()
    if all(name in loans.CHANGEABLE for name in body):  # anything else is refused by name (and audited) below
        body = checked("updateLoan", body)
    session = db.session()
    loan = loans.update_loan(session, current_user, loan_number, body)
    return ok(serializers.loan_detail(loan, replay.live_position(session, loan)))


@bp.get("/loans/<loan_number>/schedule")
@requires(Perm.VIEW_LOANS)
def loan_schedule(loan_number: str):
    page, per_page = common.pagination()
    session = db.session()
    loan = loans.get_for(session, current_user, loan_number)
    rows = replay.live_position(session, loan).instalments
    start = (page - 1) * per_page
    return common.listing(Page(rows[start:start + per_page], page, per_page, len(rows)), serializers.instalment)


# ---------------------------------------------------------------- payments

IDEMPOTENCY_HEADER = "Idempotency-Key"


def _loan_entity(body: dict) -> tuple[str, str] | None:
    number = body.get("loan_number")
    return ("loan", number.strip().upper()[:32]) if isinstance(number, str) and number.strip() else None


def _api_field_names(error: DomainError) -> DomainError:
    """The payment service names the bank reference `reference`; the API calls it `utr`."""
    if "reference" in error.fields:
        error.fields["utr"] = error.fields.pop("reference")
    return error


@bp.post("/payments")
@requires(Perm.RECORD_PAYMENT)
def create_payment():
    key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
    if not key:
        raise BadRequest("The Idempotency-Key header is required for payments.", code="idempotency_key_required",
                         fields={IDEMPOTENCY_HEADER: "is required"})
    body = json_object()
    refuse_read_only(body, entity=_loan_entity(body))
    values = checked("createPayment", body)
    raw = {"amount": values["amount"], "mode": values["mode"], "reference": values.get("utr"),
           "cheque_bank": values.get("cheque_bank"), "receipt_number": values.get("receipt_number"),
           "value_date": values.get("value_date")}

    def book():
        try:
            booked = payments.record_payment(db.session(), current_user, values["loan_number"], raw)
        except DomainError as refused:
            raise _api_field_names(refused) from None
        data = serializers.payment(booked.payment)
        data["approval_id"] = booked.approval.id if booked.approval else None
        position = booked.position
        data["loan_position"] = None if position is None else {
            "dpd": position.dpd, "asset_class": position.asset_class, "bucket": position.bucket,
            "overdue_amount": serializers.as_str(position.overdue_paise),
            "outstanding_principal": serializers.as_str(position.outstanding_principal_paise)}
        return ok(data, 201 if booked.posted else 202)

    try:
        return respond_once(key, body, book)
    except DomainError as refused:
        raise _api_field_names(refused) from None


def payment_replay_stored() -> bool:
    """Whether this POST /payments will be answered from a stored response (for the rate limiter)."""
    key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
    body = request.get_json(silent=True) if request.is_json else None
    if not key or not isinstance(body, dict):
        return False
    claims_user = tokens.unverified_subject(tokens.bearer(request.headers.get("Authorization")))
    if claims_user is None:
        return False
    return idempotency.is_stored(db.session(), key, claims_user,
                                 idempotency.fingerprint(request.method, request.path, body))


@bp.get("/payments/<reference>")
@requires(Perm.VIEW_LOANS)
def get_payment(reference: str):
    return ok(serializers.payment(payments.get_for(db.session(), current_user, reference)))


@bp.post("/payments/<reference>/reversals")
@requires(Perm.REQUEST_REVERSAL)
def request_reversal(reference: str):
    body = json_object()
    refuse_read_only(body)
    values = checked("requestReversal", body)
    approval = approvals.request_reversal(db.session(), current_user, reference, values)
    return ok(serializers.approval(approval), 201)


# ---------------------------------------------------------------- approvals

@bp.get("/approvals")
@requires_any(Perm.APPROVE_BACKDATED, Perm.APPROVE_REVERSAL)
def list_approvals():
    page, per_page = common.pagination()
    dates = common.date_args("date_from", "date_to")
    filters = approvals.InboxFilters(status=common.choice_arg("status", APPROVAL_STATUSES) or "PENDING",
                                     kind=common.choice_arg("kind", APPROVAL_KINDS),
                                     maker=common.text_arg("maker").lower(), branch=common.text_arg("branch", 16),
                                     **dates)
    return common.listing(approvals.inbox(db.session(), current_user, filters, page, per_page), serializers.approval)


MAX_ID = 2_147_483_647  # ids are 32-bit integers in the database


def _decide(approval_id: int, approve: bool):
    if approval_id > MAX_ID:
        raise NotFound(f"No approval {approval_id}.")
    body = json_object()
    refuse_read_only(body)
    values = checked("approve" if approve else "reject", body)
    session = db.session()
    decided = approvals.decide(session, current_user, [approval_id], approve=approve, reason=values["reason"])[0]
    session.expire(decided, ["checker"])  # loaded before the decision set checker_id
    return ok(serializers.approval(decided))


@bp.post("/approvals/<int:approval_id>/approve")
@requires_any(Perm.APPROVE_BACKDATED, Perm.APPROVE_REVERSAL)
def approve(approval_id: int):
    return _decide(approval_id, True)


@bp.post("/approvals/<int:approval_id>/reject")
@requires_any(Perm.APPROVE_BACKDATED, Perm.APPROVE_REVERSAL)
def reject(approval_id: int):
    return _decide(approval_id, False)


# ---------------------------------------------------------------- disputes

@bp.post("/disputes")
@requires(Perm.RAISE_DISPUTE)
def raise_dispute():
    body = json_object()
    refuse_read_only(body, entity=_loan_entity(body))
    values = checked("raiseDispute", body)
    dispute = disputes.raise_dispute(db.session(), current_user, values.pop("loan_number"), values)
    return ok(serializers.dispute(dispute), 201)


@bp.post("/disputes/<reference>/resolve")
@requires(Perm.RESOLVE_DISPUTE)
def resolve_dispute(reference: str):
    body = json_object()
    refuse_read_only(body, entity=("dispute", reference.strip().upper()[:16]))
    values = checked("resolveDispute", body)
    reversal = values.get("reversal")
    session = db.session()
    dispute = disputes.get_for(session, current_user, reference)
    if dispute.status == "OPEN":  # the API has no separate review step: resolving starts it (both audited)
        disputes.start_review(session, current_user, reference)
    dispute = disputes.resolve(session, current_user, reference, outcome=values["outcome"], note=values["note"],
                               reversal=reversal)
    return ok(serializers.dispute(dispute))


# ---------------------------------------------------------------- reconciliation, day-end

@bp.post("/reconciliation/statements")
@requires(Perm.RECONCILE)
def import_statement():
    upload = request.files.get("file")
    bank = request.form.get("bank", "")
    errors = {}
    if upload is None or not upload.filename:
        errors["file"] = "is required (multipart/form-data part \"file\")"
    if not bank.strip():
        errors["bank"] = "is required"
    if errors:
        raise ValidationError("The statement is not valid.", fields=errors)
    imported = reconciliation.import_statement(db.session(), current_user, bank=bank, data=upload.read(),
                                               filename=upload.filename)
    return ok(serializers.statement(imported.statement, imported.run), 201)


@bp.get("/dayend/runs")
@requires(Perm.ADMINISTER)
def dayend_runs():
    page, per_page = common.pagination()
    dates = common.date_args("date_from", "date_to")
    filters = job_runs.RunFilters(job=common.text_arg("job", 32).lower(), status=common.choice_arg("status", RUN_STATUSES),
                                  **dates)
    return common.listing(job_runs.list_runs(db.session(), current_user, filters, page, per_page),
                          serializers.cron_run)


# ---------------------------------------------------------------- the contract

@bp.get("/openapi.json")
@public
def openapi():
    from webapp.api.openapi import document

    return document()


@bp.get("/docs")
@public
def docs():
    from webapp.api.openapi import document

    return render_template("api/docs.html", spec=document())

