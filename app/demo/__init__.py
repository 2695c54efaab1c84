"""Demo mode (CONNECTOR_DEMO=1): a dev issuer, a sandbox provider and an SPA page.

Placeholder until the demo lands: it adds nothing.
"""
from __future__ import annotations

from flask import Flask


def providers(base_url: str) -> tuple[dict, dict]:
    return {}, {}


def init_app(app: Flask) -> None:
    app.logger.warning("DEMO MODE: insecure development issuer and sandbox provider are mounted")
