"""``flask db ...``: Flask-Migrate's commands, with Flask-Migrate and Alembic imported only when the CLI
asks for them.

Binding Flask-Migrate in ``create_app`` imports Alembic and Mako (and Pygments where installed) into
every gunicorn worker, 6-11 MB each, for commands that only the ``flask`` CLI runs. Here the app's CLI
group knows the name ``db`` and, when the CLI looks it up (to run it, or to list it in ``--help``), binds
Flask-Migrate to the app exactly as ``Migrate(app, db, render_as_batch=True)`` in the factory did, which
registers Flask-Migrate's own ``db`` group. This is Click's lazily loaded subcommand pattern.
"""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from .extensions import db

COMMAND = "db"


def bind_migrate(app: Flask) -> None:
    """Flask-Migrate on ``app`` (once): ``app.extensions["migrate"]`` and the ``db`` command group."""
    if "migrate" not in app.extensions:
        from flask_migrate import Migrate

        Migrate(app, db, command=COMMAND, render_as_batch=True)


class AppCliWithMigrations(AppGroup):
    """The app's CLI group; ``db`` is Flask-Migrate's, bound on first lookup."""

    def __init__(self, app: Flask) -> None:
        super().__init__(app.cli.name)
        self.commands.update(app.cli.commands)
        self._app = app

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), COMMAND})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == COMMAND:
            bind_migrate(self._app)
        return super().get_command(ctx, name)


def init_app(app: Flask) -> None:
    app.cli = AppCliWithMigrations(app)
