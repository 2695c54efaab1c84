"""The value types of an entry: names, patterns, paths, scopes, URLs; wrong ones are refused without echoing
more than a short prefix of the input."""
import pytest

from app.providers.spec import SpecError, spec_from_mapping

BASE = {"authorize_url": "https://p.test/authorize", "token_url": "https://p.test/token"}
HOSTILE = "evil.com/" + "A" * 5000 + "\n\x00hunter2"


@pytest.mark.parametrize("url", [
    "http://p.test/a", "ftp://p.test/a", "https://user:pw@p.test/a", "https://p.test/a#frag", "https:///a",
    "https://p.test/a b", "https://p.test\\@evil.test/", "//p.test/a", "https://p.test/{a", "https://p.test/a}",
    "https://p.test/{Upper}", "", "https://p.test/" + "a" * 3000,
])
def test_urls_must_be_https_without_userinfo_or_fragment(url):
    with pytest.raises(SpecError, match="provider 'p': authorize_url: "):
        spec_from_mapping("p", {**BASE, "authorize_url": url})


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/a", "http://localhost/a", "http://[::1]:9/a",
                                 "https://p.test/a?client_id={client_id}"])
def test_loopback_http_and_the_client_id_placeholder_are_allowed(url):
    assert spec_from_mapping("p", {**BASE, "authorize_url": url}).authorize_url == url


@pytest.mark.parametrize("name,message", [
    ("Sub", "name: must be a name of lowercase letters"),
    ("a" * 33, "name: must be a name of lowercase letters"),
    ("1sub", "name: must be a name of lowercase letters"),
    ("sub\n", "name: must be a name of lowercase letters"),
    ("return_to", "name: 'return_to' is reserved"),
    ("csrf_token", "name: 'csrf_token' is reserved"),
    ("client_id", "name: 'client_id' is reserved"),
])
def test_param_names_are_short_lowercase_and_not_reserved(name, message):
    with pytest.raises(SpecError, match="params") as caught:
        spec_from_mapping("p", {**BASE, "params": {name: {"pattern": "[a-z]+"}}})
    assert message in str(caught.value)


@pytest.mark.parametrize("pattern,message", [
    ("[a-z", "must be a valid regular expression"),
    ("(", "must be a valid regular expression"),
    ("[a-z]*", "must not match an empty value"),
    ("", "at least 1 character"),
    ("a" * 300, "at most 256 characters"),
])
def test_param_patterns_compile_and_need_a_value(pattern, message):
    with pytest.raises(SpecError, match="params.sub.pattern: ") as caught:
        spec_from_mapping("p", {**BASE, "params": {"sub": {"pattern": pattern}}})
    assert message in str(caught.value)


@pytest.mark.parametrize("key,value", [
    ("client_auth", "private_key_jwt"), ("token_body_format", "xml"), ("revocation_style", "magic"),
    ("revocation_method", "PUT"), ("revocation_auth", "client_secret_jwt"), ("revocation_token", "id"),
    ("scope_separator", ";"), ("params", {"sub": {"pattern": "[a-z]+", "source": "header"}}),
])
def test_enumerated_keys_take_only_their_values(key, value):
    with pytest.raises(SpecError, match=f"provider 'p': {key}"):
        spec_from_mapping("p", {**BASE, key: value})


@pytest.mark.parametrize("path", ["a..b", ".a", "a.", "a b", "a/b", "a." * 10 + "a", "x" * 65, ""])
def test_token_response_paths_are_dotted_paths(path):
    with pytest.raises(SpecError, match="token_response.refresh_token: must be a dotted path"):
        spec_from_mapping("p", {**BASE, "token_response": {"refresh_token": path}})


@pytest.mark.parametrize("key,value,message", [
    ("token_request_headers", {"Authorization": "Bearer x"}, "name: 'Authorization' is reserved"),
    ("token_request_headers", {"Bad Header": "x"}, "name: must be an HTTP header name"),
    ("token_request_headers", {"X-A": "a\r\nInjected: 1"}, "must be a single line"),
    ("token_params", {"grant_type": "password"}, "name: 'grant_type' is reserved"),
    ("refresh_params", {"refresh_token": "x"}, "name: 'refresh_token' is reserved"),
    ("extra_authorize_params", {"redirect_uri": "https://evil.test/"}, "name: 'redirect_uri' is reserved"),
    ("scopes", ["read write"], "must be a scope"),
    ("scopes", [""], "must be a scope"),
    ("reauth_error_codes", [], "at least 1 item"),
    ("reauth_error_codes", ['bad"code'], "must be an OAuth error code"),
    # Twitch's message: never read as a code (oauth_client.safe_code), so it could never match
    ("reauth_error_codes", ["Invalid refresh token"], "must be an OAuth error code"),
    ("reauth_error_codes", ["invalid-grant"], "must be an OAuth error code"),
    ("error_shape", {"field": "a..b"}, "must be a dotted path"),
    ("error_shape", {"on_http_200": "yes"}, "valid boolean"),
    ("refresh_token_idle_lifetime", 0, "greater than 0"),
    ("default_access_token_ttl", 3600.5, "valid integer"),
    ("display_name", "   ", "must be a non-blank string"),
])
def test_values_of_the_wrong_shape_are_refused(key, value, message):
    with pytest.raises(SpecError, match=f"provider 'p': {key}") as caught:
        spec_from_mapping("p", {**BASE, key: value})
    assert message in str(caught.value)


@pytest.mark.parametrize("entry", [
    {**BASE, "authorize_url": "http://" + HOSTILE},
    {**BASE, "params": {HOSTILE: {"pattern": "[a-z]+"}}},
    {**BASE, HOSTILE: 1},
    {**BASE, "params": {"sub": {"pattern": "[a-z]+", "source": "callback", "path": HOSTILE}}},
    {**BASE, "token_request_headers": {HOSTILE: "x"}},
    {**BASE, "scopes": [HOSTILE]},
    {**BASE, "client_secret": HOSTILE},
])
def test_messages_echo_at_most_a_short_prefix_of_hostile_input(entry):
    with pytest.raises(SpecError) as caught:
        spec_from_mapping("p", entry)
    message = str(caught.value)
    assert "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" not in message and "hunter2" not in message
    assert "\n" not in message and "\x00" not in message and len(message) < 400
