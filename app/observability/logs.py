"""Structured logs: ``LOG_FORMAT=text|json``, a request id per request, context fields.

Every line carries time, level, logger and message, and, when known, ``request_id``,
``connection_id``, ``provider`` and ``user_id``. Never token material: callers log descriptions
and codes, and the query-string redaction of ``app.log_redaction`` still applies (it is a filter
on the loggers that print request lines).

The request id comes from ``X-Request-ID`` only when a trusted proxy sets it
(``TRUSTED_PROXY_HOPS`` > 0) and it looks like an id; otherwise it is generated. It is returned in
the response's ``X-Request-ID`` and recorded in the request's audit events.
"""
from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Callable

from flask import Flask, Response, g, has_request_context, request
from flask.logging import default_handler
from pythonjsonlogger.json import JsonFormatter

from .metrics import provider_label

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+=/-]{0,127}")
CONTEXT_FIELDS = ("request_id", "connection_id", "provider", "user_id")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id_text)s] %(message)s"


def current_request_id() -> str | None:
    return g.get("request_id") if has_request_context() else None


def set_log_context(**fields: str | None) -> None:
    """Remember ``connection_id``, ``provider`` or ``user_id`` for the rest of this request's lines."""
    if has_request_context():
        context = g.setdefault("log_context", {})
        context.update({key: value for key, value in fields.items() if key in CONTEXT_FIELDS and value})


class ContextFilter(logging.Filter):
    """Adds the request's context fields to every record (explicit ``extra=`` values win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context: dict = {}
        if has_request_context():
            context = {"request_id": g.get("request_id"), **g.get("log_context", {})}
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, context.get(name))
        return True


class ConnectorJsonFormatter(JsonFormatter):
    """One JSON object per line; context fields that are unknown are left out rather than null."""

    def process_log_record(self, log_record: dict) -> dict:
        return {key: value for key, value in log_record.items() if value is not None}


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [request id] message``; ``-`` outside a request."""

    def format(self, record: logging.LogRecord) -> str:
        record.request_id_text = getattr(record, "request_id", None) or "-"
        return super().format(record)


def formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return ConnectorJsonFormatter(["levelname", "name", "message"], timestamp="time",
                                      rename_fields={"levelname": "level", "name": "logger"})
    return TextFormatter(TEXT_FORMAT)


class _ConnectorHandler(logging.StreamHandler):
    """Marks the handler ``configure_logging`` installed, so a second call replaces it."""


def configure_logging(fmt: str = "text", level: int = logging.INFO, stream=None) -> logging.Handler:
    """Send every logger's lines (the app's, and gunicorn's through ``gunicorn_logconfig``) through one
    handler on the root logger with the chosen format. Call it once per process; calling again replaces it."""
    if fmt not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, got {fmt!r}")
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _ConnectorHandler)]:
        root.removeHandler(handler)
    handler = _ConnectorHandler(stream or sys.stderr)
    handler.setFormatter(formatter(fmt))
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)
    return handler


def gunicorn_logconfig(fmt: str = "text") -> dict:
    """A ``logconfig_dict`` for gunicorn.conf.py: gunicorn's error and access lines in the same format
    (the access line stays redacted: the filter on ``gunicorn.access`` is added by the app)."""
    if fmt not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"connector": {"()": formatter, "fmt": fmt}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "connector",
                                 "filters": ["context"], "stream": "ext://sys.stderr"}},
        "root": {"level": "INFO", "handlers": []},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
        },
    }


def _request_id_hook(trusted: bool) -> Callable[[], None]:
    """The before-request hook that assigns the request id; ``trusted``: a trusted proxy may set it
    (decided once, when the app is made, as ``ProxyFix`` is)."""

    def assign_request_id() -> None:
        presented = request.headers.get(REQUEST_ID_HEADER) if trusted else None
        g.request_id = presented if presented and REQUEST_ID_RE.fullmatch(presented) else uuid.uuid4().hex
        # Route parameters that are known by now (a provider name is only recorded once it is configured).
        provider = (request.view_args or {}).get("provider")
        if provider is not None and provider_label(provider) != "other":
            set_log_context(provider=provider)

    return assign_request_id


def _return_request_id(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response


def init_app(app: Flask) -> None:
    trusted = app.config.get("TRUSTED_PROXY_HOPS", 0) > 0
    app.before_request_funcs.setdefault(None, []).insert(0, _request_id_hook(trusted))
    app.after_request(_return_request_id)
    if not app.testing:  # tests attach their own handlers (caplog); a process configures once
        configure_logging(app.config.get("LOG_FORMAT", "text"))
        app.logger.removeHandler(default_handler)  # the root handler has the app's lines: once, formatted
