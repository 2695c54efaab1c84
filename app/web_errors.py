"""Rendering errors: problem+json (RFC 9457) for API clients, a plain page for browsers."""
from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from .errors import ConnectorError

PROBLEM_BASE = "https://oauth-connector.dev/problems/"


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json", "application/problem+json"])
    return best in ("application/json", "application/problem+json")


def problem(status: int, code: str, title: str, detail: str) -> Response:
    if wants_json():
        response = jsonify(type=PROBLEM_BASE + code, title=title, status=status, detail=detail, code=code)
        response.mimetype = "application/problem+json"
    else:
        response = Response(render_template("error.html", status=status, title=title, detail=detail, code=code),
                             mimetype="text/html")
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(ConnectorError)
    def connector_error(exc: ConnectorError) -> Response:
        response = problem(exc.status, exc.code, exc.title, exc.description)
        retry_after = getattr(exc, "retry_after", None)  # ProviderUnavailable, TooManyAttempts, ...
        if retry_after:
            response.headers["Retry-After"] = str(max(1, int(retry_after)))
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = f'Bearer error="{exc.code}"'
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = (exc.name or "error").lower().replace(" ", "_")
        return problem(exc.code or 500, code, exc.name, exc.description or exc.name)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "server_error", "Internal error", "Something went wrong; it has been logged.")
