"""The shipped catalog: exactly the curated entries, each loading through the entry schema, each
documented in docs/providers.md, each per-connection parameter refusing values that would change a URL's shape."""
import re
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from app.providers.registry import load_specs
from app.providers.spec import SpecError, spec_from_mapping
from app.providers.url_template import placeholders

ROOT = Path(__file__).resolve().parents[2]
CURATED = ("github", "github_app", "google", "microsoft", "spotify", "slack", "atlassian", "notion", "dropbox",
           "box", "salesforce", "hubspot", "zoom", "linkedin", "gitlab", "bitbucket", "discord", "twitch", "x",
           "xero", "quickbooks", "asana", "linear", "zendesk", "strava", "figma")
URL_KEYS = ("authorize_url", "token_url", "refresh_url", "revocation_url", "api_base_url", "account_id_url")
BUILT_IN_PLACEHOLDERS = {"client_id", "token"}
# Values each parameter must accept (the forms the provider documents), per (entry, param).
VALID_VALUES = {
    ("microsoft", "tenant"): ["common", "organizations", "consumers", "contoso.onmicrosoft.com",
                              "9188040d-6c67-4c5b-b112-36a304b66dad"],
    ("atlassian", "cloudid"): ["1324a887-45db-1bf4-1e99-ef0ff456d421"],
    ("salesforce", "login_host"): ["login.salesforce.com", "test.salesforce.com", "acme.my.salesforce.com",
                                   "acme--uat.sandbox.my.salesforce.com"],
    ("salesforce", "instance_url"): ["https://acme.my.salesforce.com", "https://na1.salesforce.com",
                                     "https://acme--uat.sandbox.my.salesforce.com"],
    ("gitlab", "host"): ["gitlab.com"],
    ("quickbooks", "realm_id"): ["4620816365178453880"],
    ("zendesk", "subdomain"): ["acme", "acme-support"],
}
# Appended to a valid value, each would move a request to another path, query, host or port.
HOSTILE_SUFFIXES = ("/", "/../admin", "?x=1", "#x", "@evil.example", ":8443", "\\evil", " x", "%2F", "\n")


def _catalog() -> dict:
    return tomllib.loads(resources.files("app.providers").joinpath("catalog.toml").read_text("utf-8"))


def _docs_sections() -> dict[str, str]:
    text = (ROOT / "docs" / "providers.md").read_text("utf-8")
    parts = re.split(r"^## ([a-z][a-z0-9_]*)\n", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_catalog_entry_loads_through_the_schema():
    specs = load_specs(None)
    assert len(specs) == len(CURATED)
    for name, entry in _catalog().items():
        assert spec_from_mapping(name, entry) == specs[name]


def test_catalog_names_are_exactly_the_curated_entries():
    assert tuple(_catalog()) == CURATED


def test_every_entry_has_a_docs_section_with_its_redirect_uri_and_credentials():
    sections = _docs_sections()
    assert tuple(sections) == CURATED
    for name, section in sections.items():
        assert f"`{{PUBLIC_BASE_URL}}/connect/callback/{name}`" in section, name
        assert f"`{name.upper()}_CLIENT_ID`" in section and f"`{name.upper()}_CLIENT_SECRET`" in section, name


def test_every_connect_param_is_named_in_its_docs_section():
    sections = _docs_sections()
    for name, spec in load_specs(None).items():
        for param in spec.params:
            if param.source == "connect":
                assert f"`{param.name}`" in sections[name], (name, param.name)


def test_readme_names_every_catalog_entry_and_points_at_the_provider_docs():
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("\n## Providers\n", 1)[1].split("\n## ", 1)[0]
    assert "docs/providers.md" in section
    for name in CURATED:
        assert f"`{name}`" in section, name


def test_every_placeholder_names_a_declared_param():
    for name, spec in load_specs(None).items():
        declared = {param.name for param in spec.params}
        for key in URL_KEYS:
            url = getattr(spec, key)
            if url:
                assert set(placeholders(url)) <= declared | BUILT_IN_PLACEHOLDERS, (name, key)


@pytest.mark.parametrize("name", [name for name, entry in _catalog().items() if entry.get("params")])
def test_the_schema_refuses_a_templated_entry_without_its_params(name):
    entry = {key: value for key, value in _catalog()[name].items() if key != "params"}
    with pytest.raises(SpecError, match=rf"provider '{name}': .*placeholder \{{\w+\}} names no declared param"):
        spec_from_mapping(name, entry)


def test_every_param_has_documented_example_values():
    declared = {(name, param.name) for name, spec in load_specs(None).items() for param in spec.params}
    assert declared == set(VALID_VALUES)


@pytest.mark.parametrize(("name", "param_name"), sorted(VALID_VALUES))
def test_param_patterns_accept_documented_values_and_refuse_url_changes(name, param_name):
    (param,) = [p for p in load_specs(None)[name].params if p.name == param_name]
    for value in VALID_VALUES[name, param_name]:
        assert re.fullmatch(param.pattern, value), value
        for suffix in HOSTILE_SUFFIXES:
            assert not re.fullmatch(param.pattern, value + suffix), value + suffix
        assert not re.fullmatch(param.pattern, "evil.example/" + value)
    assert not re.fullmatch(param.pattern, "")


def test_zendesk_subdomain_refuses_another_host():
    (subdomain,) = load_specs(None)["zendesk"].params
    assert not re.fullmatch(subdomain.pattern, "evil.com/")
    assert not re.fullmatch(subdomain.pattern, "evil.com")


def test_gitlab_host_allows_only_gitlab_com_until_the_operator_widens_it():
    (host,) = load_specs(None)["gitlab"].params
    for value in ("gitlab.example.com", "gitlab.com.evil.example", "evil.example"):
        assert not re.fullmatch(host.pattern, value)


def test_only_providers_that_advertise_rfc_9207_iss_require_it():
    specs = load_specs(None)
    assert {name for name, spec in specs.items() if spec.sends_iss} == {"github", "github_app", "discord"}
    assert specs["google"].issuer == "https://accounts.google.com"  # a received iss is still checked


def test_the_docs_override_examples_load_and_change_what_they_say(tmp_path):
    text = (ROOT / "docs" / "providers.md").read_text("utf-8")
    section = text.split("\n## Overriding an entry\n", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "providers.toml"
    path.write_text(example)
    specs = load_specs(str(path))
    assert specs["gitlab"].params[0].pattern == r"gitlab\.example\.com"
    assert specs["microsoft"].params == () and "{" not in specs["microsoft"].authorize_url
    assert specs["google"].refresh_token_absolute_lifetime == 604800
    assert specs["atlassian"].api_base_url == "https://api.atlassian.com/ex/confluence/{cloudid}/"
