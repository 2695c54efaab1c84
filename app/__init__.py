"""Application factory: configuration, extensions, blueprints, CLI, error handlers."""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping

from flask import Flask, Response, request
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

from config import load_config

from . import log_redaction, web_errors
from .application import ConnectorFlask
from .errors import InvalidRequest
from .extensions import db
from .request_body import BoundedRequest

log = logging.getLogger(__name__)

# C0 control characters. PostgreSQL refuses NUL in text outright (a DataError, so a 500), and no
# path, query or form field of this service legitimately carries any of them; a form body may
# still carry tab, CR and LF (a textarea's line breaks).
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f]")
FORM_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# Blueprints that forward the request body unread: parsing it as a form here would consume it.
OPAQUE_BODY_BLUEPRINTS = frozenset({"proxy"})
# What Werkzeug parses into ``request.form`` (werkzeug.formparser.FormDataParser.parse).
FORM_MIMETYPES = frozenset({"multipart/form-data", "application/x-www-form-urlencoded", "application/x-url-encoded"})
# The API paths a browser (the SPA) may call cross-origin: every /api/ path but the machine endpoints'.
SPA_API_PATHS = r"/api/(?!users(?:/|$)|events(?:/|$))"
# Every response carries these unless it sets its own: (lower-cased name, name, value).
SECURITY_HEADERS = tuple((name.lower(), name, value) for name, value in (
    ("Cache-Control", "no-store"), ("Referrer-Policy", "no-referrer"), ("X-Content-Type-Options", "nosniff")))


def _has_control_characters(pattern: re.Pattern, fields) -> bool:
    return any(pattern.search(key) or pattern.search(value) for key, value in fields.items(multi=True))


def refuse_control_characters() -> None:
    """Before every request: refuse control characters in the decoded path, query or form fields."""
    if CONTROL_CHARACTERS.search(request.path) or (
            request.query_string and _has_control_characters(CONTROL_CHARACTERS, request.args)):
        raise InvalidRequest("the URL contains a NUL or other control character")
    if request.blueprint in OPAQUE_BODY_BLUEPRINTS or request.mimetype not in FORM_MIMETYPES:
        return  # a body of any other type is not parsed as a form: no fields (and no stream) to look at
    if _has_control_characters(FORM_CONTROL_CHARACTERS, request.form):
        raise InvalidRequest("the form contains a NUL or other control character")


def create_app(test_config: Mapping | None = None, env: Mapping[str, str] | None = None) -> Flask:
    """Build the app from ``env`` (default: the process environment); ``test_config`` overrides."""
    app = ConnectorFlask(__name__, instance_relative_config=True)
    app.request_class = BoundedRequest  # a body past max_content_length is 413 whatever its framing
    testing = bool(test_config and test_config.get("TESTING"))
    app.config.update(load_config(env, testing=testing))
    if test_config:
        app.config.update(test_config)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        os.makedirs(app.instance_path, exist_ok=True)
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(app.instance_path, "connector.db")

    log_redaction.install()
    db.init_app(app)
    from . import migrate_cli

    migrate_cli.init_app(app)  # `flask db`: Flask-Migrate and Alembic are imported only when it runs

    extra_providers = extra_credentials = None
    if app.config["CONNECTOR_DEMO"]:
        from . import demo

        extra_providers, extra_credentials = demo.providers(app.config["PUBLIC_BASE_URL"])
    from .runtime import build_runtime

    app.extensions["connector"] = build_runtime(app, extra_providers, extra_credentials)

    from .api.machine import bp as machine_bp
    from .api.proxy import bp as proxy_bp
    from .api.views import bp as api_bp
    from .connect.views import bp as connect_bp
    from .events.feed import bp as events_bp
    from .health import bp as health_bp

    for blueprint in (health_bp, connect_bp, api_bp, machine_bp, proxy_bp, events_bp):
        app.register_blueprint(blueprint)
    # The SPA calls the JSON API from its own origin with a bearer token (never cookies). The machine
    # endpoints (/api/users/..., /api/events) serve jobs, never a browser: no CORS headers there.
    CORS(app, resources={SPA_API_PATHS: {"origins": sorted(app.extensions["connector"].return_urls.origins)}},
         supports_credentials=False, allow_headers=["Authorization", "Content-Type", "Accept"],
         expose_headers=["Retry-After", "ETag", "Link", "Connector-Upstream"], max_age=600)
    from . import admin

    rt = app.extensions["connector"]
    admin.init_app(app, secure_cookies=rt.connect.secure_cookies, timeout=rt.timeout)
    if app.config["CONNECTOR_DEMO"]:
        demo.init_app(app)
    from . import links

    links.init_app(app)  # reconnect links (issue 15)
    if app.config["TRUSTED_PROXY_HOPS"]:
        # Only when configured: otherwise a client could choose its own address with X-Forwarded-For.
        hops = app.config["TRUSTED_PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    from . import cli

    cli.init_app(app)
    web_errors.init_app(app)
    from . import observability

    observability.init_app(app)
    from .runtime import log_enabled_providers

    log_enabled_providers(app, app.extensions["connector"].registry)  # in the configured log format
    from .events.webhooks import init_metrics

    init_metrics(app)
    app.before_request(refuse_control_characters)
    from .api import access

    access.init_app(app)  # after the control-character check; refuses API views that declare no access

    app.after_request(security_headers)
    return app


def security_headers(response: Response) -> Response:
    """After every request: the headers of ``SECURITY_HEADERS`` that the response does not set itself."""
    headers = response.headers
    present = {key.lower() for key in headers.keys()}  # one pass (each setdefault would scan them all)
    for lowered, name, value in SECURITY_HEADERS:
        if lowered not in present:
            headers.add(name, value)
    return response
