import dataclasses

import pytest
import responses

from app.errors import ProviderUnavailable, UnknownProvider
from app.providers.registry import ProviderRegistry, apply_discovery, load_specs
from app.providers.spec import ProviderSpec, SpecError, spec_from_mapping

CREDS = {"GITHUB_CLIENT_ID": "id", "GITHUB_CLIENT_SECRET": "secret", "IDP_CLIENT_ID": "idp-id",
         "IDP_CLIENT_SECRET": "idp-secret", "CUSTOM_CLIENT_ID": "c", "CUSTOM_CLIENT_SECRET": "s"}


def test_catalog_has_builtin_providers():
    specs = load_specs(None)
    assert {"github", "google", "spotify"} <= set(specs)
    assert dict(specs["google"].extra_authorize_params) == {"access_type": "offline", "prompt": "consent"}
    # RFC 9207: GitHub's metadata advertises iss; Google's does not (iss checked when present).
    assert specs["github"].sends_iss and specs["github"].issuer == "https://github.com/login/oauth"
    assert not specs["google"].sends_iss and specs["google"].issuer == "https://accounts.google.com"
    assert not specs["spotify"].sends_iss and specs["spotify"].issuer is None
    # Without expires_in: Google and Spotify tokens live an hour; GitHub OAuth app tokens never expire.
    assert specs["google"].default_access_token_ttl == specs["spotify"].default_access_token_ttl == 3600
    assert specs["github"].non_expiring_access_tokens and specs["github"].revocation_style == "github_grant"
    assert specs["spotify"].revocation_style == "none"


def test_spec_is_frozen_and_hides_secret():
    spec = load_specs(None)["github"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "x"
    spec = dataclasses.replace(spec, client_secret="hunter2")
    assert "hunter2" not in repr(spec)


def test_provider_enabled_only_with_both_credentials():
    registry = ProviderRegistry(load_specs(None), {"GITHUB_CLIENT_ID": "id", "GOOGLE_CLIENT_ID": "x"}, (1, 1))
    assert registry.enabled() == []
    registry = ProviderRegistry(load_specs(None), CREDS, (1, 1))
    assert [s.name for s in registry.enabled()] == ["github"]
    with pytest.raises(UnknownProvider):
        registry.get("google")


def test_providers_file_toml_adds_and_overrides(tmp_path):
    path = tmp_path / "providers.toml"
    path.write_text("""
[github]
scopes = ["repo", "read:user"]

[custom]
display_name = "Custom"
authorize_url = "https://custom.test/authorize"
token_url = "https://custom.test/token"
revocation_url = "https://custom.test/revoke"
client_auth = "client_secret_post"
scopes = ["read", "offline"]
scope_separator = ","
account_id = { source = "token_response", field = "user.id" }
""")
    specs = load_specs(str(path))
    assert specs["github"].scopes == ("repo", "read:user")
    assert specs["github"].token_url == "https://github.com/login/oauth/access_token"
    custom = specs["custom"]
    assert custom.revocation_style == "rfc7009"
    assert (custom.client_auth, custom.scope_separator) == ("client_secret_post", ",")
    assert (custom.account_id_source, custom.account_id_field) == ("token_response", "user.id")


def test_providers_file_yaml(tmp_path):
    path = tmp_path / "providers.yaml"
    path.write_text("idp:\n  issuer: https://idp.test\n  scopes: [openid, offline_access]\n")
    assert load_specs(str(path))["idp"].needs_discovery


@pytest.mark.parametrize("entry,message", [
    ({"authorize_url": "https://x.test/a"}, "needs authorize_url and token_url"),
    ({"authorize_url": "http://x.test/a", "token_url": "https://x.test/t"}, "https URL"),
    ({"issuer": "https://x.test", "client_auth": "private_key_jwt"}, "client_auth"),
    ({"issuer": "https://x.test", "colour": "blue"}, "unknown key"),
    ({"issuer": "https://x.test", "scopes": "openid"}, "scopes"),
    ({"issuer": "https://x.test", "pkce": "yes"}, "pkce"),
    ({"issuer": "https://x.test", "account_id": {"source": "magic"}}, "account_id.source"),
    ({"authorize_url": "https://x.test/a", "token_url": "https://x.test/t", "revocation_style": "rfc7009"},
     "revocation_url"),
])
def test_invalid_entries_are_rejected(entry, message):
    with pytest.raises(SpecError, match=message):
        spec_from_mapping("x", entry)


def test_invalid_name_is_rejected():
    with pytest.raises(SpecError, match="name"):
        spec_from_mapping("Bad-Name", {"issuer": "https://x.test"})


def test_broken_providers_file_is_a_spec_error(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[x\n")
    with pytest.raises(SpecError, match="cannot be read"):
        load_specs(str(path))


DISCOVERY = {
    "issuer": "https://idp.test",
    "authorization_endpoint": "https://idp.test/auth",
    "token_endpoint": "https://idp.test/token",
    "revocation_endpoint": "https://idp.test/revoke",
    "userinfo_endpoint": "https://idp.test/me",
    "token_endpoint_auth_methods_supported": ["client_secret_post"],
    "authorization_response_iss_parameter_supported": True,
}


def _idp_registry() -> ProviderRegistry:
    specs = {"idp": spec_from_mapping("idp", {"issuer": "https://idp.test", "scopes": ["openid", "offline_access"]})}
    return ProviderRegistry(specs, CREDS, (1, 1))


def test_oidc_provider_by_discovery_is_resolved_once():
    registry = _idp_registry()
    with responses.RequestsMock() as http:
        http.get("https://idp.test/.well-known/openid-configuration", json=DISCOVERY)
        spec = registry.get("idp")
        assert registry.get("idp") is spec
        assert len(http.calls) == 1
    assert isinstance(spec, ProviderSpec)
    assert (spec.authorize_url, spec.token_url, spec.revocation_url) == (
        "https://idp.test/auth", "https://idp.test/token", "https://idp.test/revoke")
    assert spec.sends_iss and spec.client_auth == "client_secret_post" and spec.revocation_style == "rfc7009"
    assert (spec.account_id_source, spec.account_id_url, spec.account_id_field) == ("userinfo", "https://idp.test/me",
                                                                                    "sub")
    assert spec.client_id == "idp-id" and spec.uses_openid


@pytest.mark.parametrize("answer", [{"status": 503}, {"json": {**DISCOVERY, "issuer": "https://evil.test"}},
                                    {"body": "nope"}])
def test_failed_discovery_is_unavailable_and_retried_later(answer):
    registry = _idp_registry()
    with responses.RequestsMock() as http:
        http.get("https://idp.test/.well-known/openid-configuration", **answer)
        with pytest.raises(ProviderUnavailable):
            registry.get("idp")
    with responses.RequestsMock() as http:
        http.get("https://idp.test/.well-known/openid-configuration", json=DISCOVERY)
        assert registry.get("idp").token_url == "https://idp.test/token"


@pytest.mark.parametrize("answer", [
    {"body": "[" * 100_000, "content_type": "application/json"},
    {"json": [DISCOVERY]},
    {"json": {**DISCOVERY, "authorization_endpoint": ["https://idp.test/auth"]}},
    {"json": {**DISCOVERY, "token_endpoint": 42}},
    {"json": {**DISCOVERY, "revocation_endpoint": {"url": "https://idp.test/revoke"}}},
    {"json": {**DISCOVERY, "userinfo_endpoint": True}},
    {"json": {**DISCOVERY, "issuer": ["https://idp.test"]}},
])
def test_discovery_of_the_wrong_shape_is_unavailable(answer):
    registry = _idp_registry()
    with responses.RequestsMock() as http:
        http.get("https://idp.test/.well-known/openid-configuration", **answer)
        with pytest.raises(ProviderUnavailable):
            registry.get("idp")


@pytest.mark.parametrize("methods", [5, "client_secret_post", {"a": 1}, [1, None]])
def test_discovery_auth_methods_of_the_wrong_shape_fall_back_to_basic(methods):
    registry = _idp_registry()
    with responses.RequestsMock() as http:
        http.get("https://idp.test/.well-known/openid-configuration",
                 json={**DISCOVERY, "token_endpoint_auth_methods_supported": methods,
                       "authorization_response_iss_parameter_supported": "false"})
        spec = registry.get("idp")
    assert spec.client_auth == "client_secret_basic" and not spec.sends_iss


def test_discovery_keeps_every_key_of_the_entry():
    spec = spec_from_mapping("idp", {"issuer": "https://idp.test", "scopes": ["openid"], "token_body_format": "json",
                                     "token_response": {"access_token": "data.token"}, "allowed_scopes": ["openid"],
                                     "reauth_error_codes": ["invalid_grant", "expired"],
                                     "account_id": {"source": "userinfo", "field": "email"}})
    resolved = apply_discovery(spec, DISCOVERY)
    assert (resolved.token_body_format, resolved.token_response.access_token) == ("json", "data.token")
    assert resolved.reauth_error_codes == ("invalid_grant", "expired") and resolved.allowed_scopes == ("openid",)
    assert (resolved.account_id_url, resolved.account_id_field) == ("https://idp.test/me", "email")
    assert resolved.entry.authorize_url == "https://idp.test/auth"  # a resolved spec carries its resolved entry


@pytest.mark.parametrize("meta,message", [
    ({**DISCOVERY, "token_endpoint": "http://idp.test/token"}, "token_url: must be an https URL"),
    ({**DISCOVERY, "revocation_endpoint": "https://idp.test/{token}"}, "{token} is only for revocation_url with"),
    ({**DISCOVERY, "userinfo_endpoint": "https://u:p@idp.test/me"}, "account_id.url: must be an https URL"),
    ({key: value for key, value in DISCOVERY.items() if key != "token_endpoint"}, "names no authorization or token"),
])
def test_discovered_endpoints_are_validated_by_the_entry_schema(meta, message):
    spec = spec_from_mapping("idp", {"issuer": "https://idp.test"})
    with pytest.raises(ProviderUnavailable, match="discovery for provider 'idp'") as caught:
        apply_discovery(spec, meta)
    assert message in str(caught.value)


def test_a_spec_built_in_code_cannot_be_completed_by_discovery():
    with pytest.raises(ProviderUnavailable, match="no entry"):
        apply_discovery(ProviderSpec("idp", "IdP", issuer="https://idp.test"), DISCOVERY)
