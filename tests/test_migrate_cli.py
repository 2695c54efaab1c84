"""``flask db`` is Flask-Migrate's, bound when the CLI asks for it: a web worker never imports Alembic."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import base_env

ROOT = Path(__file__).resolve().parents[1]
CLI_ONLY = ("alembic", "flask_migrate", "mako", "pygments", "yaml")


def test_the_web_app_imports_neither_alembic_nor_flask_migrate(tmp_path):
    env = {"PATH": os.environ["PATH"], **base_env(DATABASE_URL=f"sqlite:///{tmp_path}/app.db")}
    code = ("import sys, json, wsgi; wsgi.app.test_client().get('/readyz'); "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = set(json.loads(result.stdout.splitlines()[-1]))
    assert "flask" in loaded and "sqlalchemy" in loaded  # the app was built
    assert loaded.isdisjoint(CLI_ONLY)


def test_db_commands_bind_flask_migrate_on_first_use(app):
    assert "migrate" not in app.extensions
    assert "db" in app.cli.list_commands(None)
    # Alembic prints to the sys.stdout of when it was first imported, so the output is not asserted here:
    # tests/test_migrations.py runs `flask db upgrade` in a process of its own.
    result = app.test_cli_runner().invoke(args=["db", "heads"])
    assert result.exit_code == 0, result.output
    config = app.extensions["migrate"]
    assert config.db is not None and config.configure_args["render_as_batch"] is True
    assert app.cli.get_command(None, "connector") is not None  # the app's other commands are still there
