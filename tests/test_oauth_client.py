"""The token and userinfo response parsers: every shape a provider can send ends in a TokenResponse
or in our ProviderError/ProviderUnavailable, never in another exception."""
import base64
import dataclasses
import json
from datetime import timedelta

import pytest
import requests
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import clock, oauth_client
from app.errors import ProviderError, ProviderUnavailable
from app.providers.registry import load_specs

SPECS = load_specs(None)
SPOTIFY = dataclasses.replace(SPECS["spotify"], client_id="c", client_secret="s")
GITHUB = dataclasses.replace(SPECS["github"], client_id="c", client_secret="s")
TOKEN_URL = SPOTIFY.token_url
TIMEOUT = (1.0, 1.0)


def _exchange(spec=SPOTIFY, **mock):
    with responses.RequestsMock() as http:
        http.post(spec.token_url, **mock)
        return oauth_client.exchange_code(spec, code="c", code_verifier=None, redirect_uri="https://x.test/cb",
                                          timeout=TIMEOUT)


def test_missing_expires_in_uses_the_providers_default_ttl():
    before = clock.now()
    token = _exchange(json={"access_token": "a", "refresh_token": "r"})
    assert token.expires_at is not None
    assert timedelta(seconds=3599) <= token.expires_at - before <= timedelta(seconds=3601)


def test_default_ttl_comes_from_the_spec():
    spec = dataclasses.replace(SPOTIFY, default_access_token_ttl=120)
    before = clock.now()
    token = _exchange(spec, json={"access_token": "a", "refresh_token": "r"})
    assert timedelta(seconds=119) <= token.expires_at - before <= timedelta(seconds=121)


def test_non_expiring_provider_keeps_tokens_without_expiry():
    token = _exchange(GITHUB, json={"access_token": "gho_x", "token_type": "bearer", "scope": "read:user"})
    assert token.expires_at is None and token.refresh_token is None


def test_expires_in_given_wins_over_the_default():
    before = clock.now()
    token = _exchange(json={"access_token": "a", "refresh_token": "r", "expires_in": "60"})
    assert timedelta(seconds=59) <= token.expires_at - before <= timedelta(seconds=61)


def test_scope_as_json_array_is_read():
    token = _exchange(json={"access_token": "a", "refresh_token": "r", "expires_in": 60, "scope": ["x", "y"]})
    assert token.scopes == ("x", "y")


@pytest.mark.parametrize("body", [
    {"access_token": 123, "refresh_token": "r"},
    {"access_token": ["a"], "refresh_token": "r"},
    {"access_token": "a", "refresh_token": 42},
    {"access_token": "a", "refresh_token": {"value": "r"}},
    {"access_token": "a", "refresh_token": "r", "scope": 7},
    {"access_token": "a", "refresh_token": "r", "scope": {"a": 1}},
    {"access_token": "a", "refresh_token": "r", "scope": ["a", 1]},
    {"access_token": "a", "refresh_token": "r", "expires_in": "soon"},
    {"access_token": "a", "refresh_token": "r", "expires_in": [60]},
    {"access_token": "a", "refresh_token": "r", "expires_in": {"s": 60}},
    {"access_token": "a", "refresh_token": "r", "expires_in": -5},
    {"access_token": "a", "refresh_token": "r", "expires_in": True},
    {"access_token": "a", "refresh_token": "r", "expires_at": [1]},
    {"access_token": "a", "refresh_token": "r", "token_type": {"x": 1}},
    {"access_token": "a", "refresh_token": "r", "id_token": 5},
], ids=lambda body: json.dumps(body)[:60])
def test_wrong_types_are_a_malformed_response(body):
    with pytest.raises(ProviderUnavailable):
        _exchange(json=body)


@pytest.mark.parametrize("raw", [
    b"[1, 2]", b'"token"', b"42", b"null", b"<html>", b"\xff\xfe\x00", b"[" * 100_000 + b"]" * 100_000,
    b'{"access_token": "a", "expires_in": 1e999}', b'{"access_token": "a", "expires_in": ' + b"9" * 5000 + b"}",
    b'{"access_token": "a", "expires_in": NaN}',
])
def test_bodies_that_are_no_token_object_are_a_clear_error(raw):
    with pytest.raises(ProviderUnavailable):
        _exchange(body=raw, content_type="application/json")


@pytest.mark.parametrize("status", [302, 307, 308])
def test_a_redirect_from_the_token_endpoint_is_a_clear_error_and_not_followed(status):
    """The code and the client's credentials go to the configured token URL and nowhere else."""
    with pytest.raises(ProviderUnavailable, match=f"redirect \\(HTTP {status}\\).*token URL"):
        _exchange(status=status, headers={"Location": "https://elsewhere.test/token"})


def test_huge_expires_in_is_capped():
    token = _exchange(json={"access_token": "a", "refresh_token": "r", "expires_in": 10**30})
    assert token.expires_at - clock.now() <= timedelta(seconds=oauth_client.MAX_SECONDS)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
FIELDS = st.sampled_from(["access_token", "refresh_token", "expires_in", "expires_at", "scope", "token_type",
                          "id_token", "error", "error_description"])
TOKEN_BODIES = st.one_of(
    JSON,
    st.dictionaries(FIELDS, JSON, max_size=8),
    st.fixed_dictionaries({"access_token": st.text(min_size=1, max_size=10)},
                          optional={"refresh_token": JSON, "expires_in": JSON, "scope": JSON,
                                    "token_type": JSON, "id_token": JSON, "expires_at": JSON}),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=TOKEN_BODIES, status=st.sampled_from([200, 400, 401]))
def test_any_token_response_shape_is_a_token_or_our_error(body, status):
    try:
        token = _exchange(body=json.dumps(body), status=status, content_type="application/json")
    except (ProviderError, ProviderUnavailable):
        return
    assert isinstance(token.access_token, str) and token.access_token
    assert token.refresh_token is None or isinstance(token.refresh_token, str)
    assert all(isinstance(scope, str) for scope in token.scopes)


USERINFO = "https://api.spotify.com/v1/me"


def _account_id(**mock):
    token = oauth_client.TokenResponse("a", "r", "Bearer", None, ())
    with responses.RequestsMock() as http:
        http.get(USERINFO, **mock)
        return oauth_client.fetch_account_id(SPOTIFY, token, TIMEOUT)


@pytest.mark.parametrize("raw", [b"[" * 100_000, b"\xff\xfe", b"x" * (oauth_client.MAX_BODY + 10), b"<html>"])
def test_userinfo_that_is_no_json_object_is_unavailable(raw):
    with pytest.raises(ProviderUnavailable):
        _account_id(body=raw, content_type="application/json")


@pytest.mark.parametrize("data", [[{"id": "x"}], {"id": None}, {"id": True}, {"id": {"n": 1}}, {"id": ""}, "id"])
def test_userinfo_without_a_usable_id_is_a_provider_error(data):
    with pytest.raises(ProviderError) as info:
        _account_id(json=data)
    assert info.value.code == "account_lookup_failed"


def test_userinfo_numeric_id_is_read_as_text():
    assert _account_id(json={"id": 12345678901234567890}) == "12345678901234567890"


@settings(max_examples=100, deadline=None)
@given(data=JSON)
def test_any_userinfo_shape_is_an_id_or_our_error(data):
    try:
        account = _account_id(body=json.dumps(data), content_type="application/json")
    except (ProviderError, ProviderUnavailable):
        return
    assert isinstance(account, str) and account


def test_an_oversized_account_lookup_answer_is_refused(stub):
    from app.oauth_client import TokenResponse
    from app.providers.spec import ProviderSpec

    spec = ProviderSpec(name="stub", display_name="Stub", account_id_source="userinfo",
                        account_id_url=f"{stub.url}/api/big", account_id_field="id")  # 2 MiB
    token = TokenResponse(access_token="a", refresh_token=None, token_type="Bearer", expires_at=None, scopes=())
    with pytest.raises(ProviderUnavailable) as caught:
        oauth_client.fetch_account_id(spec, token, (1, 2))
    assert "oversized" in caught.value.description


def test_the_account_lookup_reads_the_id(stub):
    from app.oauth_client import TokenResponse
    from app.providers.spec import ProviderSpec

    access, _ = stub.issue()
    spec = ProviderSpec(name="stub", display_name="Stub", account_id_source="userinfo",
                        account_id_url=f"{stub.url}/api/me", account_id_field="path")
    token = TokenResponse(access_token=access, refresh_token=None, token_type="Bearer", expires_at=None, scopes=())
    assert oauth_client.fetch_account_id(spec, token, (1, 2)) == "/api/me"


def test_authorize_url_builds_no_http_session(monkeypatch):
    """/connect/start only needs a URL: building a requests session per start cost 11 % of it."""
    def no_session(*args, **kwargs):
        raise AssertionError("authorize_url built an HTTP session")

    monkeypatch.setattr(requests, "Session", no_session)
    spec = dataclasses.replace(load_specs(None)["google"], client_id="cid", client_secret="secret")
    url = oauth_client.authorize_url(spec, redirect_uri="https://connector.test/connect/callback/google",
                                     state="S", code_verifier="v" * 43, nonce="N")
    from urllib.parse import parse_qs, urlsplit

    params = parse_qs(urlsplit(url).query)
    assert url.startswith(spec.authorize_url + "?")
    assert {k: v[0] for k, v in params.items()} == {
        "response_type": "code", "client_id": "cid", "redirect_uri": "https://connector.test/connect/callback/google",
        "scope": " ".join(spec.scopes), "state": "S", "nonce": "N", "code_challenge_method": "S256",
        "code_challenge": oauth_client.create_s256_code_challenge("v" * 43), **dict(spec.extra_authorize_params),
        "include_granted_scopes": "true"}  # the catalog's Google entry: incremental authorization


def test_authorize_url_asks_for_scopes_under_the_entrys_scope_param():
    """Slack user scopes go in user_scope, comma-separated; no scope= is sent beside it."""
    from urllib.parse import parse_qs, urlsplit

    spec = dataclasses.replace(load_specs(None)["slack"], client_id="cid", client_secret="secret",
                               scopes=("users:read", "chat:write"))
    url = oauth_client.authorize_url(spec, redirect_uri="https://connector.test/cb", state="S", code_verifier=None,
                                     nonce=None)
    params = parse_qs(urlsplit(url).query)
    assert params["user_scope"] == ["users:read,chat:write"] and "scope" not in params


def test_pkce_verifier_is_one_secrets_call_and_within_rfc_7636(monkeypatch):
    import re
    import secrets

    calls = []
    real = secrets.token_urlsafe
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n: calls.append(n) or real(n))
    verifier = oauth_client.new_pkce_verifier()
    assert calls == [64] and re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", verifier)
    assert oauth_client.new_pkce_verifier() != verifier


# --- the issue-17 vocabulary: request shapes on a real loopback server --------------------------------

from app.providers.spec import ConnectionParam, ErrorShape, ProviderSpec, TokenPaths  # noqa: E402
from app.providers.templates import InvalidConnectionParam  # noqa: E402

REDIRECT = "https://connector.test/connect/callback/p"
TOKEN_OK = {"access_token": "a-1", "refresh_token": "r-1", "expires_in": 60, "token_type": "Bearer"}


def _spec(base: str, **values) -> ProviderSpec:
    values = {"authorize_url": f"{base}/authorize", "token_url": f"{base}/token", **values}
    return ProviderSpec(name="p", display_name="P", client_id="cid", client_secret="csecret", **values)


def _exchange_at(spec, **kw):
    return oauth_client.exchange_code(spec, code="the-code", code_verifier=None, redirect_uri=REDIRECT,
                                      timeout=TIMEOUT, **kw)


def _refresh_at(spec, **kw):
    return oauth_client.refresh(spec, refresh_token="r-0", scopes=("s",), timeout=TIMEOUT, **kw)


def test_json_token_body_with_basic_auth_and_extra_headers(recorder):
    recorder.answer("/token", json_body=TOKEN_OK)
    spec = _spec(recorder.url, token_body_format="json", token_request_headers=(("Notion-Version", "2022-06-28"),))
    token = _exchange_at(spec)
    sent = recorder.at("/token")[0]
    assert token.access_token == "a-1"
    assert sent.content_type == "application/json"
    assert sent.json() == {"grant_type": "authorization_code", "code": "the-code", "redirect_uri": REDIRECT}
    assert sent.headers["Authorization"] == "Basic " + base64.b64encode(b"cid:csecret").decode()
    assert sent.headers["Notion-Version"] == "2022-06-28"


def test_json_token_body_with_client_secret_post_carries_the_credentials_in_the_json(recorder):
    recorder.answer("/token", json_body=TOKEN_OK)
    _refresh_at(_spec(recorder.url, token_body_format="json", client_auth="client_secret_post"))
    sent = recorder.at("/token")[0]
    assert sent.json() == {"grant_type": "refresh_token", "refresh_token": "r-0", "client_id": "cid",
                           "client_secret": "csecret"}
    assert "Authorization" not in sent.headers


def test_form_body_stays_form_encoded_by_default(recorder):
    recorder.answer("/token", json_body=TOKEN_OK)
    _exchange_at(_spec(recorder.url, client_auth="client_secret_post"))
    sent = recorder.at("/token")[0]
    assert sent.content_type.startswith("application/x-www-form-urlencoded")
    assert sent.form()["client_secret"] == "csecret" and sent.form()["code"] == "the-code"


def test_token_params_go_with_the_exchange_and_refresh_params_with_the_refresh(recorder):
    recorder.answer("/token", json_body=TOKEN_OK)
    spec = _spec(recorder.url, token_params=(("user_type", "Online"),), refresh_params=(("tenant", "t1"),))
    _exchange_at(spec)
    _refresh_at(spec)
    exchange, refresh = (r.form() for r in recorder.at("/token"))
    assert exchange["user_type"] == "Online" and "tenant" not in exchange
    assert refresh["tenant"] == "t1" and "user_type" not in refresh


def test_refresh_goes_to_refresh_url_when_the_entry_has_one(recorder):
    recorder.answer("/token", json_body=TOKEN_OK)
    recorder.answer("/refresh", json_body=TOKEN_OK)
    _refresh_at(_spec(recorder.url, refresh_url=f"{recorder.url}/refresh"))
    assert [r.path for r in recorder.requests] == ["/refresh"]


@pytest.mark.parametrize("sends", [True, False])
def test_refresh_sends_the_redirect_uri_only_where_the_entry_says(recorder, sends):
    recorder.answer("/token", json_body=TOKEN_OK)
    _refresh_at(_spec(recorder.url, refresh_sends_redirect_uri=sends), redirect_uri=REDIRECT)
    assert ("redirect_uri" in recorder.at("/token")[0].form()) is sends
    if sends:
        assert recorder.at("/token")[0].form()["redirect_uri"] == REDIRECT


def test_templated_token_url_is_filled_with_the_connections_params(recorder):
    recorder.answer("/acme/token", json_body=TOKEN_OK)
    spec = _spec(recorder.url, token_url=f"{recorder.url}/{{subdomain}}/token",
                 params=(ConnectionParam("subdomain", "[a-z0-9-]{1,63}"),))
    _exchange_at(spec, params={"subdomain": "acme"})
    assert [r.path for r in recorder.requests] == ["/acme/token"]


@pytest.mark.parametrize("hostile", ["evil.com/", "../token", "acme/../x", "a?b=1", "ACME#", ""])
def test_a_param_off_its_pattern_never_reaches_a_url(recorder, hostile):
    spec = _spec(recorder.url, token_url=f"{recorder.url}/{{subdomain}}/token",
                 params=(ConnectionParam("subdomain", "[a-z0-9-]{1,63}"),))
    with pytest.raises(InvalidConnectionParam) as exc:
        _exchange_at(spec, params={"subdomain": hostile})
    assert recorder.requests == []
    assert not hostile or hostile not in exc.value.description


def test_stored_params_the_entry_no_longer_accepts_fail_the_refresh_as_reconnect(recorder):
    spec = _spec(recorder.url, token_url=f"{recorder.url}/{{subdomain}}/token",
                 params=(ConnectionParam("subdomain", "[a-z]{1,8}"),))
    with pytest.raises(ProviderError) as exc:
        _refresh_at(spec, params={"subdomain": "now-invalid-9"})
    assert exc.value.code == "invalid_connection_param" and recorder.requests == []


# --- the issue-17 vocabulary: response shapes ----------------------------------------------------------

SLACK = dataclasses.replace(
    SPOTIFY, token_response=TokenPaths(access_token="authed_user.access_token",
                                       refresh_token="authed_user.refresh_token",
                                       expires_in="authed_user.expires_in", scope="authed_user.scope",
                                       token_type="authed_user.token_type"),
    error_shape=ErrorShape(field="error", success_flag="ok"))


def test_tokens_nested_in_the_response_are_read_at_their_paths():
    token = _exchange(SLACK, json={"ok": True, "access_token": "xoxb-bot", "authed_user": {
        "access_token": "xoxp-user", "refresh_token": "xoxe-1", "expires_in": 43200, "scope": "chat:write,users:read",
        "token_type": "user"}})
    assert (token.access_token, token.refresh_token, token.token_type) == ("xoxp-user", "xoxe-1", "user")
    assert token.scopes == ("chat:write", "users:read")
    assert timedelta(seconds=43190) < token.expires_at - clock.now() <= timedelta(seconds=43200)


def test_a_refresh_answer_is_read_at_the_entrys_refresh_token_response_paths(recorder):
    """Slack: the code exchange nests the user token under authed_user, a refresh answers at the top level."""
    recorder.answer("/token", json_body={"ok": True, "access_token": "xoxp-2", "refresh_token": "xoxe-2",
                                         "expires_in": 43200, "scope": "users:read", "token_type": "user"})
    spec = _spec(recorder.url, token_response=SLACK.token_response, error_shape=SLACK.error_shape,
                 refresh_token_response=TokenPaths())
    token = _refresh_at(spec)
    assert (token.access_token, token.refresh_token, token.token_type, token.scopes) == (
        "xoxp-2", "xoxe-2", "user", ("users:read",))
    assert timedelta(seconds=43190) < token.expires_at - clock.now() <= timedelta(seconds=43200)


def test_without_refresh_token_response_a_refresh_answer_is_read_at_the_token_response_paths(recorder):
    recorder.answer("/token", json_body={"ok": True, "access_token": "xoxb-bot", "authed_user": {
        "access_token": "xoxp-2", "refresh_token": "xoxe-2", "expires_in": 60}})
    spec = _spec(recorder.url, token_response=SLACK.token_response, error_shape=SLACK.error_shape)
    token = _refresh_at(spec)
    assert (token.access_token, token.refresh_token) == ("xoxp-2", "xoxe-2")


@pytest.mark.parametrize("body, code", [
    ({"ok": False, "error": "invalid_code"}, "invalid_code"),
    ({"ok": False}, "provider_error"),
    ({"ok": "false", "error": "token_revoked"}, "token_revoked"),
    ({"ok": False, "error": "<script>alert(1)</script>"}, "provider_error"),
])
def test_success_flag_false_on_http_200_is_the_providers_error(body, code):
    with pytest.raises(ProviderError) as exc:
        _exchange(SLACK, json=body, status=200)
    assert exc.value.code == code
    assert "<script>" not in exc.value.description


def test_a_custom_error_field_on_http_200_is_an_error_only_when_the_entry_says_so():
    nested = dataclasses.replace(SPOTIFY, error_shape=ErrorShape(field="status.code", on_http_200=True))
    with pytest.raises(ProviderError) as exc:
        _exchange(nested, json={"status": {"code": "expired_code"}}, status=200)
    assert exc.value.code == "expired_code"
    with pytest.raises(ProviderError) as exc:
        _exchange(nested, json={"status": {"code": "invalid_grant"}}, status=400)
    assert exc.value.code == "invalid_grant"


def test_a_form_encoded_error_answered_with_http_200_is_the_providers_error():
    with pytest.raises(ProviderError) as exc:
        _exchange(GITHUB, body="error=bad_verification_code&error_description=The+code+is+wrong", status=200,
                  content_type="application/x-www-form-urlencoded; charset=utf-8")
    assert exc.value.code == "bad_verification_code"


def test_a_form_encoded_token_is_read_whatever_the_entry_says():
    token = _exchange(GITHUB, body="access_token=gho_x&scope=repo%2Cgist&token_type=bearer", status=200,
                      content_type="application/x-www-form-urlencoded")
    assert token.access_token == "gho_x" and token.scopes == ("repo", "gist")


@pytest.mark.parametrize("body", ["access_token=a&access_token=b", "a=%ZZ&&=", "\xff"])
def test_a_malformed_form_encoded_body_is_unavailable(body):
    with pytest.raises(ProviderUnavailable):
        _exchange(GITHUB, body=body.encode("latin-1"), status=200, content_type="application/x-www-form-urlencoded")


@pytest.mark.parametrize("error", ["x" * 65, "a b", "códe", "a;drop", "", None, 7])
def test_error_codes_from_the_provider_are_never_echoed_unless_plain(error):
    with pytest.raises(ProviderError) as exc:
        _exchange(json={"error": error} if error is not None else {}, status=400)
    assert exc.value.code == "provider_error"


def test_refresh_token_expires_in_is_read_at_its_path():
    spec = dataclasses.replace(SPOTIFY, token_response=TokenPaths(refresh_token_expires_in="x_refresh_expires_in"))
    token = _exchange(spec, json={**TOKEN_OK, "x_refresh_expires_in": 8726400})
    assert token.refresh_token_expires_in == 8726400
    assert _exchange(json=TOKEN_OK).refresh_token_expires_in is None


def test_account_id_from_a_param():
    spec = dataclasses.replace(SPOTIFY, account_id_source="param", account_id_field="realm_id")
    token = oauth_client.TokenResponse("a", "r", "Bearer", None, ())
    assert oauth_client.fetch_account_id(spec, token, TIMEOUT, {"realm_id": "9130"}) == "9130"
def _authorize_query(spec, **kwargs) -> dict[str, list[str]]:
    from urllib.parse import parse_qs, urlsplit

    url = oauth_client.authorize_url(spec, redirect_uri="https://connector.test/cb", state="S", code_verifier=None,
                                     nonce=None, **kwargs)
    return parse_qs(urlsplit(url).query)


def test_authorize_url_asks_for_the_given_scopes_with_the_entrys_parameter_and_separator():
    slack_like = dataclasses.replace(SPOTIFY, scope_param="user_scope", scope_separator=",")
    query = _authorize_query(slack_like, scopes=("channels:read", "chat:write"))
    assert query["user_scope"] == ["channels:read,chat:write"] and "scope" not in query
    assert "include_granted_scopes" not in query


def test_authorize_url_asks_google_style_providers_to_include_granted_scopes():
    google_like = dataclasses.replace(SPOTIFY, include_granted_scopes=True)
    query = _authorize_query(google_like, scopes=("email", "drive.file"))
    assert query["scope"] == ["email drive.file"] and query["include_granted_scopes"] == ["true"]


def test_authorize_url_without_scopes_sends_no_scope_parameter():
    query = _authorize_query(dataclasses.replace(SPOTIFY, scopes=()))
    assert "scope" not in query
    assert _authorize_query(SPOTIFY)["scope"] == [" ".join(SPOTIFY.scopes)]  # default: the entry's scopes


_QUERY_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(extra=st.dictionaries(st.sampled_from(["prompt", "access_type", "audience", "x y", "ä&="]), _QUERY_TEXT,
                             max_size=3),
       endpoint_query=st.lists(st.tuples(st.sampled_from(["a", "b&", "c d"]), _QUERY_TEXT), max_size=2),
       fragment=st.sampled_from(["", "frag"]), scopes=st.lists(st.sampled_from(["read", "a:b", "x/y?z"]), max_size=3),
       separator=st.sampled_from([" ", ","]), granted=st.booleans(), state=_QUERY_TEXT,
       verifier=st.none() | st.just("v" * 43), nonce=st.none() | _QUERY_TEXT.filter(bool))
def test_authorize_url_is_one_urlencode_of_every_parameter_in_order(extra, endpoint_query, fragment, scopes, separator,
                                                                     granted, state, verifier, nonce):
    """The fixed part is encoded once per provider and scopes; the URL is still exactly the endpoint's
    query and the grant's parameters, in RFC 6749 order, through one urlencode (as Authlib's)."""
    from urllib.parse import urlencode, urlsplit, urlunsplit

    endpoint = urlunsplit(("https", "auth.test", "/authorize", urlencode(endpoint_query), fragment))
    spec = dataclasses.replace(SPOTIFY, authorize_url=endpoint, extra_authorize_params=tuple(extra.items()),
                               scope_separator=separator, include_granted_scopes=granted)
    for _ in range(2):  # the second time from the cache
        url = oauth_client.authorize_url(spec, redirect_uri="https://connector.test/cb/x", state=state,
                                         code_verifier=verifier, nonce=nonce, scopes=tuple(scopes))
        pairs = [*endpoint_query, ("response_type", "code"), ("client_id", "c"),
                 ("redirect_uri", "https://connector.test/cb/x"), ("state", state), *extra.items(),
                 *([("scope", separator.join(scopes))] if scopes else []),
                 *([("include_granted_scopes", "true")] if granted else []),
                 *([("code_challenge", oauth_client.create_s256_code_challenge(verifier)),
                    ("code_challenge_method", "S256")] if verifier else []),
                 *([("nonce", nonce)] if nonce else [])]
        assert url == urlunsplit(urlsplit(endpoint)._replace(query=urlencode(pairs)))


@given(st.text(st.sampled_from("aZ09_.~-=+/ %&ä"), max_size=40) | st.text(max_size=40))
def test_form_quoting_of_the_state_is_quote_plus(value):
    from urllib.parse import quote_plus

    assert oauth_client._form_quoted(value) == quote_plus(value)


def test_authorize_url_asks_each_attempt_for_its_own_state_challenge_and_nonce():
    first = _authorize_query(SPOTIFY)
    url = oauth_client.authorize_url(SPOTIFY, redirect_uri="https://connector.test/cb", state="T",
                                     code_verifier="w" * 43, nonce="M")
    from urllib.parse import parse_qs, urlsplit

    second = parse_qs(urlsplit(url).query)
    assert first["state"] == ["S"] and "code_challenge" not in first and "nonce" not in first
    assert second["state"] == ["T"] and second["nonce"] == ["M"]
    assert second["code_challenge"] == [oauth_client.create_s256_code_challenge("w" * 43)]


def test_a_token_response_without_scope_is_granted_what_was_asked():
    with responses.RequestsMock() as http:
        http.post(SPOTIFY.token_url, json={"access_token": "a", "refresh_token": "r"})
        token = oauth_client.exchange_code(SPOTIFY, code="c", code_verifier=None, redirect_uri="https://x.test/cb",
                                           timeout=TIMEOUT, scopes=("user-read-email", "streaming"))
    assert token.scopes == ("user-read-email", "streaming")
    narrowed = _exchange(json={"access_token": "a", "refresh_token": "r", "scope": "user-read-email"})
    assert narrowed.scopes == ("user-read-email",)  # the provider's own answer wins
