"""Scope lists: what a caller may ask for, what an authorize request asks for, what a connection lacks.

A scope list from outside (the start form's ``scopes``, the token endpoint's ``required_scopes``) is
RFC 6749 §3.3: scope tokens separated by single spaces. Each token is printable ASCII without space,
``"``, ``\\`` and ``,`` (a comma is the separator of the providers that answer comma-separated lists,
so it could never be stored as part of one scope), at most ``MAX_SCOPE_LENGTH`` characters, at most
``MAX_SCOPES`` of them. Stored lists (``connections.scopes``) are space-separated too, whatever
separator the provider uses on the wire (``ProviderSpec.scope_separator``).
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import InvalidRequest, ScopeNotAllowed
from .providers.spec import ProviderSpec

MAX_SCOPE_LENGTH = 128
MAX_SCOPES = 30  # 30 × 129 characters stays under the start form's 4,096-character field limit
SCOPE_TOKEN = rf"[\x21\x23-\x2b\x2d-\x5b\x5d-\x7e]{{1,{MAX_SCOPE_LENGTH}}}"
SCOPE_LIST_RE = re.compile(rf"{SCOPE_TOKEN}(?: {SCOPE_TOKEN}){{0,{MAX_SCOPES - 1}}}")
# The same, as the OpenAPI document's pattern (ECMA-262 syntax, anchored).
SCOPE_LIST_PATTERN = "^" + SCOPE_LIST_RE.pattern + "$"
RULE = (f"a space-separated list of at most {MAX_SCOPES} scopes, each 1 to {MAX_SCOPE_LENGTH} printable "
        "ASCII characters other than space, '\"', '\\\\' and ','")


def parse_scope_list(raw: str, field: str, *, error: type[InvalidRequest] = InvalidRequest) -> tuple[str, ...]:
    """The distinct scopes of ``raw``, in the order given; ``error`` (400) naming ``field`` if it is
    not a well-formed list. The message never repeats the value."""
    if not isinstance(raw, str) or not SCOPE_LIST_RE.fullmatch(raw):
        raise error(f"{field} must be {RULE}")
    return union(raw.split(" "))


def union(*lists: Iterable[str]) -> tuple[str, ...]:
    """Every scope of ``lists`` once, first occurrence first."""
    return tuple(dict.fromkeys(scope for scopes in lists for scope in scopes))


def missing(granted: Iterable[str], required: Iterable[str]) -> tuple[str, ...]:
    """The ``required`` scopes that ``granted`` lacks, in the order required."""
    have = set(granted)
    return tuple(scope for scope in union(required) if scope not in have)


def check_allowed(spec: ProviderSpec, asked: tuple[str, ...]) -> None:
    """``ScopeNotAllowed`` unless every ``asked`` scope is in the entry's ``allowed_scopes`` (empty: any)."""
    if not spec.allowed_scopes:
        return
    refused = missing(spec.allowed_scopes, asked)
    if refused:
        raise ScopeNotAllowed(f"provider {spec.name!r} does not allow the scope(s) {' '.join(refused)}")


def authorize_scopes(spec: ProviderSpec, granted: Iterable[str], asked: Iterable[str]) -> tuple[str, ...]:
    """What an authorize request asks for: the entry's default ``scopes``, what the user's existing
    connection was granted (incremental authorization: a reconnect never loses a scope) and what the
    app asked for now."""
    return union(spec.scopes, granted, asked)


def scope_parameter(spec: ProviderSpec, scopes: tuple[str, ...]) -> dict[str, str]:
    """The authorize request's scope parameters: ``scope_param`` (Slack's user_scope) joined with
    ``scope_separator``, and ``include_granted_scopes=true`` where the entry says so (Google)."""
    params = {spec.scope_param: spec.scope_separator.join(scopes)} if scopes else {}
    if spec.include_granted_scopes:
        params["include_granted_scopes"] = "true"
    return params
