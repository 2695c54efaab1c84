"""Templated provider URLs (app/providers/templates.py): a value reaches a URL only when it full-matches
its declared pattern, and the rendered URL keeps the template's shape."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.providers.spec import ConnectionParam, ProviderSpec
from app.providers.templates import (
    InvalidConnectionParam,
    ParamValues,
    TemplateError,
    bind,
    placeholders,
    render,
    url,
)

SUBDOMAIN = ConnectionParam("subdomain", "[a-z0-9][a-z0-9-]{0,62}")
ANYTHING = ConnectionParam("subdomain", ".*")  # an entry with a careless pattern: the shape check still holds
INSTANCE = ConnectionParam("instance_url", r"https://[a-z0-9-]+\.my\.salesforce\.com", source="token_response")
HOST = ConnectionParam("host", r"[a-z0-9.-]+")
HOSTILE = ["evil.com/", "evil.com", "acme/..", "..", ".", "a@b", "a#b", "a?b", "a b", "a\\b", "a\nb", "%2e%2e",
           "evil.com:443", "ACME", "", "x" * 300]


def test_placeholders_are_plain_names_in_order():
    assert placeholders("https://{subdomain}.zendesk.com/{subdomain}/x?a={{literal}}") == ("subdomain", "subdomain")
    for bad in ("https://{0}.x", "https://{a.b}.x", "https://{a!r}.x", "https://{a:>10}.x", "https://{a", "{A}"):
        with pytest.raises(TemplateError):
            placeholders(bad)


@pytest.mark.parametrize("template, rendered", [
    ("https://{subdomain}.zendesk.com/oauth/tokens", "https://acme.zendesk.com/oauth/tokens"),
    ("http://127.0.0.1:8080/{subdomain}/oauth/tokens", "http://127.0.0.1:8080/acme/oauth/tokens"),
    ("https://api.example.com/v2?tenant={subdomain}", "https://api.example.com/v2?tenant=acme"),
])
def test_a_valid_value_fills_host_path_and_query(template, rendered):
    assert render(template, bind((SUBDOMAIN,), {"subdomain": "acme"})) == rendered


@pytest.mark.parametrize("hostile", HOSTILE)
def test_bind_refuses_what_the_pattern_does_not_fully_match(hostile):
    with pytest.raises(InvalidConnectionParam) as caught:
        bind((SUBDOMAIN,), {"subdomain": hostile})
    assert not hostile or hostile not in caught.value.description  # never echoed


@pytest.mark.parametrize("template", ["https://{subdomain}.zendesk.com/x", "http://127.0.0.1:1/{subdomain}/x"])
@pytest.mark.parametrize("hostile", [h for h in HOSTILE if h and len(h) < 255])
def test_a_careless_pattern_still_cannot_move_the_url(template, hostile):
    try:
        rendered = render(template, bind((ANYTHING,), {"subdomain": hostile}))
    except InvalidConnectionParam:
        return
    # what got through stayed one host label's worth of host, or one path segment
    assert rendered.startswith(template.split("{")[0]) and rendered.endswith(template.split("}")[1])
    assert "/" not in hostile and "?" not in hostile and "#" not in hostile and hostile not in (".", "..")


@given(value=st.text(max_size=40))
def test_no_value_takes_a_host_placeholder_off_its_host(value):
    try:
        rendered = render("https://{subdomain}.zendesk.com/api/", bind((ANYTHING,), {"subdomain": value}))
    except InvalidConnectionParam:
        return
    from urllib.parse import urlsplit

    parts = urlsplit(rendered)
    assert parts.hostname.endswith(".zendesk.com") and parts.path == "/api/" and not parts.username


def test_a_whole_origin_placeholder_must_render_an_https_origin():
    declared = (ConnectionParam("instance_url", ".*", source="token_response"),)
    good = bind((INSTANCE,), {"instance_url": "https://acme.my.salesforce.com"})
    assert render("{instance_url}/services/data/", good) == "https://acme.my.salesforce.com/services/data/"
    for hostile in ("http://evil.example", "https://evil.example/x?", "https://a@evil.example", "javascript:x",
                    "https://evil.example#"):
        with pytest.raises(InvalidConnectionParam):
            render("{instance_url}/services/data/", bind(declared, {"instance_url": hostile}))


def test_a_host_placeholder_gets_host_characters_only():
    for hostile in ("gitlab.example.com/evil", "gitlab.example.com:1@evil", "gitlab.example.com#"):
        with pytest.raises(InvalidConnectionParam):
            render("https://{host}/oauth/token", bind((ConnectionParam("host", ".*"),), {"host": hostile}))
    assert render("https://{host}/oauth/token", bind((HOST,), {"host": "gitlab.example.com"})) == \
        "https://gitlab.example.com/oauth/token"


def test_render_takes_only_checked_values():
    with pytest.raises(TypeError):
        render("https://{subdomain}.zendesk.com/", {"subdomain": "acme"})  # type: ignore[arg-type]
    with pytest.raises(InvalidConnectionParam):
        render("https://{subdomain}.zendesk.com/", ParamValues({}))
    tampered = ParamValues({"subdomain": ("evil.com/", SUBDOMAIN.pattern)})  # built around bind()
    with pytest.raises(InvalidConnectionParam):
        render("https://{subdomain}.zendesk.com/", tampered)


def test_bind_refuses_undeclared_and_missing_required_values_and_allows_missing_optional():
    optional = ConnectionParam("region", "[a-z]{2}", required=False)
    with pytest.raises(InvalidConnectionParam):
        bind((SUBDOMAIN,), {"subdomain": "acme", "other": "x"})
    with pytest.raises(InvalidConnectionParam):
        bind((SUBDOMAIN,), {})
    assert bind((SUBDOMAIN, optional), {"subdomain": "acme"}).as_dict() == {"subdomain": "acme"}
    assert bind((SUBDOMAIN,), {}, partial=True).as_dict() == {}


def test_builtins_are_percent_encoded():
    assert render("https://api.hubapi.com/oauth/v1/refresh-tokens/{token}", ParamValues({}), token="a/b?c#d") == \
        "https://api.hubapi.com/oauth/v1/refresh-tokens/a%2Fb%3Fc%23d"
    assert render("https://api.github.com/applications/{client_id}/grant", ParamValues({}), client_id="Iv1.x") == \
        "https://api.github.com/applications/Iv1.x/grant"


def test_url_checks_stored_values_against_the_entry_as_it_is_now():
    spec = ProviderSpec(name="zen", display_name="Zen", token_url="https://{subdomain}.zendesk.com/oauth/tokens",
                        params=(SUBDOMAIN,))
    assert url(spec, spec.token_url, {"subdomain": "acme", "removed_param": "x"}) == \
        "https://acme.zendesk.com/oauth/tokens"
    assert url(spec, None, {}) is None
    with pytest.raises(InvalidConnectionParam):
        url(spec, spec.token_url, {"subdomain": "Evil.com/"})
    with pytest.raises(InvalidConnectionParam):
        url(spec, spec.token_url, None)
