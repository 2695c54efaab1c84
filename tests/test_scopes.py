"""Scope lists: parsing what callers send, the union an incremental authorization asks for."""
from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app import scopes
from app.errors import InvalidRequest, ScopeNotAllowed
from app.providers.spec import ProviderSpec

SPEC = ProviderSpec(name="acme", display_name="Acme", authorize_url="https://a.test/a", token_url="https://a.test/t",
                    scopes=("openid", "offline_access"))


def test_a_list_is_split_on_single_spaces_and_deduplicated_in_order():
    assert scopes.parse_scope_list("b a b https://x.test/auth/drive", "f") == ("b", "a", "https://x.test/auth/drive")


@pytest.mark.parametrize("raw", ["", " ", "a  b", " a", "a ", "a\tb", 'a"b', "a\\b", "a,b", "é", "a\x00",
                                 "x" * 129, " ".join(["s"] * 31)])
def test_malformed_lists_are_refused_without_echoing_them(raw):
    with pytest.raises(InvalidRequest) as refused:
        scopes.parse_scope_list(raw, "required_scopes")
    assert refused.value.description.startswith("required_scopes must be a space-separated list")
    assert refused.value.code == "invalid_request"
    with pytest.raises(ScopeNotAllowed):
        scopes.parse_scope_list(raw, "scopes", error=ScopeNotAllowed)


@given(st.text(max_size=60))
def test_the_openapi_pattern_and_the_parser_agree(raw):
    """What the document's pattern accepts is accepted, and nothing else (a trailing newline aside: Python's
    ``$`` admits one before the end, ECMA-262's does not)."""
    documented = re.search(scopes.SCOPE_LIST_PATTERN, raw) is not None and not raw.endswith("\n")
    try:
        scopes.parse_scope_list(raw, "f")
        accepted = True
    except InvalidRequest:
        accepted = False
    assert accepted == documented


def test_incremental_authorization_asks_for_defaults_granted_and_asked_once_each():
    assert scopes.authorize_scopes(SPEC, ["openid", "email"], ["profile", "email"]) == (
        "openid", "offline_access", "email", "profile")


def test_missing_keeps_the_order_asked():
    assert scopes.missing(["a", "b"], ["c", "a", "d", "c"]) == ("c", "d")


def test_allowed_scopes_empty_allows_any():
    scopes.check_allowed(SPEC, ("anything",))


def test_a_scope_outside_allowed_scopes_is_refused_naming_it():
    spec = dataclasses.replace(SPEC, allowed_scopes=("email", "profile"))
    scopes.check_allowed(spec, ("email",))
    with pytest.raises(ScopeNotAllowed, match="admin") as refused:
        scopes.check_allowed(spec, ("email", "admin"))
    assert refused.value.code == "scope_not_allowed" and refused.value.status == 400
