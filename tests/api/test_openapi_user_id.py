"""The UserId schema says exactly which user ids the service accepts, and 400 is documented for the rest."""
from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from app.api.machine import USER_ID_RE
from tests.api.conftest import _document

DOCUMENT = _document()
SCHEMA = DOCUMENT["components"]["parameters"]["UserId"]["schema"]


# JSON Schema patterns are ECMA-262 regular expressions: "$" is the end of input (Python's also
# matches before a final newline, so it is read as "\Z" here).
ECMA_PATTERN = re.compile(SCHEMA["pattern"].removesuffix("$") + r"\Z")


def documented(value: str) -> bool:
    return SCHEMA["minLength"] <= len(value) <= SCHEMA["maxLength"] and ECMA_PATTERN.search(value) is not None


def test_the_pattern_and_the_service_agree_on_every_character():
    characters = [chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF] + ["\U0001f600", "\U000e0001"]
    disagree = [hex(ord(ch)) for ch in characters if documented("a" + ch) != bool(USER_ID_RE.fullmatch("a" + ch))]
    assert disagree == []


@pytest.mark.parametrize("value", ["", "a" * 256])
def test_the_lengths_agree(value):
    assert documented(value) is False and USER_ID_RE.fullmatch(value) is None


@pytest.mark.parametrize("path", ["/api/users/{user_id}/connections", "/api/users/{user_id}/connections/{provider}"])
def test_400_is_documented_where_a_user_id_is_taken(path):
    for method, operation in DOCUMENT["paths"][path].items():
        if method != "parameters":
            assert "400" in operation["responses"], f"{method} {path}"


@pytest.mark.parametrize("user_id", ["a\u0085b", "a\u200bb", "a\u2028b", "a\ufeffb", "a\x7fb"])
def test_an_invisible_or_control_character_is_400_problem_json(client, auth0, openapi, user_id):
    token = auth0.m2m_token("read:connections delete:connections")
    for method in ("get", "delete"):
        response = client.open(f"/api/users/{quote(user_id)}/connections", method=method,
                               headers={"Authorization": "Bearer " + token})
        assert response.status_code == 400
        openapi.check(response, "/api/users/{user_id}/connections", method)


def test_an_unsupported_method_is_405_with_allow(client):
    response = client.patch("/api/providers")
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET"}
