"""OpenTelemetry traces, only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_TRACES_EXPORTER`` is set.

This module is imported only then: without those settings, tracing costs nothing. The SDK reads
the standard ``OTEL_*`` variables (endpoint, headers, service name, sampler) itself.

No secret reaches an attribute: query strings (a callback's ``code`` and ``state``, anything a
proxied call carries) are replaced in server and client spans, headers are not recorded (do not
set ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*``: it would record them), and SQL spans carry
the statement with its placeholders, never the parameters.
"""
from __future__ import annotations

import os

from flask import Flask
from opentelemetry import trace
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

from ..log_redaction import QUERY_RE

# Attributes that hold a URL or its query, old and new semantic conventions.
URL_ATTRIBUTES = ("http.url", "http.target", "url.full", "url.query", "http.request.header.referer")
EXCLUDED_URLS = "healthz,metrics"


def _scrub(span) -> None:
    attributes = getattr(span, "attributes", None) or {}
    for key in URL_ATTRIBUTES:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            span.set_attribute(key, "[redacted]" if key == "url.query" else QUERY_RE.sub("?[redacted]", value))


def _server_response_hook(span, _status, _headers) -> None:
    """Before the server span ends (the instrumentation sets its URL attributes after a request hook)."""
    if span and span.is_recording():
        _scrub(span)


def _client_request_hook(span, _request) -> None:
    if span and span.is_recording():
        _scrub(span)


def _client_response_hook(span, _request, _response) -> None:
    if span and span.is_recording():
        _scrub(span)


def _exporter() -> SpanExporter:
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def init_tracing(app: Flask, exporter: SpanExporter | None = None) -> TracerProvider:
    """Instrument this app (Flask), outgoing ``requests`` and the app's database engine.

    ``exporter``: for tests (an in-memory exporter, spans exported as they end); otherwise the
    exporter named by ``OTEL_TRACES_EXPORTER`` (``otlp``, the default, over HTTP; or ``console``)."""
    from ..extensions import db

    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or "oauth-connector"})
    provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(_exporter()))
        trace.set_tracer_provider(provider)
    FlaskInstrumentor().instrument_app(app, tracer_provider=provider, response_hook=_server_response_hook,
                                       excluded_urls=EXCLUDED_URLS)
    RequestsInstrumentor().instrument(tracer_provider=provider, request_hook=_client_request_hook,
                                      response_hook=_client_response_hook)
    with app.app_context():
        # Its declared range ends before SQLAlchemy 2.1, but the engine events it hooks are unchanged
        # there (tests/observability/test_tracing.py checks the SQL spans).
        SQLAlchemyInstrumentor().instrument(engine=db.engine, tracer_provider=provider, skip_dep_check=True)
    return provider
