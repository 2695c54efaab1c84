"""A providers file's errors point at the line of the provider and key (YAML marks; TOML tables found in the text)."""
import pytest

from app.providers.providers_file import read_providers_file
from app.providers.registry import load_specs
from app.providers.spec import SpecError

YAML = """\
# providers.yaml
acme:
  display_name: Acme
  authorize_url: https://acme.test/a
  token_url: http://acme.test/t
  params:
    sub:
      pattern: "[a-z"
github:
  scopes: ["a b"]
"""

TOML = """\
# providers.toml
[acme]
display_name = "Acme"
authorize_url = "https://acme.test/a"

token_url = "http://acme.test/t"

[acme.params.sub]
source = "connect"
pattern = "[a-z"

["github"]
scopes = ["a b"]
"""


def _error(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_specs(str(path))
    return str(caught.value)


def test_yaml_errors_name_the_line_of_each_key(tmp_path):
    message = _error(tmp_path, "providers.yaml", YAML)
    assert "line 5: provider 'acme': token_url: must be an https URL" in message
    assert "line 8: provider 'acme': params.sub.pattern: must be a valid regular expression" in message
    assert "line 10: provider 'github': scopes.0: must be a scope" in message  # every broken entry at once


def test_toml_errors_name_the_line_of_each_key(tmp_path):
    message = _error(tmp_path, "providers.toml", TOML)
    assert "line 6: provider 'acme': token_url: must be an https URL" in message
    assert "line 10: provider 'acme': params.sub.pattern: must be a valid regular expression" in message
    assert "line 13: provider 'github': scopes.0: must be a scope" in message


def test_an_unknown_key_points_at_its_line_and_an_entry_that_is_no_table_at_its_name(tmp_path):
    message = _error(tmp_path, "p.yaml", "acme:\n  issuer: https://acme.test\n  colour: blue\nzeta: 5\n")
    assert "line 3: provider 'acme': colour: unknown key" in message
    assert "line 4: provider 'zeta': entry must be a table/mapping" in message


def test_a_catalog_key_broken_by_an_override_points_at_the_overridden_table(tmp_path):
    message = _error(tmp_path, "p.toml", "\n[github]\nnon_expiring_access_tokens = false\nsends_iss = 1\n")
    assert message.startswith(f"providers file '{tmp_path / 'p.toml'}': line 4: provider 'github': sends_iss: ")


def test_errors_of_catalog_entries_and_extra_entries_have_no_file_line():
    with pytest.raises(SpecError) as caught:
        load_specs(None, {"acme": {"issuer": "http://acme.test"}})
    assert str(caught.value).startswith("provider 'acme': issuer: must be an https URL")


def test_lines_are_found_for_quoted_and_dotted_toml_keys(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[ "acme" ]\n"issuer" = "https://acme.test"\naccount_id.source = "userinfo"\n')
    file = read_providers_file(str(path))
    assert (file.line_of("acme"), file.line_of("acme", "issuer"), file.line_of("acme", "account_id.url")) == (1, 2, 3)
    assert file.line_of("other") is None


def test_a_yaml_syntax_error_names_the_line_without_quoting_it(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text('acme:\n  issuer: https://acme.test\n  token: "hunter2\n  x: [\n')
    with pytest.raises(SpecError, match="cannot be read: .* at line") as caught:
        read_providers_file(str(path))
    assert "hunter2" not in str(caught.value)


def test_yaml_aliases_are_walked_once_for_lines(tmp_path):
    levels = ["a0: &a0 {" + ", ".join(f"k{i}: {i}" for i in range(50)) + "}"]
    levels += [f"a{n}: &a{n} {{" + ", ".join(f"k{i}: *a{n - 1}" for i in range(50)) + "}" for n in range(1, 6)]
    path = tmp_path / "p.yaml"
    path.write_text("\n".join(levels) + "\n")
    file = read_providers_file(str(path))  # 50**5 paths if every alias were walked again
    assert file.line_of("a5", "k0") == 6
