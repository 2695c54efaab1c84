"""Providers-file entries of any shape: a ProviderSpec or a SpecError naming the problem, nothing else."""
import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from app.providers.registry import load_specs, read_entries
from app.providers.schema import ProviderEntry, providers_file_json_schema
from app.providers.spec import SpecError, spec_from_mapping

BASE = {"authorize_url": "https://p.test/authorize", "token_url": "https://p.test/token"}


def test_default_access_token_ttl_is_read():
    assert spec_from_mapping("p", {**BASE, "default_access_token_ttl": 900}).default_access_token_ttl == 900


def test_default_access_token_ttl_defaults_to_an_hour():
    assert spec_from_mapping("p", BASE).default_access_token_ttl == 3600


@pytest.mark.parametrize("ttl", [0, -1, True, "3600", 3600.5, [3600], 10**12])
def test_default_access_token_ttl_must_be_positive_whole_seconds(ttl):
    with pytest.raises(SpecError, match="default_access_token_ttl"):
        spec_from_mapping("p", {**BASE, "default_access_token_ttl": ttl})


def test_default_ttl_contradicts_non_expiring_tokens():
    with pytest.raises(SpecError, match="contradict"):
        spec_from_mapping("p", {**BASE, "non_expiring_access_tokens": True, "default_access_token_ttl": 60})


@pytest.mark.parametrize("entry", [
    {**BASE, "display_name": ["x"]},
    {**BASE, "display_name": ""},
    {**BASE, "display_name": datetime.date(2024, 1, 1)},
    {**BASE, "scope_separator": [" "]},
    {**BASE, "scope_separator": {" ": 1}},
    {**BASE, "client_auth": ["client_secret_post"]},
    {**BASE, "revocation_style": {"a": 1}},
    {**BASE, "extra_authorize_params": {1: "x"}},
    {**BASE, "account_id": {"source": ["userinfo"]}},
    {**BASE, "account_id": {"source": "token_response", "field": ""}},
    {**BASE, 1: "x"},
    {**BASE, "token_url": 5},
])
def test_wrong_types_are_a_spec_error(entry):
    with pytest.raises(SpecError):
        spec_from_mapping("p", entry)


@pytest.mark.parametrize("name", [1, None, ("a",), "Bad Name"])
def test_provider_names_that_are_not_strings_are_a_spec_error(name):
    with pytest.raises(SpecError):
        spec_from_mapping(name, BASE)


@pytest.mark.parametrize("text", [
    "123: {authorize_url: 'https://p.test/a', token_url: 'https://p.test/t'}\n",
    "p: {display_name: 2024-01-01, authorize_url: 'https://p.test/a', token_url: 'https://p.test/t'}\n",
    "p: &a [*a]\n",
    "p: {scopes: &a [*a], authorize_url: 'https://p.test/a', token_url: 'https://p.test/t'}\n",
    "p: " + "[" * 5000 + "]" * 5000 + "\n",
    "- a\n- b\n",
])
def test_odd_yaml_providers_files_are_a_spec_error(tmp_path, text):
    path = tmp_path / "providers.yaml"
    path.write_text(text)
    with pytest.raises(SpecError):
        load_specs(str(path))


def test_non_utf8_providers_file_is_a_spec_error(tmp_path):
    path = tmp_path / "providers.yaml"
    path.write_bytes(b"p:\n  display_name: \xff\xfe\n")
    with pytest.raises(SpecError):
        read_entries(str(path))


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
    | st.sampled_from(["https://p.test/x", "http://127.0.0.1:9/x", " ", ",", "client_secret_post", "rfc7009",
                       "userinfo", "token_response", "none", "openid", "https://{sub}.p.test/x", "{sub}/x",
                       "https://p.test/{token}", "delete_token_url", "connect", "callback", "[a-z]+", "a.b",
                       "json", "DELETE", "access", "param", "sub", "bearer"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.text(max_size=8) | st.sampled_from(["sub", "pattern", "source", "path", "url", "field", "source"]),
        children, max_size=3),
    max_leaves=8,
)
KEYS = st.sampled_from([*sorted(ProviderEntry.model_fields), "other", "client_id"])
SCHEMA = Draft202012Validator(providers_file_json_schema())


@settings(max_examples=300, deadline=None)
@given(entry=st.dictionaries(KEYS, VALUES, max_size=8), base=st.booleans())
def test_any_entry_is_a_spec_or_a_spec_error(entry, base):
    entry = {**BASE, **entry} if base else entry
    try:
        spec = spec_from_mapping("p", entry)
    except SpecError as exc:
        assert exc.problems and all(problem.key or problem.message for problem in exc.problems)
        return
    assert isinstance(spec.display_name, str) and all(isinstance(s, str) for s in spec.scopes)
    # the exported JSON Schema is never stricter than the connector: an editor never flags a valid entry
    assert list(SCHEMA.iter_errors({"p": entry})) == []


def test_deeply_nested_toml_providers_file_is_a_spec_error(tmp_path):
    path = tmp_path / "providers.toml"
    path.write_text("[p]\nscopes = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(SpecError):
        load_specs(str(path))
