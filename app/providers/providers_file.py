"""The operator's providers file (TOML or YAML): its entries, and the line each provider and key is on."""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field

import yaml

from .spec import SpecError


@dataclass(frozen=True)
class ProvidersFile:
    path: str
    entries: dict
    # (provider,) or (provider, key) -> 1-based line number
    lines: dict[tuple[str, ...], int] = field(default_factory=dict, repr=False)

    def line_of(self, provider: str, key: str = "") -> int | None:
        top = key.split(".", 1)[0]
        return self.lines.get((provider, top)) or self.lines.get((provider,))

    def locate(self, error: SpecError) -> SpecError:
        """The same error, with the file and the line of each problem."""
        provider = error.provider
        if provider is None or provider not in self.entries:
            return SpecError(f"providers file {self.path!r}: {error}", provider, error.problems)
        if not error.problems:
            return SpecError(f"providers file {self.path!r}, line {self.line_of(provider)}: {error}",
                             provider, error.problems)
        parts = [f"line {self.line_of(provider, problem.key)}: provider {provider!r}: {problem}"
                 for problem in error.problems[:5]]
        more = f" (and {len(error.problems) - 5} more)" if len(error.problems) > 5 else ""
        return SpecError(f"providers file {self.path!r}: {'; '.join(parts)}{more}", provider, error.problems)


def read_providers_file(path: str) -> ProvidersFile:
    """Read a TOML (``.toml``, or any other name) or YAML (``.yaml``/``.yml``) providers file."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        if path.endswith((".yaml", ".yml")):
            data, lines = _yaml(text)
        else:
            data = tomllib.loads(text)
            lines = _toml_lines(text, data) if isinstance(data, dict) else {}
    except RecursionError:
        raise SpecError(f"providers file {path!r} cannot be read: nested too deeply") from None
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise SpecError(f"providers file {path!r} cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"providers file {path!r} must map provider names to entries")
    return ProvidersFile(path, data, lines)


def _yaml(text: str) -> tuple[object, dict[tuple[str, ...], int]]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    finally:
        loader.dispose()
    lines: dict[tuple[str, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for name_node, entry_node in node.value:
            name = str(name_node.value)
            lines[(name,)] = name_node.start_mark.line + 1
            if isinstance(entry_node, yaml.MappingNode):
                for key_node, _ in entry_node.value:
                    lines.setdefault((name, str(key_node.value)), key_node.start_mark.line + 1)
    return data, lines


# tomllib gives no positions: find the [name] table, then each key's first line inside it.
_TABLE = re.compile(r"""^\s*\[\s*(?:"([^"\n]*)"|'([^'\n]*)'|([A-Za-z0-9_-]+))\s*(\.[^\]\n]*)?\]""")
_KEY = re.compile(r"""^\s*(?:"([^"\n]*)"|'([^'\n]*)'|([A-Za-z0-9_-]+))\s*[.=]""")


def _toml_lines(text: str, data: dict) -> dict[tuple[str, ...], int]:
    lines: dict[tuple[str, ...], int] = {}
    table: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("[["):
            table = None
            continue
        match = _TABLE.match(line)
        if match:
            table = next(group for group in match.groups()[:3] if group is not None)
            if match.group(4):  # [name.key] or [name.key.sub]
                key = match.group(4)[1:].split(".", 1)[0].strip().strip("\"'")
                lines.setdefault((table, key), number)
            lines.setdefault((table,), number)
            continue
        match = _KEY.match(line)
        if match:
            key = next(group for group in match.groups() if group is not None)
            if table is not None:
                lines.setdefault((table, key), number)
            elif key in data:  # name = { ... } or name.key = ... at the top level
                lines.setdefault((key,), number)
    return lines
