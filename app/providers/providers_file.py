"""The operator's providers file (TOML or YAML): its entries, and the line each provider and key is on."""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .spec import SpecError

if TYPE_CHECKING:
    import yaml


@dataclass(frozen=True)
class ProvidersFile:
    path: str
    entries: dict
    # (provider, key, sub-key, ...) -> 1-based line number
    lines: dict[tuple[str, ...], int] = field(default_factory=dict, repr=False)

    def line_of(self, provider: str, key: str = "") -> int | None:
        """The line of the key (dotted), or of its nearest enclosing key, or of the provider."""
        path = (provider, *key.split(".")) if key else (provider,)
        for depth in range(len(path), 0, -1):
            if path[:depth] in self.lines:
                return self.lines[path[:depth]]
        return None

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
            data, lines = _yaml_file(path, text)
        else:
            data = tomllib.loads(text)
            lines = _toml_lines(text)
    except RecursionError:
        raise SpecError(f"providers file {path!r} cannot be read: nested too deeply") from None
    except (OSError, ValueError) as exc:
        raise SpecError(f"providers file {path!r} cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"providers file {path!r} must map provider names to entries")
    return ProvidersFile(path, data, lines)


def _yaml_file(path: str, text: str) -> tuple[object, dict[tuple[str, ...], int]]:
    """A YAML file's data and lines. PyYAML is imported here, for the deployments whose file is YAML: a
    TOML file (and the built-in catalog) never needs it in the worker."""
    import yaml

    try:
        return _yaml(text)
    except yaml.MarkedYAMLError as exc:  # its str() quotes the line around the mark: say where, not what
        where = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise SpecError(f"providers file {path!r} cannot be read: {exc.problem}{where}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"providers file {path!r} cannot be read: {exc}") from None


def _yaml(text: str) -> tuple[object, dict[tuple[str, ...], int]]:
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    finally:
        loader.dispose()
    lines: dict[tuple[str, ...], int] = {}
    _yaml_lines(node, (), lines, set())
    return data, lines


def _yaml_lines(node: yaml.Node | None, path: tuple[str, ...], lines: dict[tuple[str, ...], int],
                seen: set[int]) -> None:
    import yaml

    # each node once: an alias points at a node already walked (no billion laughs)
    if not isinstance(node, yaml.MappingNode) or len(path) > MAX_DEPTH or id(node) in seen:
        return
    seen.add(id(node))
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            key = (*path, key_node.value)
            lines.setdefault(key, key_node.start_mark.line + 1)
            _yaml_lines(value_node, key, lines, seen)


# tomllib gives no positions: find each [table] header and each key's first line in its table.
MAX_DEPTH = 4
_TABLE = re.compile(r"^\s*\[\s*([^\[\]\n]+?)\s*\]")
_KEY = re.compile(r"""^\s*(?:"([^"\n]*)"|'([^'\n]*)'|([A-Za-z0-9_-]+))\s*[.=]""")


def _toml_lines(text: str) -> dict[tuple[str, ...], int]:
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("[["):  # an array of tables: not part of the providers file's shape
            table = ("[[",)
            continue
        match = _TABLE.match(line)
        if match:
            table = tuple(part.strip().strip("\"'") for part in match.group(1).split("."))[:MAX_DEPTH]
            for depth in range(1, len(table) + 1):
                lines.setdefault(table[:depth], number)
            continue
        match = _KEY.match(line)
        if match:
            key = next(group for group in match.groups() if group is not None)
            lines.setdefault((*table, key), number)
    return lines
