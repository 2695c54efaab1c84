"""Reconnect links (issue 15): creation over the machine API, the link page, and ``reconnect_url``
on the answers that tell a caller the user must connect again."""
from __future__ import annotations

from flask import Flask, Response, request

from config import ConfigError

from ..errors import ReauthorizationRequired, ReturnUrlRejected
from ..web_errors import problem
from .tokens import links_enabled, reconnect_url_for

__all__ = ["init_app", "reconnect_url_for"]

# Endpoints whose 409 names a (user, provider) in its URL: the answer carries a reconnect link.
RECONNECT_ENDPOINTS = {"machine_api.user_token"}


def init_app(app: Flask) -> None:
    from .api import bp as api_bp
    from .views import bp as views_bp

    default_return = app.config.get("CONNECT_LINK_DEFAULT_RETURN_URL")
    if default_return:
        try:
            app.extensions["connector"].return_urls.check(default_return)
        except ReturnUrlRejected as exc:
            raise ConfigError(f"CONNECT_LINK_DEFAULT_RETURN_URL: {exc.description}") from None
    app.register_blueprint(api_bp)
    app.register_blueprint(views_bp)
    if links_enabled(app.config):
        from ..events.outbox import set_reconnect_url_builder

        set_reconnect_url_builder(app, reconnect_url_for)  # needs_reauth events carry a reconnect_url

    @app.errorhandler(ReauthorizationRequired)
    def reauthorization_required(exc: ReauthorizationRequired) -> Response:
        response = problem(exc.status, exc.code, exc.title, exc.description, **exc.problem_fields())
        args = request.view_args or {}
        if (request.endpoint in RECONNECT_ENDPOINTS and response.is_json and links_enabled(app.config)
                and "user_id" in args and "provider" in args):
            body = response.get_json()
            # insufficient_scope: the link asks for the missing scopes too.
            scopes = getattr(exc, "missing_scopes", ())
            body["reconnect_url"] = reconnect_url_for(args["user_id"], args["provider"], scopes=scopes)
            response.set_data(app.json.dumps(body))
        return response
