import base64
import hashlib
import hmac
import json
import time

import pytest
import responses
from joserfc import jwt
from joserfc.jwk import RSAKey

from app.errors import InvalidToken, SigningKeysUnavailable
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
    ({"nbf": int(time.time()) + 30 * 86400}, "not valid yet"),  # computed at collection: far enough ahead
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


def test_jwks_unavailable_is_503_not_invalid_token(auth0):
    # A 401 would tell an SPA that its user is signed out; the token may well be good.
    with responses.RequestsMock() as http:
        http.get(JWKS_URL, status=503)
        verifier = AccessTokenVerifier(JwksCache(ISSUER, JWKS_URL, cooldown=60, timeout=(1, 1)), AUDIENCE)
        with pytest.raises(SigningKeysUnavailable) as raised:
            verifier.verify(auth0.token())
    assert raised.value.status == 503 and 1 <= raised.value.retry_after <= 60


def test_unknown_kid_while_the_jwks_is_unreachable_is_503(verifier, auth0, http, monotonic):
    verifier.verify(auth0.token())
    http.replace(responses.GET, JWKS_URL, status=502)
    monotonic.value += 61
    rotated = RSAKey.generate_key(2048, parameters={"kid": "kid-2"})
    with pytest.raises(SigningKeysUnavailable):
        verifier.verify(auth0.token(key=rotated, header={"kid": "kid-2"}))
    assert verifier.verify(auth0.token()).sub == "auth0|alice"  # a cached key still works


@pytest.mark.parametrize("jwks", [
    [], "keys", {"keys": "x"}, {"keys": [1, None, "k", []]}, {"keys": [{"kty": "RSA"}]},
    {"keys": [{"kty": "RSA", "n": 5, "e": []}]}, {"keys": [{"kty": "EC", "crv": "P-999", "x": "a", "y": "b"}]},
])
def test_a_malformed_jwks_is_unavailable_not_a_crash(auth0, jwks):
    with responses.RequestsMock() as http:
        http.get(JWKS_URL, json=jwks)
        verifier = AccessTokenVerifier(JwksCache(ISSUER, JWKS_URL, cooldown=60, timeout=(1, 1)), AUDIENCE)
        with pytest.raises(SigningKeysUnavailable):
            verifier.verify(auth0.token())


def test_one_bad_key_in_the_jwks_does_not_void_the_others(auth0):
    with responses.RequestsMock() as http:
        http.get(JWKS_URL, json={"keys": [{"kty": "RSA", "kid": "broken", "n": "!!", "e": 3}, *auth0.jwks["keys"]]})
        verifier = AccessTokenVerifier(JwksCache(ISSUER, JWKS_URL, cooldown=60, timeout=(1, 1)), AUDIENCE)
        assert verifier.verify(auth0.token()).sub == "auth0|alice"


def test_key_declared_algorithm_is_honoured(http, monotonic):
    key = RSAKey.generate_key(2048, parameters={"kid": "ps", "alg": "PS256"})
    http.replace(responses.GET, JWKS_URL, json={"keys": [key.as_dict(private=False)]})
    verifier = AccessTokenVerifier(JwksCache(ISSUER, JWKS_URL, cooldown=60, timeout=(1, 1)), AUDIENCE)
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "a", "exp": int(time.time()) + 60}
    assert verifier.verify(jwt.encode({"alg": "PS256", "kid": "ps"}, claims, key, algorithms=["PS256"])).sub == "a"
    with pytest.raises(InvalidToken, match="unknown key"):
        same_key_no_alg = RSAKey.import_key({k: v for k, v in key.as_dict(private=True).items() if k != "alg"})
        verifier.verify(jwt.encode({"alg": "RS256", "kid": "ps"}, claims, same_key_no_alg))


def signed(key, header, payload) -> str:
    """A compact JWS over any header and payload bytes (which joserfc's encoder would refuse to build)."""
    from joserfc.jws import JWSRegistry

    signing_input = f"{_b64(header)}.{_b64(payload)}"
    signature = JWSRegistry.algorithms["RS256"].sign(signing_input.encode(), key)
    return f"{signing_input}.{_b64(signature)}"


GOOD_HEADER = {"alg": "RS256", "kid": "kid-1"}
NESTED = b"[" * 3000 + b"]" * 3000  # a few KB: once a RecursionError in identity.py


def _claims(**overrides) -> dict:
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": "auth0|alice", "exp": int(time.time()) + 60, **overrides}


@pytest.mark.parametrize("header", [
    {**GOOD_HEADER, "crit": [1]},  # once a TypeError inside joserfc
    {**GOOD_HEADER, "crit": [None]},
    {**GOOD_HEADER, "crit": [{}]},  # once "unhashable type"
    {**GOOD_HEADER, "crit": "exp"},
    {**GOOD_HEADER, "crit": ["exp"]},
    {**GOOD_HEADER, "b64": False, "crit": ["b64"]},
    NESTED,
    b'{"alg":"RS256","kid":"kid-1","x":' + NESTED + b"}",
    b'{"alg":"RS256","kid":"kid-1","x":' + b"[" * 20 + b"]" * 20 + b"}",  # legal JSON, but nested past our bound
    b"\xff\xfe\x00",  # not UTF-8
    '{"alg":"RS256","kid":"kid-1"}'.encode("utf-16"),  # json.loads would guess UTF-16; RFC 7515 says UTF-8
    b'{"alg":"RS256","kid":"kid-1","alg":"none"}',  # duplicate member
    b'{"alg":"RS256","kid":"kid-1","x":NaN}',
    b'{"alg":"RS256","kid":"kid-1","x":1e999}',
    b'{"alg":"RS256","kid":"kid-1","x":1' + b"0" * 5000 + b"}",  # past Python's int-from-str limit
    [GOOD_HEADER], 1, None, "RS256",
])
def test_malformed_headers_are_invalid_token(verifier, auth0, header):
    with pytest.raises(InvalidToken):
        verifier.verify(signed(auth0.key, header, _claims()))


@pytest.mark.parametrize("payload", [
    NESTED,
    b'{"sub":"a","x":' + NESTED + b"}",
    b"\xff\xfe\x00",
    b"[]", b"1", b'"claims"', b"null",
    b'{"iss":"%s","aud":"%s","sub":"a","exp":NaN}' % (ISSUER.encode(), AUDIENCE.encode()),  # once accepted
    b'{"iss":"%s","aud":"%s","sub":"a","exp":1e999}' % (ISSUER.encode(), AUDIENCE.encode()),  # once accepted
    _claims(exp=True),
    _claims(exp=[1]),
    _claims(nbf={}),
    _claims(sub="\ud800"),  # a lone surrogate: cannot be stored or logged
    _claims(sub="alice\nadmin"),
    _claims(sub=["auth0|alice"]),
    _claims(aud={"a": AUDIENCE}),
    _claims(iss=[ISSUER]),
])
def test_malformed_payloads_are_invalid_token(verifier, auth0, payload):
    with pytest.raises(InvalidToken):
        verifier.verify(signed(auth0.key, GOOD_HEADER, payload))


def test_nesting_is_bounded_whatever_the_brackets_inside_strings(verifier, auth0):
    """The nesting walk is skipped for a text with few "{" and "[": strings full of them, or a value
    nested exactly to the bound, are still accepted; one level more is not."""
    def nested(depth: int) -> object:
        value: object = 1
        for _ in range(depth - 1):  # the claims object itself is the first level
            value = [value]
        return value

    assert verifier.verify(signed(auth0.key, GOOD_HEADER, _claims(x="{[" * 40, y=nested(16)))).sub == "auth0|alice"
    assert verifier.verify(signed(auth0.key, GOOD_HEADER, _claims(y=nested(16)))).sub == "auth0|alice"
    with pytest.raises(InvalidToken):
        verifier.verify(signed(auth0.key, GOOD_HEADER, _claims(y=nested(17))))


def test_odd_but_harmless_claims_are_tolerated(verifier, auth0):
    token = signed(auth0.key, GOOD_HEADER, _claims(scope=1, permissions=[[1], "read:x"], azp={}, gty=[], x=[[[]]]))
    principal = verifier.verify(token)
    assert principal.permissions == {"read:x"} and principal.client_id is None and not principal.is_machine


@pytest.mark.parametrize("token", ["a+b.c.d", "eyJ=.e30.c2ln", "e30.e30.c2ln\n", "e30.e30.c2ln?", "x.y.z"])
def test_characters_outside_base64url_are_refused(verifier, token):
    with pytest.raises(InvalidToken):
        verifier.verify(token)
