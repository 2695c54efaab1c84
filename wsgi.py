"""WSGI entry point: ``gunicorn wsgi:app``."""
import sys

from app import create_app
from config import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    print(f"configuration error: {exc}", file=sys.stderr)
    sys.exit(2)
