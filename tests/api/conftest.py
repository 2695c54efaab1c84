import json
from importlib import resources

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.conftest import stub_env


@pytest.fixture
def env(stub, tmp_path):
    return stub_env(stub, tmp_path)


def _document() -> dict:
    return json.loads(resources.files("app.api").joinpath("openapi.json").read_text("utf-8"))


class OpenApiChecker:
    """Checks a test-client response against the OpenAPI document's schema for it."""

    def __init__(self):
        self.document = _document()
        resource = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self.registry = Registry().with_resource("urn:openapi", resource)

    def check(self, response, path: str, method: str) -> None:
        operation = self.document["paths"][path][method]
        spec = operation["responses"].get(str(response.status_code)) or operation["responses"].get("default")
        assert spec is not None, f"{response.status_code} is not documented for {method.upper()} {path}"
        if "$ref" in spec:
            spec = self._resolve(spec["$ref"])
        content = spec.get("content")
        if not content:
            return
        assert response.mimetype in content, f"{response.mimetype} not documented"
        schema = content[response.mimetype]["schema"]
        if "$ref" in schema:
            schema = {"$ref": "urn:openapi" + schema["$ref"]}
        jsonschema.Draft202012Validator(schema, registry=self.registry).validate(response.get_json())

    def _resolve(self, ref: str) -> dict:
        node = self.document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node


@pytest.fixture(scope="session")
def openapi():
    return OpenApiChecker()
