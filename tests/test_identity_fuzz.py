"""Property: whatever a caller sends as an access token, the verifier answers with a Principal or
raises our InvalidToken, never anything else (which would be a 500 and a traceback in the log)."""
from __future__ import annotations

import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc.jwk import RSAKey

from app.errors import InvalidToken, SigningKeysUnavailable
from app.identity import AccessTokenVerifier, JwksCache, Principal, is_clean_text
from tests.conftest import AUDIENCE, ISSUER, JWKS_URL
from tests.jose_strategies import json_values, tokens

KEY = RSAKey.generate_key(2048, parameters={"kid": "kid-1", "alg": "RS256", "use": "sig"})
FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def verifier():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as http:
        http.get(JWKS_URL, json={"keys": [KEY.as_dict(private=False)]})
        yield AccessTokenVerifier(JwksCache(ISSUER, JWKS_URL, cooldown=60, timeout=(1, 1)), AUDIENCE)


@FUZZ
@given(token=tokens(KEY))
def test_any_token_is_a_principal_or_invalid_token(verifier, token):
    try:
        principal = verifier.verify(token)
    except InvalidToken as exc:
        assert type(exc) is InvalidToken and exc.status == 401
        assert len(exc.description) < 120  # a short reason, never the token or a parser dump
        return
    assert isinstance(principal, Principal) and is_clean_text(principal.sub)


@FUZZ
@given(token=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_any_string_is_a_principal_or_invalid_token(verifier, token):
    with pytest.raises(InvalidToken):
        verifier.verify(token)


@settings(max_examples=100, deadline=None, database=None)
@given(jwks=json_values | st.dictionaries(st.just("keys"), st.lists(
    st.fixed_dictionaries({"kty": st.sampled_from(["RSA", "EC", "OKP", "oct"])},
                          optional={"kid": json_values, "n": json_values, "e": json_values, "crv": json_values,
                                    "x": json_values, "y": json_values, "alg": json_values}), max_size=3)))
def test_any_jwks_document_gives_keys_or_unavailable(jwks):
    token = f"{'eyJhbGciOiJSUzI1NiIsImtpZCI6ImtpZC0xIn0'}.e30.c2ln"  # {"alg":"RS256","kid":"kid-1"}
    with responses.RequestsMock() as http:
        http.get(JWKS_URL, json=jwks)
        verifier = AccessTokenVerifier(JwksCache(ISSUER, JWKS_URL, cooldown=60, timeout=(1, 1)), AUDIENCE)
        with pytest.raises((InvalidToken, SigningKeysUnavailable)):
            verifier.verify(token)
