"""The demo SPA page and its assets, and the strict headers every demo page carries."""
from __future__ import annotations

from flask import Blueprint, Response, render_template

CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                           "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

bp = Blueprint("demo", __name__, url_prefix="/demo", template_folder="templates",
               static_folder="static", static_url_path="/static")


def secure_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers["X-Frame-Options"] = "DENY"
    return response


bp.after_request(secure_headers)


@bp.get("/spa")
def spa() -> Response:
    response = Response(render_template("demo/spa.html"))
    # Not no-referrer: under it a browser sends "Origin: null" with the form POST to /connect/start,
    # which the connect-CSRF check must refuse. same-origin still tells no other site anything.
    response.headers["Referrer-Policy"] = "same-origin"
    return response
