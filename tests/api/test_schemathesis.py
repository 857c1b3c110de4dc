"""schemathesis against a live server on PostgreSQL with real data: no server error, no response outside the schema.

Every operation of /api/v1/openapi.json is called with generated requests (valid and invalid), signed in as a
user who may use it; each response is checked against the document (status codes, content type, headers,
body schema), and requests that break the schema must be refused.
"""
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode
from schemathesis import checks as builtin_checks
from schemathesis.specs.openapi import checks as openapi_checks

# Who calls each operation (someone the matrix allows, so the calls reach the services).
CALLER = {"createLoan": "adm", "listRuns": "adm", "listApprovals": "mgr", "approve": "mgr", "reject": "mgr",
          "resolveDispute": "mgr", "updateLoan": "mgr", "raiseDispute": "col"}
MAX_EXAMPLES = int(os.environ.get("KISHT_SCHEMATHESIS_EXAMPLES", "25"))
CHECKS = [builtin_checks.not_a_server_error, openapi_checks.status_code_conformance,
          openapi_checks.content_type_conformance, openapi_checks.response_headers_conformance,
          openapi_checks.response_schema_conformance, openapi_checks.negative_data_rejection]


OPERATIONS = ["issueToken", "refreshToken", "logout", "listLoans", "createLoan", "getLoan", "updateLoan", "getSchedule",
              "createPayment", "getPayment", "requestReversal", "listApprovals", "approve", "reject", "raiseDispute",
              "resolveDispute", "importStatement", "listRuns"]


@pytest.fixture(scope="module")
def api_schema(live):
    return schemathesis.openapi.from_url(f"{live.base}/api/v1/openapi.json")


def test_the_document_lists_every_operation(api_schema):
    found = {result.ok().definition.raw["operationId"] for result in api_schema.get_all_operations()}
    assert found >= set(OPERATIONS)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("operation_id", OPERATIONS)
def test_api_matches_its_openapi_document(api_schema, live, operation_id, mode):
    operation = next(r.ok() for r in api_schema.get_all_operations() if r.ok().definition.raw["operationId"] == operation_id)
    definition = operation.definition.raw
    headers = {}
    if definition.get("security") != []:
        headers["Authorization"] = f"Bearer {live.token(CALLER.get(operation_id, 'fin'))}"

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()
