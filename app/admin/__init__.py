"""Admin console: operators sign in through Auth0, search connections, revoke, read the audit trail."""
from __future__ import annotations

from datetime import timedelta

from flask import Flask, Response
from flask_wtf.csrf import CSRFError

from ..extensions import csrf, login_manager
from ..web_errors import problem
from . import auth, dashboard, event_views, views  # noqa: F401  (routes register on the blueprint)
from .blueprint import bp
from .session_cookie import SessionCookieInterface
from .sessions import load_session


def init_app(app: Flask, *, secure_cookies: bool, timeout: tuple[float, float]) -> None:
    # The Flask session is the admin's only cookie (the connect flow and the API use none of it).
    app.config.update(
        SESSION_COOKIE_NAME=("__Host-" if secure_cookies else "") + "connector_admin",
        SESSION_COOKIE_SECURE=secure_cookies,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH="/",
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=app.config["ADMIN_SESSION_LIFETIME"]),
        # CSRF is checked by the admin blueprint itself; the JSON API uses bearer tokens and
        # /connect/start its own Origin check, so nothing else should demand a form token.
        WTF_CSRF_CHECK_DEFAULT=False,
    )
    app.session_interface = SessionCookieInterface()  # its serializer made once, not per request
    csrf.init_app(app)
    login_manager.init_app(app)
    # Flask-Login reads the session after every request for its remember cookie (unused here): that
    # opened the session on API and connect requests too, and their answers carried Vary: Cookie.
    # The console is the only part with a session, so the hook runs for the console alone.
    app.after_request_funcs[None].remove(login_manager._update_remember_cookie)
    app.after_request_funcs.setdefault(bp.name, []).append(login_manager._update_remember_cookie)
    login_manager.session_protection = None  # the server-side session row is the protection
    login_manager.user_loader(load_session)
    auth.init_oauth(app, timeout)

    @app.errorhandler(CSRFError)
    def csrf_failed(exc: CSRFError) -> Response:
        return problem(400, "csrf_failed", "The form is stale or did not come from this console",
                       f"{exc.description} Reload the page and try again.")

    app.register_blueprint(bp)
