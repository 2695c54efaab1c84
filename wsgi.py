"""WSGI entry point: ``gunicorn wsgi:app`` (and ``flask --app wsgi ...``).

A configuration error stops the process: every problem on stderr, one line each, and exit code 4,
which makes gunicorn halt ("App failed to load") instead of restarting its workers forever. The same
holds for ``flask run`` and the CLI's commands, except those that need no configuration
(``--help``, ``connector generate-key``).
"""
import sys

from app import create_app
from app.cli import EXIT_CONFIGURATION_ERROR, loaded_by_flask_cli, report_configuration_error, unconfigured_app
from config import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    if loaded_by_flask_cli():
        app = unconfigured_app(exc)
    else:
        report_configuration_error(exc)
        sys.exit(EXIT_CONFIGURATION_ERROR)
