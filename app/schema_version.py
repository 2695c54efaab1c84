"""Where the database's schema stands against the shipped migrations, for ``/readyz``, without Alembic.

Alembic (with Mako, and Pygments where installed) costs a web worker about 6-11 MB of memory for
two facts a readiness probe needs: the heads of ``migrations/versions`` and the revisions recorded
in the ``alembic_version`` table. Both are read here the way Alembic reads them (its default
version table, its rule for which files are revision scripts, heads = revisions no other revision
revises); ``tests/test_schema_version.py`` checks the answers against Alembic's own. ``flask db``
still runs Alembic itself (``app/migrate_cli.py``).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

from sqlalchemy import Connection, inspect, text

MIGRATIONS_DIRECTORY = Path(__file__).resolve().parent.parent / "migrations"
VERSION_TABLE = "alembic_version"  # Alembic's default; migrations/env.py names no other
# Alembic's rule (alembic.script.base._only_source_rev_file): a .py file, not __init__, not an editor's lock.
_REVISION_FILE = re.compile(r"(?!\.#|__init__).*\.py$")


class MigrationScriptError(ValueError):
    """A revision script whose identifiers cannot be read (Alembic would refuse it too)."""


def _identifiers(path: Path) -> tuple[str, tuple[str, ...]]:
    """``revision`` and the ``down_revision`` ids of one script, read from its source (never executed)."""
    values: dict[str, object] = {}
    for node in ast.parse(path.read_text("utf-8"), str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            try:
                values[target.id] = ast.literal_eval(value)
            except ValueError:
                raise MigrationScriptError(f"{path.name}: {target.id} is not a literal") from None
    revision, down = values.get("revision"), values.get("down_revision")
    if not isinstance(revision, str) or not revision:
        raise MigrationScriptError(f"{path.name}: no revision id")
    downs = (down,) if isinstance(down, str) else tuple(down or ())
    if not all(isinstance(item, str) and item for item in downs):
        raise MigrationScriptError(f"{path.name}: down_revision is neither a revision id nor a list of them")
    return revision, downs


def shipped_heads(directory: Path = MIGRATIONS_DIRECTORY) -> frozenset[str]:
    """The head revisions of ``directory/versions``: those that no other script names as its down revision."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (directory / "versions").iterdir():
        if path.is_file() and _REVISION_FILE.fullmatch(path.name):
            revision, downs = _identifiers(path)
            revisions.add(revision)
            revised.update(downs)
    return frozenset(revisions - revised)


def database_heads(connection: Connection) -> frozenset[str]:
    """The revisions recorded in the database; empty when it was never migrated (no version table)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return frozenset()
    return frozenset(connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())  # noqa: S608
