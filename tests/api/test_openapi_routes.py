"""The OpenAPI document and app.url_map agree: every route of the service's surface is documented with
every method it accepts, every documented operation exists, and each operation's security matches the
view's access declaration."""
from __future__ import annotations

import re

import pytest

from app.api import access
from tests.api.conftest import _document
from tests.conftest import base_env

# Not the API surface: the admin console, the reconnect-link pages (browser pages reached from a
# link), the demo parties, static files and the Prometheus scrape (/metrics, in the README).
UNDOCUMENTED_PREFIXES = ("/admin/", "/link/", "/demo/", "/static/", "/metrics")
IMPLICIT_METHODS = {"HEAD", "OPTIONS"}
def openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def _app():
    from app import create_app

    return create_app(test_config={"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"}, env=base_env())


APP = _app()
DOCUMENT = _document()
ROUTES = sorted({(openapi_path(rule.rule), method.lower(), rule.endpoint)
                 for rule in APP.url_map.iter_rules() if not rule.rule.startswith(UNDOCUMENTED_PREFIXES)
                 for method in rule.methods - IMPLICIT_METHODS})
OPERATIONS = sorted((path, method) for path, item in DOCUMENT["paths"].items() for method in item
                    if method != "parameters")


def _param(path: str, method: str, *rest):
    return pytest.param(path, method, *rest, id=f"{method.upper()} {path}")


@pytest.mark.parametrize(("path", "method", "endpoint"), [_param(*route) for route in ROUTES])
def test_every_route_and_method_is_documented(path, method, endpoint):
    assert method in DOCUMENT["paths"].get(path, {}), f"{method.upper()} {path} ({endpoint}) is not in openapi.json"


@pytest.mark.parametrize(("path", "method"), [_param(*operation) for operation in OPERATIONS])
def test_every_documented_operation_exists(path, method):
    assert (path, method) in {(p, m) for p, m, _ in ROUTES}, f"{method.upper()} {path} is documented but not served"


@pytest.mark.parametrize(("path", "method", "endpoint"),
                         [_param(*route) for route in ROUTES if route[0].startswith("/api/")])
def test_documented_security_matches_the_views_declaration(path, method, endpoint):
    declared = access.declared_access(APP.view_functions[endpoint])
    security = DOCUMENT["paths"][path][method].get("security", DOCUMENT.get("security", []))
    expected = {"user": [{"userToken": []}], "public": [],
                "machine": [{"machineToken": [declared.permission]}]}[declared.kind]
    assert security == expected


def test_the_document_names_its_server():
    assert DOCUMENT["servers"]


def test_the_served_document_names_this_deployment(client):
    served = client.get("/api/openapi.json").get_json()
    assert served["servers"] == [{"url": "https://connector.test", "description": "This service."}]
    enabled = ["github", "google", "spotify", "stub"]  # tests/api enable the loopback stub provider too
    assert served["components"]["parameters"]["Provider"]["schema"].pop("enum") == enabled
    form = served["paths"]["/connect/start"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
    assert form["schema"]["properties"]["provider"].pop("enum") == enabled
    assert served["paths"] == DOCUMENT["paths"]
    assert served["components"] == DOCUMENT["components"]
