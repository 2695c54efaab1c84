"""Demo mode (CONNECTOR_DEMO=1): a dev issuer, a sandbox provider and an SPA page, so a
newcomer can click through the whole product with no account anywhere. Never in production.
"""
from __future__ import annotations

from flask import Flask, Response, current_app, redirect

from . import issuer, pages, sandbox


def providers(base_url: str) -> tuple[dict, dict]:
    """The sandbox's catalog entry and credentials, merged in as an operator's would be."""
    return ({"sandbox": sandbox.entry(base_url)},
            {"SANDBOX_CLIENT_ID": sandbox.CLIENT_ID, "SANDBOX_CLIENT_SECRET": sandbox.CLIENT_SECRET})


def init_app(app: Flask) -> None:
    app.logger.warning("DEMO MODE: insecure development issuer and sandbox provider are mounted")
    # Where the issuer key and the sandbox's grants live (owner-only files).
    state_dir = app.config.get("DEMO_STATE_DIR") or app.instance_path
    issuer.init_app(app, state_dir)
    sandbox.init_app(app, state_dir)
    app.register_blueprint(pages.bp)

    @app.get("/")
    def home() -> Response:
        # Absolute: someone who typed localhost lands on the configured host, where cookies and origins match.
        return redirect(f"{current_app.config['PUBLIC_BASE_URL']}/demo/spa", 302)
