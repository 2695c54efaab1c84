"""The entry schema: every key of the issue-17 vocabulary loads into ProviderSpec, and broken rules are refused
with a message naming the provider and the key."""
import tomllib
from importlib import resources

import pytest
import yaml
from jsonschema import Draft202012Validator

from app.providers.registry import load_specs
from app.providers.schema import providers_file_json_schema
from app.providers.spec import ConnectionParam, ErrorShape, SpecError, TokenPaths, spec_from_mapping

BASE = {"authorize_url": "https://p.test/authorize", "token_url": "https://p.test/token"}

ZENDESK = """
[zendesk]
display_name = "Zendesk"
params = { subdomain = { pattern = "[a-z0-9][a-z0-9-]{0,62}", source = "connect", description = "your subdomain" } }
authorize_url = "https://{subdomain}.zendesk.com/oauth/authorizations/new"
token_url = "https://{subdomain}.zendesk.com/oauth/tokens"
api_base_url = "https://{subdomain}.zendesk.com/api/v2/"
revocation_url = "https://{subdomain}.zendesk.com/api/v2/oauth/tokens/current.json"
revocation_style = "bearer"
revocation_method = "DELETE"
revocation_token = "access"
client_auth = "client_secret_post"
account_id = { source = "userinfo", url = "https://{subdomain}.zendesk.com/api/v2/users/me.json", field = "user.id" }

[slack]
authorize_url = "https://slack.com/oauth/v2/authorize"
token_url = "https://slack.com/api/oauth.v2.access"
token_response = { access_token = "authed_user.access_token", refresh_token = "authed_user.refresh_token", \
expires_in = "authed_user.expires_in", scope = "authed_user.scope", token_type = "authed_user.token_type" }
error_shape = { field = "error", success_flag = "ok" }
scope_param = "user_scope"
scope_separator = ","
reauth_error_codes = ["invalid_refresh_token", "invalid_grant", "token_revoked", "token_expired"]

[salesforce]
authorize_url = "https://login.salesforce.com/services/oauth2/authorize"
token_url = "https://login.salesforce.com/services/oauth2/token"
revocation_url = "https://login.salesforce.com/services/oauth2/revoke"
params = { instance_url = { pattern = "https://[A-Za-z0-9-]+(\\\\.[A-Za-z0-9-]+)*\\\\.(my\\\\.)?salesforce\\\\.com", \
source = "token_response", path = "instance_url" } }
api_base_url = "{instance_url}/services/data/"

[quickbooks]
authorize_url = "https://appcenter.intuit.com/connect/oauth2"
token_url = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
params = { realm_id = { pattern = "[0-9]{1,32}", source = "callback", path = "realmId" } }
account_id = { source = "param", field = "realm_id" }

[hubspot]
authorize_url = "https://app.hubspot.com/oauth/authorize"
token_url = "https://api.hubapi.com/oauth/v1/token"
refresh_url = "https://api.hubapi.com/oauth/v1/refresh"
revocation_url = "https://api.hubapi.com/oauth/v1/refresh-tokens/{token}"
revocation_style = "delete_token_url"
revocation_method = "DELETE"
revocation_auth = "client_id_post"
revocation_revokes_grant = false
token_body_format = "json"
token_request_headers = { Notion-Version = "2022-06-28" }
token_params = { audience = "api" }
refresh_params = { scope = "crm" }
refresh_sends_redirect_uri = true
scopes = ["crm"]
allowed_scopes = ["crm", "files"]
include_granted_scopes = true
default_access_token_ttl = 1800
refresh_token_absolute_lifetime = 15552000
refresh_token_idle_lifetime = 86400
"""


def _load(tmp_path, text, suffix=".toml"):
    path = tmp_path / f"providers{suffix}"
    path.write_text(text)
    return load_specs(str(path))


def test_every_vocabulary_key_loads_into_the_spec(tmp_path):
    specs = _load(tmp_path, ZENDESK)
    zendesk = specs["zendesk"]
    assert zendesk.params == (ConnectionParam("subdomain", "[a-z0-9][a-z0-9-]{0,62}", "connect", None, True,
                                              "your subdomain"),)
    assert (zendesk.revocation_style, zendesk.revocation_method, zendesk.revocation_token) == ("bearer", "DELETE",
                                                                                               "access")
    assert (zendesk.account_id_source, zendesk.account_id_field) == ("userinfo", "user.id")
    slack = specs["slack"]
    assert slack.token_response == TokenPaths("authed_user.access_token", "authed_user.refresh_token",
                                              "authed_user.expires_in", "authed_user.scope", "authed_user.token_type")
    assert slack.error_shape == ErrorShape("error", False, "ok")
    assert (slack.scope_param, slack.scope_separator) == ("user_scope", ",")
    assert slack.reauth_error_codes == ("invalid_refresh_token", "invalid_grant", "token_revoked", "token_expired")
    assert specs["salesforce"].params[0].source == "token_response"
    assert specs["salesforce"].api_base_url == "{instance_url}/services/data/"
    quickbooks = specs["quickbooks"]
    assert (quickbooks.params[0].path, quickbooks.account_id_source, quickbooks.account_id_field) == (
        "realmId", "param", "realm_id")
    hubspot = specs["hubspot"]
    assert hubspot.refresh_url == "https://api.hubapi.com/oauth/v1/refresh"
    assert (hubspot.revocation_style, hubspot.revocation_auth) == ("delete_token_url", "client_id_post")
    assert hubspot.token_body_format == "json" and hubspot.refresh_sends_redirect_uri
    assert hubspot.token_request_headers == (("Notion-Version", "2022-06-28"),)
    assert (hubspot.token_params, hubspot.refresh_params) == ((("audience", "api"),), (("scope", "crm"),))
    assert (hubspot.scopes, hubspot.allowed_scopes, hubspot.include_granted_scopes) == (("crm",), ("crm", "files"),
                                                                                       True)
    assert (hubspot.default_access_token_ttl, hubspot.refresh_token_absolute_lifetime,
            hubspot.refresh_token_idle_lifetime) == (1800, 15552000, 86400)


def test_defaults_are_the_specs_defaults():
    spec = spec_from_mapping("p", BASE)
    assert spec.token_response == TokenPaths() and spec.error_shape == ErrorShape() and spec.params == ()
    assert (spec.revocation_style, spec.revocation_method, spec.revocation_token) == ("none", "POST", "refresh")
    assert (spec.scope_param, spec.token_body_format, spec.account_id_source) == ("scope", "form", "none")


def test_refresh_token_response_defaults_to_token_response():
    nested = {"access_token": "authed_user.access_token", "expires_in": "authed_user.expires_in"}
    spec = spec_from_mapping("p", {**BASE, "token_response": nested})
    assert spec.refresh_paths == spec.token_response == TokenPaths(**nested)


def test_refresh_token_response_is_its_own_paths_with_no_key_inherited():
    spec = spec_from_mapping("p", {**BASE, "token_response": {"access_token": "authed_user.access_token",
                                                              "scope": "authed_user.scope"},
                                   "refresh_token_response": {"access_token": "data.token"}})
    assert spec.token_response.access_token == "authed_user.access_token"
    assert spec.refresh_paths == TokenPaths(access_token="data.token")  # scope at "scope", not authed_user.scope


def test_the_catalogs_slack_refresh_answer_is_read_at_the_top_level():
    slack = load_specs(None)["slack"]
    assert slack.token_response.refresh_token == "authed_user.refresh_token"
    assert slack.refresh_paths == TokenPaths()


@pytest.mark.parametrize("key", ["client_id", "client_secret"])
def test_credentials_in_an_entry_are_refused(key):
    with pytest.raises(SpecError, match=f"{key}: credentials are never read from files"):
        spec_from_mapping("p", {**BASE, key: "hunter2"})


SAMPLE_YAML = """\
# providers.yaml
okta:
  issuer: https://example.okta.com
  scopes: [openid, offline_access]
acme:
  display_name: Acme
  params:
    tenant: {pattern: "[a-z0-9-]{1,40}", description: your Acme tenant}
  authorize_url: "https://{tenant}.acme.test/oauth/authorize"
  token_url: "https://{tenant}.acme.test/oauth/token"
  token_body_format: json
  error_shape: {field: error.code, on_http_200: true}
  scopes: [read, offline]
  scope_separator: ","
  account_id: {source: token_response, field: user.id}
github:
  scopes: [repo, "read:user"]
"""


@pytest.fixture(scope="module")
def validator():
    schema = providers_file_json_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_exported_schema_accepts_the_catalog_and_sample_files(validator, tmp_path):
    catalog = tomllib.loads(resources.files("app.providers").joinpath("catalog.toml").read_text("utf-8"))
    assert list(validator.iter_errors(catalog)) == []
    assert list(validator.iter_errors(tomllib.loads(ZENDESK))) == []
    assert list(validator.iter_errors(yaml.safe_load(SAMPLE_YAML))) == []
    assert set(_load(tmp_path, SAMPLE_YAML, ".yaml")) >= {"okta", "acme", "github"}  # and the connector agrees


@pytest.mark.parametrize("entry", [
    {**BASE, "token_url": "http://evil.test/token"},
    {**BASE, "client_secret": "hunter2"},
    {**BASE, "colour": "blue"},
    {**BASE, "pkce": "yes"},
    {**BASE, "default_access_token_ttl": True},
    {**BASE, "params": {"return_to": {"pattern": "[a-z]+"}}},
    {**BASE, "params": {"Sub": {"pattern": "[a-z]+"}}},
    {**BASE, "params": {"sub": {"source": "connect"}}},
    {**BASE, "revocation_style": "maybe"},
    {**BASE, "token_response": {"access_token": "a..b"}},
    {**BASE, "refresh_token_response": {"access_token": "a..b"}},
    {**BASE, "refresh_token_response": {"colour": "blue"}},
    {**BASE, "refresh_token_response": "access_token"},
    {**BASE, "scopes": ["a b"]},
    {**BASE, "extra_authorize_params": {"state": 1}},
])
def test_exported_schema_refuses_a_hostile_entry(validator, entry):
    assert list(validator.iter_errors({"p": entry}))
    with pytest.raises(SpecError):
        spec_from_mapping("p", entry)


def test_exported_schema_refuses_a_bad_provider_name(validator):
    assert list(validator.iter_errors({"Bad-Name": BASE}))
