import base64
import hashlib
import hmac
import json
import time

import pytest
import responses
from joserfc import jwt
from joserfc.jwk import RSAKey

from app.errors import InvalidToken
from app.identity import AccessTokenVerifier, JwksCache, Principal
from tests.conftest import AUDIENCE, ISSUER, JWKS_URL, Auth0StandIn


class FakeMonotonic:
    def __init__(self):
        self.value = 1000.0

    def __call__(self):
        return self.value


@pytest.fixture
def auth0():
    return Auth0StandIn()


@pytest.fixture
def http(auth0):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(JWKS_URL, json=auth0.jwks)
        yield mock


@pytest.fixture
def monotonic():
    return FakeMonotonic()


@pytest.fixture
def verifier(http, monotonic):
    cache = JwksCache(ISSUER, JWKS_URL, cooldown=60, timeout=(1, 1), monotonic=monotonic)
    return AccessTokenVerifier(cache, AUDIENCE)


def _b64(data) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_valid_user_token(verifier, auth0):
    principal = verifier.verify(auth0.token("google-oauth2|123"))
    assert principal == Principal(sub="google-oauth2|123", is_machine=False,
                                  permissions=frozenset({"openid", "profile"}), client_id=None)


def test_machine_token_by_gty_or_clients_suffix(verifier, auth0):
    assert verifier.verify(auth0.m2m_token()).is_machine
    assert verifier.verify(auth0.token("abc@clients")).is_machine
    principal = verifier.verify(auth0.token("x", gty="client-credentials", permissions=["read:tokens"], scope=None))
    assert principal.is_machine and principal.permissions == {"read:tokens"}


def test_audience_as_string(verifier, auth0):
    assert verifier.verify(auth0.token(aud=AUDIENCE)).sub == "auth0|alice"


def test_alg_none_is_rejected(verifier, auth0):
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "a", "exp": int(time.time()) + 60}
    token = f"{_b64({'alg': 'none', 'kid': 'kid-1'})}.{_b64(claims)}."
    with pytest.raises(InvalidToken, match="not allowed"):
        verifier.verify(token)


def test_hs256_signed_with_public_key_is_rejected(verifier, auth0):
    # Built by hand: joserfc itself refuses to use a public key as an HMAC secret.
    public_pem = auth0.key.as_pem(private=False)
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "a", "exp": int(time.time()) + 60}
    signing_input = f"{_b64({'alg': 'HS256', 'kid': 'kid-1'})}.{_b64(claims)}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{_b64(signature)}"
    with pytest.raises(InvalidToken, match="not allowed"):
        verifier.verify(forged)


def test_token_signed_by_other_key_with_same_kid_is_rejected(verifier, auth0):
    other = RSAKey.generate_key(2048, parameters={"kid": "kid-1"})
    with pytest.raises(InvalidToken, match="signature"):
        verifier.verify(auth0.token(key=other))


def test_key_bearing_headers_are_ignored(verifier, auth0, http):
    attacker = RSAKey.generate_key(2048, parameters={"kid": "evil"})
    token = auth0.token(key=attacker, header={"kid": "evil", "jku": "https://evil.test/jwks",
                                              "jwk": attacker.as_dict(private=False)})
    with pytest.raises(InvalidToken, match="unknown key"):
        verifier.verify(token)
    assert all("evil.test" not in call.request.url for call in http.calls)


def test_unknown_kid_refetches_at_most_once_per_cooldown(verifier, auth0, http, monotonic):
    verifier.verify(auth0.token())
    assert len(http.calls) == 1
    stranger = RSAKey.generate_key(2048, parameters={"kid": "rotated"})
    for _ in range(50):
        with pytest.raises(InvalidToken):
            verifier.verify(auth0.token(key=stranger, header={"kid": f"bogus-{_}"}))
    monotonic.value += 61
    with pytest.raises(InvalidToken):
        verifier.verify(auth0.token(key=stranger, header={"kid": "bogus"}))
    assert len(http.calls) == 2


def test_rotated_key_is_picked_up_after_cooldown(verifier, auth0, http, monotonic):
    verifier.verify(auth0.token())
    new_key = RSAKey.generate_key(2048, parameters={"kid": "kid-2", "alg": "RS256"})
    http.replace(responses.GET, JWKS_URL, json={"keys": [new_key.as_dict(private=False)]})
    monotonic.value += 61
    assert verifier.verify(auth0.token(key=new_key, header={"kid": "kid-2"})).sub == "auth0|alice"


@pytest.mark.parametrize("claims,message", [
    ({"iss": "https://evil.test/"}, "issuer"),
    ({"iss": ISSUER.rstrip("/")}, "issuer"),
    ({"aud": "https://other.api"}, "audience"),
    ({"aud": "my-spa-client-id"}, "ID token"),
    ({"exp": int(time.time()) - 120}, "expired"),
    ({"exp": None}, "no expiry"),
    ({"exp": "tomorrow"}, "no expiry"),
    ({"nbf": int(time.time()) + 600}, "not valid yet"),
    ({"sub": None}, "no subject"),
    ({"sub": ""}, "no subject"),
])
def test_bad_claims_are_rejected(verifier, auth0, claims, message):
    with pytest.raises(InvalidToken, match=message):
        verifier.verify(auth0.token(**claims))


def test_small_clock_skew_is_tolerated(verifier, auth0):
    assert verifier.verify(auth0.token(exp=int(time.time()) - 10, nbf=int(time.time()) + 10))


@pytest.mark.parametrize("token", [None, "", "garbage", "a.b.c", "a.b", "x" * 20000, "...."])
def test_garbage_is_rejected(verifier, token):
    with pytest.raises(InvalidToken):
        verifier.verify(token)


@pytest.mark.parametrize("header", [
    {"alg": ["RS256"], "kid": "kid-1"},
    {"alg": {}, "kid": "kid-1"},
    {"alg": 256, "kid": "kid-1"},
    {"alg": "RS256", "kid": ["kid-1"]},
    {"alg": "RS256", "kid": {}},
    {"alg": "RS256", "kid": 1},
    {"alg": "RS256", "kid": "kid-1", "typ": ["JWT"]},
    {"alg": "RS256", "kid": "kid-1", "typ": {}},
    {"alg": "RS256", "kid": "kid-1", "cty": 5},
])
def test_non_string_header_members_are_rejected(verifier, header):
    # A list or object where a string belongs once escaped as TypeError (unhashable) -> 500.
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "a", "exp": int(time.time()) + 60}
    with pytest.raises(InvalidToken, match="not allowed|header is not valid"):
        verifier.verify(f"{_b64(header)}.{_b64(claims)}.{_b64(b'sig')}")


def test_jwks_url_from_discovery(auth0):
    with responses.RequestsMock() as http:
        http.get(ISSUER + ".well-known/openid-configuration",
                 json={"issuer": ISSUER, "jwks_uri": "https://tenant.test/keys"})
        http.get("https://tenant.test/keys", json=auth0.jwks)
        verifier = AccessTokenVerifier(JwksCache(ISSUER, None, cooldown=60, timeout=(1, 1)), AUDIENCE)
        assert verifier.verify(auth0.token()).sub == "auth0|alice"


def test_jwks_unavailable_gives_clear_error(auth0):
    with responses.RequestsMock() as http:
        http.get(JWKS_URL, status=503)
        verifier = AccessTokenVerifier(JwksCache(ISSUER, JWKS_URL, cooldown=60, timeout=(1, 1)), AUDIENCE)
        with pytest.raises(InvalidToken, match="unavailable"):
            verifier.verify(auth0.token())


def test_key_declared_algorithm_is_honoured(http, monotonic):
    key = RSAKey.generate_key(2048, parameters={"kid": "ps", "alg": "PS256"})
    http.replace(responses.GET, JWKS_URL, json={"keys": [key.as_dict(private=False)]})
    verifier = AccessTokenVerifier(JwksCache(ISSUER, JWKS_URL, cooldown=60, timeout=(1, 1)), AUDIENCE)
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "a", "exp": int(time.time()) + 60}
    assert verifier.verify(jwt.encode({"alg": "PS256", "kid": "ps"}, claims, key, algorithms=["PS256"])).sub == "a"
    with pytest.raises(InvalidToken, match="unknown key"):
        same_key_no_alg = RSAKey.import_key({k: v for k, v in key.as_dict(private=True).items() if k != "alg"})
        verifier.verify(jwt.encode({"alg": "RS256", "kid": "ps"}, claims, same_key_no_alg))
