"""HTTP face of the connect flow: /connect/start and /connect/callback/<provider>, redirect-only."""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint, Response, redirect, request

from ..errors import (
    ConnectorError,
    CrossSiteRequest,
    Forbidden,
    InvalidRequest,
    InvalidToken,
    ProviderUnavailable,
    ReturnUrlRejected,
    ScopeNotAllowed,
    UnknownProvider,
)
from ..extensions import db
from ..providers.templates import InvalidConnectionParam
from ..runtime import Runtime, runtime
from ..scopes import parse_scope_list
from ..web_errors import wants_json
from . import outcomes
from .flow import REQUEST_TTL, finish_connect, single_params, start_connect, with_outcome
from .params import from_form

log = logging.getLogger(__name__)
bp = Blueprint("connect", __name__, url_prefix="/connect")


def _request_origin() -> str | None:
    origin = request.headers.get("Origin")
    if origin:
        return origin
    referer = request.headers.get("Referer")
    if referer:
        try:
            parts = urlsplit(referer)
        except ValueError:  # e.g. an unbalanced "[" in the host: not an allowed origin
            return None
        return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None
    return None


def _start_error(exc: ConnectorError) -> str:
    """The stable code sent back to the app for a start that failed after its return URL was checked."""
    if isinstance(exc, InvalidToken):
        return outcomes.LOGIN_REQUIRED
    if isinstance(exc, UnknownProvider):
        return outcomes.UNKNOWN_PROVIDER
    if isinstance(exc, InvalidConnectionParam):
        return outcomes.INVALID_CONNECTION_PARAM
    if isinstance(exc, ScopeNotAllowed):
        return outcomes.SCOPE_NOT_ALLOWED
    if isinstance(exc, ProviderUnavailable):
        return outcomes.PROVIDER_UNAVAILABLE
    if exc.status >= 500:
        return outcomes.TEMPORARILY_UNAVAILABLE
    return outcomes.INVALID_REQUEST


def _back_to_app(rt: Runtime, return_to: str, name: str | None, exc: ConnectorError) -> Response:
    """Send the browser back to its (checked) return URL with the outcome; JSON clients get the problem."""
    db.session.rollback()
    if wants_json():  # a script, not a browser navigation: the problem document, as documented
        raise exc
    known = name in {spec.name for spec in rt.registry.enabled()}
    code = _start_error(exc)
    # An Auth0 token that expired on an open page is routine; the rest is worth an operator's look.
    level = logging.INFO if code == outcomes.LOGIN_REQUIRED else logging.WARNING
    log.log(level, "connect start refused: %s (%s, provider=%s)", code, exc.code, name if known else "-")
    outcome = {"connector_status": "error", **({"provider": name} if known else {}), "error": code}
    return redirect(with_outcome(return_to, **outcome), 303)


@bp.post("/start")
def start() -> Response:
    rt = runtime()
    # Connect-CSRF: only the SPA's own pages may start a connect for their user.
    # Until return_to has passed its checks there is nowhere safe to send the browser: plain-words pages.
    if not rt.return_urls.origin_allowed(_request_origin()):
        raise outcomes.page("cross_site_request", CrossSiteRequest)
    try:
        form = single_params(request.form.to_dict(flat=False))
    except InvalidRequest:
        raise outcomes.page("invalid_start_form", InvalidRequest) from None
    try:
        return_to = rt.return_urls.check(form.get("return_to"))
    except ReturnUrlRejected as exc:
        raise outcomes.page("invalid_return_url", ReturnUrlRejected, exc.description) from None
    # From here on every failure goes back to the app (its return URL and Origin are checked).
    name = form.get("provider")
    try:
        principal = rt.verifier.verify(form.get("access_token"))
    except ConnectorError as exc:
        return _back_to_app(rt, return_to, name, exc)
    if principal.is_machine:  # an integration bug, not something a user meets: the 403 page
        raise Forbidden("a machine (client-credentials) token cannot connect accounts; use the user's token")
    try:
        spec = rt.registry.get(name)
        asked = parse_scope_list(form["scopes"], "scopes", error=ScopeNotAllowed) if form.get("scopes") else ()
        started = start_connect(rt.connect, principal, spec, return_to, scopes=asked,
                                params=from_form(spec, form))  # writes nothing
    except ConnectorError as exc:
        return _back_to_app(rt, return_to, name, exc)
    response = redirect(started.authorize_url, 303)
    response.set_cookie(started.cookie_name, started.cookie_value, max_age=int(REQUEST_TTL.total_seconds()),
                        secure=rt.connect.secure_cookies, httponly=True, samesite="Lax", path="/")
    return response


# Each provider has its own redirect URI; the bare path only answers (and refuses) responses that
# were sent to it, e.g. by a provider still registered with the address of earlier versions.
@bp.get("/callback", defaults={"provider": None})
@bp.get("/callback/<provider>")
def callback(provider: str | None) -> Response:
    rt = runtime()
    result = finish_connect(rt.connect, provider, request.args.to_dict(flat=False), request.cookies)
    response = redirect(result.redirect_to, 303)
    if result.cookie_name:
        response.delete_cookie(result.cookie_name, path="/", secure=rt.connect.secure_cookies,
                               httponly=True, samesite="Lax")
    return response
