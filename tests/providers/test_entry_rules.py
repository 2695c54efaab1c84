"""Rules between the keys of an entry: each broken one is a SpecError naming the provider and the key."""
import pytest

from app.providers.spec import SpecError, spec_from_mapping

BASE = {"authorize_url": "https://p.test/authorize", "token_url": "https://p.test/token"}
SUB = {"subdomain": {"pattern": "[a-z0-9-]{1,63}"}}


def _param(source: str, **extra) -> dict:
    return {"params": {"subdomain": {"pattern": "[a-z0-9-]{1,63}", "source": source, **extra}}}


def test_a_templated_entry_with_declared_params_loads():
    spec = spec_from_mapping("z", {"params": SUB, "authorize_url": "https://{subdomain}.z.test/a",
                                   "token_url": "https://{subdomain}.z.test/t?client={client_id}",
                                   "api_base_url": "https://{subdomain}.z.test/api/"})
    assert spec.params[0].name == "subdomain" and spec.params[0].source == "connect"


@pytest.mark.parametrize("entry,key,message", [
    ({**BASE, "authorize_url": "https://{subdomain}.p.test/a"}, "authorize_url",
     "placeholder {subdomain} names no declared param"),
    ({**BASE, **_param("callback"), "authorize_url": "https://{subdomain}.p.test/a"}, "authorize_url",
     "is a callback param; authorize_url can only use connect params"),
    ({**BASE, **_param("token_response"), "token_url": "https://{subdomain}.p.test/t"}, "token_url",
     "can only use callback or connect params"),
    ({**BASE, **_param("connect", required=False), "token_url": "https://{subdomain}.p.test/t"}, "token_url",
     "required = false"),
    ({**BASE, "api_base_url": "https://p.test/{token}"}, "api_base_url", "{token} is only for revocation_url"),
    ({**BASE, "revocation_url": "https://p.test/{token}"}, "revocation_url", "{token} is only for revocation_url"),
    ({**BASE, "revocation_url": "https://p.test/r", "revocation_style": "delete_token_url"}, "revocation_url",
     "needs {token}"),
    ({**BASE, "issuer": "https://{subdomain}.p.test", **_param("connect")}, "issuer", "cannot have placeholders"),
    ({"authorize_url": "https://p.test/a"}, "token_url", "needs authorize_url and token_url"),
    ({"token_url": "https://p.test/t"}, "authorize_url", "needs authorize_url and token_url"),
    ({**BASE, "sends_iss": True}, "sends_iss", "needs an issuer"),
    ({**BASE, "revocation_style": "bearer"}, "revocation_style", "bearer needs a revocation_url"),
    ({**BASE, "revocation_url": "https://p.test/r", "revocation_method": "DELETE"}, "revocation_method",
     "RFC 7009 revocation is a POST"),
    ({**BASE, "non_expiring_access_tokens": True, "default_access_token_ttl": 60}, "default_access_token_ttl",
     "contradict"),
    ({**BASE, "scopes": ["b"], "allowed_scopes": ["a"]}, "scopes", "'b' is not in allowed_scopes"),
    ({**BASE, "scopes": ["a,b"], "scope_separator": ","}, "scopes", "cannot contain the scope_separator"),
    ({**BASE, "scope_param": "user_scope", "extra_authorize_params": {"user_scope": "x"}}, "extra_authorize_params",
     "is the scope_param"),
    ({**BASE, "account_id": {"source": "userinfo"}}, "account_id.url", "is needed with account_id.source = userinfo"),
    ({**BASE, "account_id": {"source": "param", "field": "realm_id"}}, "account_id.field", "must name a declared"),
    ({**BASE, "account_id": {"source": "token_response", "url": "https://p.test/me"}}, "account_id.url",
     "only used with source = userinfo"),
    ({**BASE, "params": {"subdomain": {"pattern": "[a-z]+", "path": "sub"}}}, "params.subdomain.path",
     "only callback and token_response params have a path"),
    ({**BASE, **_param("callback", path="a b")}, "params.subdomain.path", "must be a query parameter name"),
    ({**BASE, **_param("token_response", path="a..b")}, "params.subdomain.path", "must be a dotted path"),
    ({**BASE, "client_id": "abc"}, "client_id", "credentials are never read from files"),
])
def test_broken_rules_name_the_provider_and_the_key(entry, key, message):
    with pytest.raises(SpecError) as caught:
        spec_from_mapping("p", entry)
    assert str(caught.value).startswith(f"provider 'p': {key}: ")
    assert message in str(caught.value)
    assert [problem.key for problem in caught.value.problems] == [key]


def test_leading_placeholder_stands_for_an_origin():
    spec = spec_from_mapping("sf", {**BASE, "params": {"instance_url": {
        "pattern": r"https://[a-z0-9-]+\.my\.salesforce\.com", "source": "token_response"}},
        "api_base_url": "{instance_url}/services/data/"})
    assert spec.api_base_url == "{instance_url}/services/data/"


def test_callback_params_may_fill_the_token_url_and_later_urls_any_param():
    spec = spec_from_mapping("qb", {**BASE, **_param("callback", path="realmId"),
                                    "token_url": "https://p.test/{subdomain}/token",
                                    "revocation_url": "https://p.test/{subdomain}/revoke",
                                    "account_id": {"source": "param", "field": "subdomain"}})
    assert (spec.account_id_source, spec.account_id_field, spec.revocation_style) == ("param", "subdomain", "rfc7009")


def test_an_issuer_lets_revocation_and_userinfo_come_from_discovery():
    spec = spec_from_mapping("idp", {"issuer": "https://idp.test", "revocation_style": "rfc7009",
                                     "account_id": {"source": "userinfo", "field": "email"}})
    assert spec.needs_discovery and spec.account_id_field == "email"


def test_a_url_that_starts_with_a_param_needs_a_pattern_that_pins_the_scheme():
    entry = {**BASE, "params": {"instance_url": {"pattern": "[a-z.]+", "source": "token_response"}},
             "api_base_url": "{instance_url}/services/data/"}
    with pytest.raises(SpecError, match="api_base_url: starts with {instance_url}: that param's pattern must start"):
        spec_from_mapping("sf", entry)
