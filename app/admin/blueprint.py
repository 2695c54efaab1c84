"""The admin blueprint: access guard, CSRF on every POST, and strict headers on every page."""
from __future__ import annotations

from flask import Blueprint, Response, redirect, request, url_for
from flask_login import current_user

from ..extensions import csrf

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates",
               static_folder="static", static_url_path="/static")

PUBLIC_ENDPOINTS = {"admin.login", "admin.login_start", "admin.callback", "admin.demo_login", "admin.static"}

CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                           "frame-ancestors 'none'; base-uri 'none'")


@bp.before_request
def guard() -> Response | None:
    if request.method == "POST":
        csrf.protect()  # Flask-WTF: a POST without this session's token is refused (400)
    if request.endpoint in PUBLIC_ENDPOINTS or current_user.is_authenticated:
        return None
    return redirect(url_for("admin.login"))


@bp.after_request
def security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response
