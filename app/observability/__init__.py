"""Operations: Prometheus metrics, structured logs with request ids, optional OpenTelemetry traces."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from ..models import AUDIT_HOOKS
    from . import logs, metrics
    from .audit import on_audit

    logs.init_app(app)
    metrics.init_app(app)
    if on_audit not in AUDIT_HOOKS:
        AUDIT_HOOKS.append(on_audit)
    if app.config.get("TRACING") and not app.testing:  # tests call init_tracing with their own exporter
        from .tracing import init_tracing

        init_tracing(app)
