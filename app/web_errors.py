"""Rendering errors: problem+json (RFC 9457) for API clients, a plain page for browsers."""
from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from .database_faults import database_unavailable, describe
from .errors import ConnectorError, DatabaseUnavailable

PROBLEM_BASE = "https://oauth-connector.dev/problems/"
# Seconds a client should wait before retrying a 503 that does not say otherwise (the database
# answers again about a second after it returns; a dead connection invalidates the pool, which
# connects anew).
DEFAULT_RETRY_AFTER = 5


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json", "application/problem+json"])
    return best in ("application/json", "application/problem+json")


def problem(status: int, code: str, title: str, detail: str, *, json: bool = False, **fields) -> Response:
    """``fields``: extension members of the problem document (RFC 9457 §3.2), JSON only."""
    if json or wants_json():
        response = jsonify(**fields, type=PROBLEM_BASE + code, title=title, status=status, detail=detail, code=code)
        response.mimetype = "application/problem+json"
    else:
        response = Response(render_template("error.html", status=status, title=title, detail=detail, code=code),
                            mimetype="text/html")
    response.status_code = status
    return response


def error_response(exc: ConnectorError, *, json: bool = False) -> Response:
    response = problem(exc.status, exc.code, exc.title, exc.description, json=json, **exc.problem_fields())
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        response.headers["Retry-After"] = str(max(1, int(retry_after)))
    elif exc.status == 503:
        response.headers["Retry-After"] = str(DEFAULT_RETRY_AFTER)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = f'Bearer error="{exc.code}"'
    return response


def database_unavailable_response(app: Flask, exc: BaseException) -> Response:
    app.logger.warning("database unavailable on %s %s: %s", request.method, request.path, describe(exc))
    return error_response(DatabaseUnavailable("The database is unavailable or busy; try again shortly.",
                                              retry_after=DEFAULT_RETRY_AFTER))


def init_app(app: Flask) -> None:
    @app.errorhandler(ConnectorError)
    def connector_error(exc: ConnectorError) -> Response:
        return error_response(exc)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        original = getattr(exc, "original_exception", None)
        if original is not None and database_unavailable(original):
            return database_unavailable_response(app, original)
        code = (exc.name or "error").lower().replace(" ", "_")
        response = problem(exc.code or 500, code, exc.name, exc.description or exc.name)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        if database_unavailable(exc):
            return database_unavailable_response(app, exc)
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "server_error", "Internal error", "Something went wrong; it has been logged.")
