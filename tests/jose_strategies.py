"""Hypothesis strategies for hostile compact JWS tokens: any JSON shape, size and encoding in the
header and the payload, signed with the right key or not.

``tokens(key)`` draws a token; most are malformed in one way, some are well-formed but odd
(extra members of every type), a few are valid.
"""
from __future__ import annotations

import base64
import json
import time

from hypothesis import strategies as st
from joserfc.jws import JWSRegistry

from tests.conftest import AUDIENCE, ISSUER

_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**18, max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
    st.sampled_from(["RS256", "none", "HS256", "kid-1", "b64", "exp", "JWT", "\ud800", "a\nb"]),
)
json_values = st.recursive(
    _leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=16)

_header_members = st.sampled_from(["alg", "kid", "typ", "cty", "crit", "b64", "jku", "jwk", "x5u", "x5c", "x5t",
                                   "zip", "enc", "x"])
headers = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"alg": st.sampled_from(["RS256", "RS256", "PS256", "none", "HS256"]) | json_values,
         "kid": st.just("kid-1") | json_values},
        optional={"crit": st.lists(json_values, max_size=3) | json_values, "typ": st.just("JWT") | json_values,
                  "b64": json_values}),
    st.builds(lambda extra: {"alg": "RS256", "kid": "kid-1", **extra},
              st.dictionaries(_header_members, json_values, max_size=3)),
)


def _claims(overrides: dict) -> dict:
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": "auth0|alice", "exp": int(time.time()) + 600, **overrides}


_claim_names = st.sampled_from(["iss", "aud", "sub", "exp", "nbf", "iat", "scope", "permissions", "azp",
                                "client_id", "gty", "x"])
payloads = st.one_of(
    json_values,
    st.dictionaries(_claim_names, json_values, max_size=4).map(_claims),
)


def _nested(depth: int, inside: bytes = b"") -> bytes:
    return b"[" * depth + inside + b"]" * depth


def encodings(values: st.SearchStrategy) -> st.SearchStrategy[bytes]:
    """The JSON text of ``values`` in many encodings, or bytes that are not JSON at all."""
    return st.one_of(
        values.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")),
        values.map(lambda v: json.dumps(v).encode()),
        values.map(lambda v: json.dumps(v).encode("utf-16")),
        values.map(lambda v: json.dumps(v).encode("utf-32")),
        values.map(lambda v: json.dumps(v).encode("latin-1", "replace") + b"\xff"),
        st.integers(min_value=1, max_value=4000).map(_nested),  # a few KB of nested arrays
        st.tuples(st.integers(min_value=1, max_value=600), values).map(
            lambda d: b'{"alg":"RS256","kid":"kid-1","x":' + _nested(d[0], json.dumps(d[1]).encode()) + b"}"),
        values.map(lambda v: b'{"alg":"RS256","kid":"kid-1","alg":' + json.dumps(v).encode() + b"}"),
        st.sampled_from([b"NaN", b'{"exp":NaN}', b'{"exp":Infinity}', b'{"exp":1e999}', b"1" * 5000,
                         b'{"exp":1' + b"0" * 5000 + b"}", b"", b"{", b"\x00"]),
        st.binary(max_size=64),
    )


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@st.composite
def tokens(draw, key) -> str:
    header = draw(encodings(headers))
    payload = draw(encodings(payloads))
    signing_input = f"{b64(header)}.{b64(payload)}"
    how = draw(st.sampled_from(["valid", "valid", "garbage", "empty"]))
    if how == "valid":
        signature = b64(JWSRegistry.algorithms["RS256"].sign(signing_input.encode(), key))
    elif how == "garbage":
        signature = b64(draw(st.binary(max_size=300)))
    else:
        signature = ""
    return f"{signing_input}.{signature}"
