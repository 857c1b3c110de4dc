"""The OpenAPI document: served, valid OpenAPI 3.1, the same as docs/openapi.json, and a readable docs page."""
import json

from webapp.config import ROOT


def test_served_document_is_the_committed_file(client):
    served = client.get("/api/v1/openapi.json").get_json()
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert served == committed, "regenerate docs/openapi.json (see docs/api.md)"
    assert served["openapi"].startswith("3.") and served["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_every_route_is_in_the_document(app, client):
    served = client.get("/api/v1/openapi.json").get_json()
    documented = {(path, method.upper()) for path, item in served["paths"].items() for method in item if method != "parameters"}
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and rule.endpoint != "api.docs":
            path = rule.rule[len("/api/v1"):].replace("<int:approval_id>", "{approval_id}")
            for argument in rule.arguments:
                path = path.replace(f"<{argument}>", "{" + argument + "}")
            routes |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == routes


def test_docs_page_lists_the_operations(client):
    response = client.get("/api/v1/docs")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "/payments" in html and "Idempotency-Key" in html


def test_the_schema_is_valid_openapi(client):
    import schemathesis

    schema = schemathesis.openapi.from_dict(client.get("/api/v1/openapi.json").get_json())
    assert all(result.ok() for result in schema.get_all_operations())
