"""The OpenAPI 3.1 document of /api/v1, built here next to the views and served at /api/v1/openapi.json.

docs/openapi.json is this document written out (a test keeps the two identical); schemathesis checks the
running server against it in the test suite (tests/api/test_schemathesis.py).
"""
from __future__ import annotations

from copy import deepcopy

from flask import current_app

from webapp.models.disputes import DISPUTE_CATEGORIES
from webapp.models.loans import ASSET_CLASSES, INSTALMENT_STATUSES, LANGUAGES, LOAN_STATUSES
from webapp.models.dayend import RUN_STATUSES
from webapp.models.payments import APPROVAL_KINDS, APPROVAL_STATUSES, MODES, PAYMENT_STATUSES, REVERSAL_REASONS

AMOUNT = {"type": "string", "pattern": r"^\d{1,13}\.\d{2}$", "examples": ["8791.59"],
          "description": "Rupees as a decimal string with exactly two decimals."}
AMOUNT_IN = {"type": "string", "pattern": r"^\d{1,13}(\.\d{1,2})?$", "examples": ["8791.59"],
             "description": "Rupees as a decimal string, at most two decimals (never a JSON number)."}
DATE = {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$", "examples": ["2026-11-28"]}
TIMESTAMP = {"type": "string", "format": "date-time", "description": "ISO 8601 with offset (IST, +05:30)."}


def nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict, required: list[str] | None = None, *, closed: bool = True) -> dict:
    schema = {"type": "object", "properties": properties, "required": required if required is not None else list(properties)}
    if closed:
        schema["additionalProperties"] = False
    return schema


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


STR = {"type": "string"}
INT = {"type": "integer"}
N_STR = nullable(STR)

SCHEMAS = {
    "Meta": {"type": "object", "properties": {
        "request_id": {"type": "string"}, "page": {"type": "integer", "minimum": 1},
        "per_page": {"type": "integer", "minimum": 1, "maximum": 100}, "total": {"type": "integer", "minimum": 0},
        "pages": {"type": "integer", "minimum": 1}}, "required": ["request_id"]},
    "ListMeta": {"type": "object", "properties": {
        "request_id": {"type": "string"}, "page": {"type": "integer", "minimum": 1},
        "per_page": {"type": "integer", "minimum": 1, "maximum": 100}, "total": {"type": "integer", "minimum": 0},
        "pages": {"type": "integer", "minimum": 1}}, "required": ["request_id", "page", "per_page", "total", "pages"]},
    "Error": obj({
        "success": {"const": False}, "data": {"type": "null"},
        "error": obj({"code": STR, "message": STR,
                      "fields": {"type": "object", "additionalProperties": {"type": "string"}}}),
        "meta": {"type": "object", "properties": {"request_id": nullable(STR)}}}),
    "TokenPair": obj({
        "token_type": {"const": "Bearer"}, "access_token": STR, "expires_in": INT,
        "access_expires_at": TIMESTAMP, "refresh_token": STR, "refresh_expires_at": TIMESTAMP,
        "user": obj({"username": STR, "role": {"enum": ["collector", "manager", "finance", "legal", "admin"]},
                     "branch": N_STR})}),
    "LoanItem": obj({
        "loan_number": STR, "borrower_name": STR, "branch": STR, "collector": N_STR, "principal": AMOUNT,
        "emi": AMOUNT, "disbursed_on": DATE, "status": {"enum": list(LOAN_STATUSES)},
        "dpd": {"type": "integer", "minimum": 0}, "asset_class": {"enum": list(ASSET_CLASSES)}, "bucket": STR,
        "outstanding_principal": AMOUNT, "overdue_amount": AMOUNT, "position_date": nullable(DATE)}),
    "Loan": obj({
        "loan_number": STR,
        "borrower": obj({"name": STR, "phone": STR, "email": N_STR, "preferred_language": {"enum": list(LANGUAGES)}}),
        "branch": STR, "collector": N_STR, "principal": AMOUNT,
        "annual_rate": {"type": "string", "pattern": r"^\d{1,2}\.\d{2}$"}, "tenure_months": INT, "emi": AMOUNT,
        "disbursed_on": DATE, "first_due_on": DATE, "created_at": TIMESTAMP,
        "status": {"enum": list(LOAN_STATUSES)}, "position_date": DATE, "dpd": {"type": "integer", "minimum": 0},
        "asset_class": {"enum": list(ASSET_CLASSES)}, "bucket": STR, "outstanding_principal": AMOUNT,
        "overdue_amount": AMOUNT, "overdue_since": nullable(DATE), "advance": AMOUNT}),
    "Instalment": obj({
        "seq": {"type": "integer", "minimum": 1}, "due_date": DATE, "principal_due": AMOUNT, "interest_due": AMOUNT,
        "total_due": AMOUNT, "principal_paid": AMOUNT, "interest_paid": AMOUNT, "paid": AMOUNT,
        "status": {"enum": list(INSTALMENT_STATUSES)}}),
    "Payment": obj({
        "reference": STR, "loan_number": STR, "amount": AMOUNT, "mode": {"enum": list(MODES)}, "utr": N_STR,
        "cheque_bank": N_STR, "receipt_number": N_STR, "value_date": DATE, "status": {"enum": list(PAYMENT_STATUSES)},
        "reversed": AMOUNT, "reversal_pending": AMOUNT, "reconciled": {"type": "boolean"}, "recorded_by": N_STR,
        "created_at": TIMESTAMP}),
    "Approval": obj({
        "id": INT, "kind": {"enum": list(APPROVAL_KINDS)}, "status": {"enum": list(APPROVAL_STATUSES)},
        "loan_number": STR, "payment": STR, "amount": AMOUNT, "reversal_reason": nullable({"enum": list(REVERSAL_REASONS)}),
        "maker": N_STR, "checker": N_STR, "decision_reason": N_STR, "created_at": TIMESTAMP,
        "decided_at": nullable(TIMESTAMP)}),
    "Dispute": obj({
        "reference": STR, "loan_number": STR, "payment": N_STR, "category": {"enum": list(DISPUTE_CATEGORIES)},
        "description": STR, "status": STR, "raised_by": N_STR, "created_at": TIMESTAMP, "resolved_by": N_STR,
        "resolved_at": nullable(TIMESTAMP), "resolution_note": N_STR, "reversal_approval_id": nullable(INT),
        "supersedes": N_STR}),
    "Statement": obj({
        "reference": STR, "bank": STR, "account_number": N_STR, "filename": STR, "format": {"enum": ["CSV", "XLSX"]},
        "sha256": STR, "period_from": DATE, "period_to": DATE, "lines": INT, "credits": INT, "credit_total": AMOUNT,
        "debits": INT, "debit_total": AMOUNT, "skipped_duplicates": INT, "created_at": TIMESTAMP,
        "matching": obj({"considered": INT, "matched": INT, "mismatches": INT, "suggestions": INT})}),
    "CronRun": obj({
        "id": INT, "job": STR, "business_date": DATE, "attempt": INT, "status": {"enum": list(RUN_STATUSES)},
        "forced": {"type": "boolean"}, "started_at": TIMESTAMP, "finished_at": nullable(TIMESTAMP),
        "loans_processed": INT, "batches_done": INT, "batches_total": INT, "error": N_STR}),
}
POSITION = obj({"dpd": {"type": "integer", "minimum": 0}, "asset_class": {"enum": list(ASSET_CLASSES)}, "bucket": STR,
                "overdue_amount": AMOUNT, "outstanding_principal": AMOUNT})
SCHEMAS["BookedPayment"] = {"allOf": [{"$ref": "#/components/schemas/PaymentFields"}]}
SCHEMAS["PaymentFields"] = deepcopy(SCHEMAS["Payment"])
SCHEMAS["PaymentFields"]["properties"].update({"approval_id": nullable(INT), "loan_position": nullable(POSITION)})
SCHEMAS["PaymentFields"]["required"] += ["approval_id", "loan_position"]
del SCHEMAS["BookedPayment"]

ERROR_TEXT = {
    "400": "Bad request: the body is not a JSON object, or a required header is missing (`idempotency_key_required`).",
    "401": "No bearer token, or it is expired (`token_expired`), tampered, of another algorithm, revoked "
           "(`token_revoked`), or its user is disabled or locked (`account_unavailable`).",
    "403": "Your role may not do this (DESIGN.md §6).",
    "404": "Not found, or outside your data scope (never 403 for someone else's loan).",
    "405": "Method not allowed (see the `Allow` header).",
    "409": "Conflict with the current state: see `error.code`.",
    "413": "The request body is too large.",
    "422": "A field is invalid or read-only; `error.fields` names each one.",
    "429": "Rate limit reached; retry after `Retry-After` seconds.",
}


def error_response(status: str) -> dict:
    response = {"description": ERROR_TEXT[status],
                "content": {"application/json": {"schema": ref("Error")}}}
    if status == "429":
        response["headers"] = {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait."}}
    if status == "405":
        response["headers"] = {"Allow": {"schema": {"type": "string"}}}
    return response


def ok_response(description: str, data_schema: dict, *, listing: bool = False, headers: dict | None = None) -> dict:
    envelope = obj({"success": {"const": True}, "data": data_schema, "error": {"type": "null"},
                    "meta": ref("ListMeta" if listing else "Meta")})
    response = {"description": description, "content": {"application/json": {"schema": envelope}}}
    if headers:
        response["headers"] = headers
    return response


def operation(summary: str, responses: dict, *, errors=("400", "401", "403", "404", "405", "422", "429"),
              public: bool = False, body: dict | None = None, parameters: list | None = None,
              description: str = "", op_id: str = "", tag: str = "", body_required: bool = True) -> dict:
    op = {"summary": summary, "operationId": op_id, "tags": [tag], "responses": dict(responses)}
    if description:
        op["description"] = description
    for status in errors:
        op["responses"].setdefault(status, {"$ref": f"#/components/responses/E{status}"})
    if public:
        op["security"] = []
    if body is not None:
        op["requestBody"] = {"required": body_required, "content": {"application/json": {"schema": body}}}
    if parameters:
        op["parameters"] = parameters
    return op


def query(name: str, schema: dict, description: str = "") -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def path(name: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema or STR}


PAGING = [query("page", {"type": "integer", "minimum": 1, "maximum": 1_000_000}),
          query("per_page", {"type": "integer", "minimum": 1, "maximum": 100}, "Default 25.")]
DATE_RANGE = [query("date_from", DATE), query("date_to", DATE)]
READ_ONLY_NOTE = ("Read-only fields (dpd, bucket, asset_class, status, instalment_status, schedule, principal, rate, "
                  "tenure …) are refused with 422 `immutable_field` naming each one; the attempt is audited.")


reason_body = obj({"reason": {"type": "string", "minLength": 1, "maxLength": 500}})
idem_header = {"name": "Idempotency-Key", "in": "header", "required": True,
               "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_.:-]{8,128}$"},
               "description": "One key per payment attempt; retry with the same key and the same body."}
replayed = {"Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]},
                                    "description": "Present when this is the stored response of an earlier request."}}
loan_fields = {
    "loan_number": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9/_-]{2,31}$"},
    "borrower_name": {"type": "string", "minLength": 1, "maxLength": 120},
    "borrower_phone": {"type": "string", "examples": ["9876543210"]},
    "borrower_language": {"type": "string", "enum": list(LANGUAGES)},
    "borrower_email": {"type": "string", "maxLength": 254},
    "branch_code": {"type": "string", "minLength": 1, "maxLength": 16},
    "collector_username": {"type": "string", "maxLength": 64},
    "principal": AMOUNT_IN, "annual_rate": {"type": "string", "pattern": r"^\d{1,2}(\.\d{1,2})?$"},
    "tenure_months": {"type": "integer", "minimum": 1, "maximum": 480},
    "disbursed_on": DATE, "first_due_on": DATE,
}
new_loan = obj(loan_fields, ["loan_number", "borrower_name", "borrower_phone", "branch_code", "principal",
                             "annual_rate", "tenure_months", "disbursed_on", "first_due_on"])
loan_change = obj({"collector_username": nullable({"type": "string", "maxLength": 64}),
                   "borrower_phone": {"type": "string"}, "borrower_email": nullable({"type": "string"}),
                   "borrower_language": {"type": "string", "enum": list(LANGUAGES)}}, [])
loan_change["minProperties"] = 1
new_payment = obj({
    "loan_number": {"type": "string", "minLength": 1, "maxLength": 32}, "amount": AMOUNT_IN,
    "mode": {"type": "string", "enum": list(MODES)},
    "utr": {"type": "string", "description": "Bank reference, every mode but CASH: NEFT 16, RTGS 22 letters or "
                                             "digits; IMPS and UPI 12 digits; CHEQUE the 6-digit number."},
    "receipt_number": {"type": "string", "description": "CASH only."},
    "cheque_bank": {"type": "string", "pattern": "^[A-Za-z]{4}$", "description": "CHEQUE only: 4-letter IFSC bank code."},
    "value_date": DATE}, ["loan_number", "amount", "mode"])
logout_body = obj({"refresh_token": {"type": "string", "minLength": 1}}, [])
token_body = obj({"username": {"type": "string", "minLength": 1, "maxLength": 200},
                  "password": {"type": "string", "minLength": 1, "maxLength": 1000}})
refresh_body = obj({"refresh_token": {"type": "string", "minLength": 1}})
reversal_body = obj({"amount": AMOUNT_IN, "reason": {"type": "string", "enum": list(REVERSAL_REASONS)},
                     "note": {"type": "string", "maxLength": 500}}, ["reason"])
dispute_body = obj({"loan_number": {"type": "string", "minLength": 1, "maxLength": 32},
                    "category": {"type": "string", "enum": list(DISPUTE_CATEGORIES)},
                    "description": {"type": "string", "minLength": 1, "maxLength": 2000},
                    "payment": {"type": "string", "maxLength": 16}, "supersedes": {"type": "string", "maxLength": 16}},
                   ["loan_number", "category", "description"])
resolve_body = obj({"outcome": {"type": "string", "enum": ["UPHELD", "REJECTED"]},
                    "note": {"type": "string", "minLength": 1, "maxLength": 2000},
                    "reversal": obj({"amount": AMOUNT_IN, "reason": {"type": "string", "enum": list(REVERSAL_REASONS)}}, [])},
                   ["outcome", "note"])
# The request body of each operation: published in the document and checked by the views (webapp/api/validate.py).
BODIES = {"issueToken": token_body, "refreshToken": refresh_body, "logout": logout_body, "createLoan": new_loan,
          "updateLoan": loan_change, "createPayment": new_payment, "requestReversal": reversal_body,
          "approve": reason_body, "reject": reason_body, "raiseDispute": dispute_body, "resolveDispute": resolve_body}


def _paths() -> dict:
    loan_param = path("loan_number")
    return {
        "/auth/token": {"post": operation(
            "Sign in: an access token (15 min) and a refresh token (7 days)",
            {"201": ok_response("Signed in.", ref("TokenPair"))}, public=True, errors=("400", "401", "405", "422", "429"),
            body=token_body,
            description="Same password rules, failure counting and lockout as the sign-in screen. Limited per "
                        "username and per client address.", op_id="issueToken", tag="auth")},
        "/auth/refresh": {"post": operation(
            "Rotate the refresh token", {"200": ok_response("A new pair; the old refresh token is used up.", ref("TokenPair"))},
            public=True, errors=("400", "401", "405", "422", "429"),
            body=refresh_body,
            description="Each refresh token works once. Presenting a used one again revokes the whole family "
                        "(every token of that sign-in) and answers 401 `token_reused`.", op_id="refreshToken", tag="auth")},
        "/auth/logout": {"post": operation(
            "Sign out: revoke the token family",
            {"200": ok_response("Revoked.", obj({"revoked": {"const": True}}))}, public=True,
            errors=("400", "401", "405", "422", "429"),
            description="With `Authorization: Bearer <access token>`, or a JSON body {\"refresh_token\": …}.",
            body=logout_body, body_required=False,
            op_id="logout", tag="auth")},
        "/loans": {
            "get": operation("Loans in your scope", {"200": ok_response("A page of loans.", {"type": "array", "items": ref("LoanItem")}, listing=True)},
                             parameters=PAGING + [
                                 query("q", STR, "Loan number, borrower name or phone."),
                                 query("branch", STR, "Branch code."), query("collector", STR, "Collector username."),
                                 query("asset_class", {"type": "string", "enum": list(ASSET_CLASSES)}),
                                 query("bucket", STR, "A collection bucket label, e.g. 1-30."),
                                 query("status", {"type": "string", "enum": list(LOAN_STATUSES)}),
                                 query("dpd_min", {"type": "integer", "minimum": 0, "maximum": 100000}),
                                 query("dpd_max", {"type": "integer", "minimum": 0, "maximum": 100000}),
                                 query("disbursed_from", DATE), query("disbursed_to", DATE),
                                 query("sort", {"type": "string", "enum": ["dpd", "overdue", "number", "disbursed", "priority"]})],
                             op_id="listLoans", tag="loans"),
            "post": operation("Create a loan (admin): terms and schedule are fixed from then on",
                              {"201": ok_response("Created.", ref("Loan"))}, body=new_loan,
                              description=READ_ONLY_NOTE, op_id="createLoan", tag="loans")},
        "/loans/{loan_number}": {
            "parameters": [loan_param],
            "get": operation("One loan with its live position", {"200": ok_response("The loan.", ref("Loan"))},
                             op_id="getLoan", tag="loans"),
            "patch": operation("Change the collector or the borrower's contact details",
                               {"200": ok_response("Changed.", ref("Loan"))}, body=loan_change,
                               description="Only collector_username, borrower_phone, borrower_email and "
                                           "borrower_language; any other field is refused (422 `immutable_field`, "
                                           "audited). Needs the assign_collector permission (manager, admin).",
                               op_id="updateLoan", tag="loans")},
        "/loans/{loan_number}/schedule": {
            "parameters": [loan_param],
            "get": operation("The loan's instalments with what is paid", {
                "200": ok_response("A page of instalments.", {"type": "array", "items": ref("Instalment")}, listing=True)},
                parameters=PAGING, op_id="getSchedule", tag="loans")},
        "/payments": {"post": operation(
            "Record a payment (idempotent)",
            {"201": ok_response("Posted to the ledger.", ref("PaymentFields"), headers=replayed),
             "202": ok_response("Backdated beyond the threshold: waits for a manager's approval (`approval_id`).",
                                ref("PaymentFields"), headers=replayed)},
            errors=("400", "401", "403", "404", "405", "409", "422", "429"), body=new_payment,
            parameters=[idem_header],
            description="`Idempotency-Key` is required (400 without it). The same key with the same body answers the "
                        "stored status and body with `Idempotent-Replayed: true` (never rate-limited); with a different "
                        "body 422 `idempotency_key_reused`; while the first is still running 409 "
                        "`idempotency_in_flight`. A UTR already booked is 409 `duplicate_utr` naming the payment. "
                        + READ_ONLY_NOTE, op_id="createPayment", tag="payments")},
        "/payments/{reference}": {
            "parameters": [path("reference")],
            "get": operation("One payment", {"200": ok_response("The payment.", ref("Payment"))},
                             op_id="getPayment", tag="payments")},
        "/payments/{reference}/reversals": {
            "parameters": [path("reference")],
            "post": operation("Ask for a reversal (maker-checker)", {"201": ok_response("The approval item.", ref("Approval"))},
                              errors=("400", "401", "403", "404", "405", "409", "422", "429"),
                              body=reversal_body,
                              description="Empty amount: all that is left. Another person approves it.",
                              op_id="requestReversal", tag="payments")},
        "/approvals": {"get": operation(
            "The approvals inbox", {"200": ok_response("A page of items.", {"type": "array", "items": ref("Approval")}, listing=True)},
            parameters=PAGING + DATE_RANGE + [query("status", {"type": "string", "enum": list(APPROVAL_STATUSES)}),
                                              query("kind", {"type": "string", "enum": list(APPROVAL_KINDS)}),
                                              query("maker", STR), query("branch", STR, "Branch code.")],
            op_id="listApprovals", tag="approvals")},
        "/approvals/{approval_id}/approve": {
            "parameters": [path("approval_id", {"type": "integer", "minimum": 1, "maximum": 2147483647})],
            "post": operation("Approve (never your own item)", {"200": ok_response("Decided.", ref("Approval"))},
                              errors=("400", "401", "403", "404", "405", "409", "422", "429"), body=reason_body,
                              op_id="approve", tag="approvals")},
        "/approvals/{approval_id}/reject": {
            "parameters": [path("approval_id", {"type": "integer", "minimum": 1, "maximum": 2147483647})],
            "post": operation("Reject (never your own item)", {"200": ok_response("Decided.", ref("Approval"))},
                              errors=("400", "401", "403", "404", "405", "409", "422", "429"), body=reason_body,
                              op_id="reject", tag="approvals")},
        "/disputes": {"post": operation(
            "Raise a dispute on a loan or one of its payments", {"201": ok_response("Raised.", ref("Dispute"))},
            errors=("400", "401", "403", "404", "405", "409", "422", "429"),
            body=dispute_body,
            description="Evidence files are added on the dispute's screen.", op_id="raiseDispute", tag="disputes")},
        "/disputes/{reference}/resolve": {
            "parameters": [path("reference")],
            "post": operation("Resolve a dispute (a second person)", {"200": ok_response("Resolved.", ref("Dispute"))},
                              errors=("400", "401", "403", "404", "405", "409", "422", "429"),
                              body=resolve_body,
                              description="An OPEN dispute's review is started and ended in one step (both audited). "
                                          "`reversal` (upheld payment disputes) opens a reversal for approval.",
                              op_id="resolveDispute", tag="disputes")},
        "/reconciliation/statements": {"post": {
            **operation("Import a bank statement (finance)", {"201": ok_response("Imported and matched.", ref("Statement"))},
                        errors=("400", "401", "403", "405", "409", "413", "422", "429"),
                        op_id="importStatement", tag="reconciliation",
                        description="multipart/form-data: `bank` (a configured layout) and `file` (CSV or XLSX). "
                                    "The same file twice is 409 `duplicate_statement`."),
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": obj({
                "bank": {"type": "string", "enum": sorted(current_app.config["BANK_LAYOUTS"])},
                "file": {"type": "string", "format": "binary"}})}}}}},
        "/dayend/runs": {"get": operation(
            "Job runs, newest first (admin)", {"200": ok_response("A page of runs.", {"type": "array", "items": ref("CronRun")}, listing=True)},
            parameters=PAGING + DATE_RANGE + [query("job", STR), query("status", {"type": "string", "enum": list(RUN_STATUSES)})],
            op_id="listRuns", tag="dayend")},
        "/openapi.json": {"get": {"summary": "This document", "operationId": "openapi", "tags": ["meta"], "security": [],
                                  "responses": {"200": {"description": "OpenAPI 3.1",
                                                        "content": {"application/json": {"schema": {"type": "object"}}}}}}},
    }


def document() -> dict:
    errors = {f"E{status}": error_response(status) for status in ERROR_TEXT}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Kisht API", "version": "1.0.0",
                 "description": "Collections API of Kisht. Every response is the envelope {success, data, error, meta}; "
                                "amounts are decimal strings, dates YYYY-MM-DD, timestamps ISO 8601 with offset. "
                                "See docs/api.md."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearerAuth": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": SCHEMAS,
            "responses": errors,
        },
    }


def query_parameters(rule: str, method: str) -> frozenset[str]:
    """The query parameters the document declares for a Flask rule (e.g. "/loans/<loan_number>") and method."""
    path_key = rule.replace("<int:", "<").replace("<", "{").replace(">", "}")
    key = (path_key, method.lower())
    if key not in _QUERY_CACHE:
        operation = _paths().get(path_key, {}).get(method.lower(), {})
        _QUERY_CACHE[key] = frozenset(p["name"] for p in operation.get("parameters", []) if p.get("in") == "query")
    return _QUERY_CACHE[key]


_QUERY_CACHE: dict[tuple[str, str], frozenset[str]] = {}
