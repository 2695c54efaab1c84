"""HTTP face of the connect flow: two redirect-only endpoints."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, redirect, request

from ..errors import CrossSiteRequest, Forbidden, InvalidRequest
from ..extensions import db
from ..runtime import runtime
from .flow import REQUEST_TTL, finish_connect, single_params, start_connect

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


@bp.post("/start")
def start() -> Response:
    rt = runtime()
    # Connect-CSRF: only the SPA's own pages may start a connect for their user.
    if not rt.return_urls.origin_allowed(_request_origin()):
        raise CrossSiteRequest("this form must be submitted from an allowed application origin")
    try:
        form = single_params(request.form.to_dict(flat=False))
    except InvalidRequest as exc:
        raise InvalidRequest(exc.description) from None
    principal = rt.verifier.verify(form.get("access_token"))
    if principal.is_machine:
        raise Forbidden("a machine (client-credentials) token cannot connect accounts; use the user's token")
    spec = rt.registry.get(form.get("provider"))
    return_to = rt.return_urls.check(form.get("return_to"))
    started = start_connect(rt.connect, principal, spec, return_to)
    db.session.commit()
    response = redirect(started.authorize_url, 303)
    response.set_cookie(started.cookie_name, started.cookie_value, max_age=int(REQUEST_TTL.total_seconds()),
                        secure=rt.connect.secure_cookies, httponly=True, samesite="Lax", path="/")
    return response


@bp.get("/callback")
def callback() -> Response:
    rt = runtime()
    result = finish_connect(rt.connect, request.args.to_dict(flat=False), request.cookies)
    response = redirect(result.redirect_to, 303)
    if result.cookie_name:
        response.delete_cookie(result.cookie_name, path="/", secure=rt.connect.secure_cookies,
                               httponly=True, samesite="Lax")
    return response
