"""/readyz's view of the schema, read without Alembic, gives Alembic's own answers."""
from __future__ import annotations

import textwrap

import pytest
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from app.schema_version import MIGRATIONS_DIRECTORY, MigrationScriptError, database_heads, shipped_heads


def test_the_shipped_heads_are_alembics():
    assert shipped_heads() == frozenset(ScriptDirectory(str(MIGRATIONS_DIRECTORY)).get_heads())


def _scripts(tmp_path, scripts: dict[str, str]):
    versions = tmp_path / "versions"
    versions.mkdir()
    (tmp_path / "script.py.mako").write_text((MIGRATIONS_DIRECTORY / "script.py.mako").read_text())
    for name, body in scripts.items():
        (versions / name).write_text(textwrap.dedent(body))
    return tmp_path


def test_branches_merges_and_annotated_ids_give_alembics_heads(tmp_path):
    directory = _scripts(tmp_path, {
        "a.py": "revision = 'a'\ndown_revision = None\n",
        "b.py": "revision: str = 'b'\ndown_revision: str | None = 'a'\n",
        "c.py": "revision = 'c'\ndown_revision = 'a'\n",
        "m.py": "revision = 'm'\ndown_revision = ('b', 'c')\n",
        "d.py": "revision = 'd'\ndown_revision = 'a'\n",  # an unmerged branch: two heads
        "__init__.py": "",
        "notes.txt": "revision = 'x'\n",
    })
    assert shipped_heads(directory) == frozenset({"m", "d"})
    assert shipped_heads(directory) == frozenset(ScriptDirectory(str(directory)).get_heads())


@pytest.mark.parametrize("body", ["down_revision = None\n", "revision = make_id()\n",
                                  "revision = 'a'\ndown_revision = ('b', 3)\n"])
def test_a_script_without_readable_ids_is_an_error(tmp_path, body):
    with pytest.raises(MigrationScriptError, match="broken.py"):
        shipped_heads(_scripts(tmp_path, {"broken.py": body}))


def test_database_heads_are_alembics(database_url):
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            had_table = conn.dialect.has_table(conn, "alembic_version")
            if not had_table:
                assert database_heads(conn) == frozenset() == frozenset(MigrationContext.configure(conn)
                                                                        .get_current_heads())
                conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
            try:
                conn.execute(text("DELETE FROM alembic_version"))
                conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('0013'), ('x1')"))
                heads = database_heads(conn)
                assert heads == frozenset({"0013", "x1"})
                assert heads == frozenset(MigrationContext.configure(conn).get_current_heads())
            finally:
                conn.rollback()
    finally:
        engine.dispose()
