"""Prometheus metrics: the metric objects, the functions that move them, and ``/metrics``.

Under gunicorn with several workers (and in the CLI worker) set ``PROMETHEUS_MULTIPROC_DIR`` to one
writable, emptied-at-start directory for every process: prometheus_client then keeps each
process's counters in files there and ``/metrics`` sums them. Gauges that describe the database
(connections by provider and status, the oldest due refresh, the webhook backlog) are never
per-process values: a collector computes them at scrape time, from the database, once per scrape.

Label values are never user data: ``endpoint`` is the Flask endpoint name (never the path),
``provider`` is a configured provider's name (anything else is ``other``), outcomes are our own
constants.
"""
from __future__ import annotations

import hmac
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from ..errors import InvalidToken, NotFound

log = logging.getLogger(__name__)

HTTP_REQUESTS = Counter("connector_http_requests", "HTTP requests answered, by Flask endpoint, method and status",
                        ["endpoint", "method", "status"])
HTTP_DURATION = Histogram("connector_http_request_duration_seconds", "Time to answer an HTTP request, by endpoint",
                          ["endpoint"])
CONNECTS = Counter("connector_connects", "Completed connect callbacks, by provider and outcome (success, error)",
                   ["provider", "outcome"])
REFRESHES = Counter("connector_refreshes", "Access-token refreshes, by provider and outcome "
                    "(ok, needs_reauth, transient, failed, lost_lease)", ["provider", "outcome"])
REFRESH_DURATION = Histogram("connector_refresh_duration_seconds", "Time the provider took to answer a refresh",
                             ["provider"])
TOKEN_REQUESTS = Counter("connector_token_requests", "Machine token requests, by outcome (ok or the error)",
                         ["outcome"])
PROXY_REQUESTS = Counter("connector_proxy_requests", "Proxied API calls, by provider and our answer's status class",
                         ["provider", "status_class"])
REVOCATIONS = Counter("connector_revocations", "Revocations: revoked (tokens wiped here) and each remote outcome "
                      "(done, pending, failed, not_supported)", ["provider", "outcome"])
WEBHOOK_DELIVERIES = Counter("connector_webhook_deliveries", "Webhook delivery attempts, by outcome", ["outcome"])

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LABEL_RE = re.compile(r"[a-z0-9_]{1,32}")
SCRAPE_ENDPOINT = "observability_metrics.metrics"

# Known providers (configured names), filled at init_app; labels for anything else are "other".
_providers: set[str] = set()
# h9's outbox: a function (session) -> int that counts undelivered webhook events; None: no backlog gauge.
_webhook_backlog: Callable | None = None


def provider_label(name: str | None) -> str:
    return name if name in _providers else "other"


def outcome_label(value: str | None) -> str:
    """Our own outcome constants pass; anything unexpected collapses (bounded cardinality)."""
    return value if value and LABEL_RE.fullmatch(value) else "other"


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


def exception_outcome(exc: BaseException) -> str:
    """A bounded label for an exception: its class name in snake case (NotFound -> not_found)."""
    return outcome_label(re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower())


# -- domain events ---------------------------------------------------------------------------------

def count_refresh(provider: str | None, outcome: str) -> None:
    REFRESHES.labels(provider_label(provider), outcome_label(outcome)).inc()


@contextmanager
def refresh_timer(provider: str | None) -> Iterator[None]:
    """Around the provider call of a refresh (the vault): observes its duration, success or not."""
    started = time.perf_counter()
    try:
        yield
    finally:
        REFRESH_DURATION.labels(provider_label(provider)).observe(time.perf_counter() - started)


def record_webhook_delivery(outcome: str) -> None:
    """For the webhook sender (h9): one delivery attempt ended (delivered, retry, failed, ...)."""
    WEBHOOK_DELIVERIES.labels(outcome_label(outcome)).inc()


def register_webhook_backlog(count: Callable | None) -> None:
    """For the outbox (h9): ``count(session) -> int`` undelivered events; the gauge appears once set."""
    global _webhook_backlog
    _webhook_backlog = count


# Audit action -> what it counts. Refresh outcomes in the audit trail are the failures; "ok" and
# "lost_lease" are counted by the vault itself.
REFRESH_AUDIT_OUTCOMES = {"needs_reauth": "needs_reauth", "unavailable": "transient", "failed": "failed"}


def count_audit(action: str, outcome: str, provider: str | None) -> None:
    if action == "connect":
        CONNECTS.labels(provider_label(provider), outcome_label(outcome)).inc()
    elif action == "refresh":
        count_refresh(provider, REFRESH_AUDIT_OUTCOMES.get(outcome, outcome))
    elif action in ("revoke", "revoke_remote"):
        REVOCATIONS.labels(provider_label(provider), outcome_label(outcome)).inc()


def count_token_requests(view: Callable) -> Callable:
    """Decorator for the machine token endpoint: counts each request by outcome."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        try:
            result = view(*args, **kwargs)
        except Exception as exc:
            TOKEN_REQUESTS.labels(exception_outcome(exc)).inc()
            raise
        TOKEN_REQUESTS.labels("ok").inc()
        return result
    return wrapper


def count_proxy_requests(view: Callable) -> Callable:
    """Decorator for the proxy view: counts by provider and the status class of our answer."""
    @wraps(view)
    def wrapper(provider: str, *args, **kwargs):
        try:
            response = view(provider, *args, **kwargs)
        except Exception as exc:
            PROXY_REQUESTS.labels(provider_label(provider), status_class(getattr(exc, "status", 500))).inc()
            raise
        PROXY_REQUESTS.labels(provider_label(provider), status_class(response.status_code)).inc()
        return response
    return wrapper


# -- HTTP requests ---------------------------------------------------------------------------------

def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


# (endpoint, method label, status) -> the counter's and the histogram's children, looked up once each
# (labels() takes a lock and checks its values on every call). Bounded like the labels themselves:
# endpoints are the app's, methods are METHODS or "other", statuses are integers below 1000.
_request_children: dict[tuple[str, str, int], tuple] = {}


def _children(endpoint: str, method: str, status: int) -> tuple:
    key = (endpoint, method, status)
    children = _request_children.get(key)
    if children is None:
        children = _request_children.setdefault(
            key, (HTTP_REQUESTS.labels(endpoint, method, str(status)), HTTP_DURATION.labels(endpoint)))
    return children


def _count_request(response: Response) -> Response:
    started = g.pop("metrics_started", None)
    endpoint = request.endpoint or "unmatched"  # a 404 has no endpoint: never the raw path
    method = request.method
    requests, duration = _children(endpoint, method if method in METHODS else "other", response.status_code)
    requests.inc()
    if started is not None:
        duration.observe(time.perf_counter() - started)
    return response


# -- database gauges, computed at scrape time ------------------------------------------------------

class DatabaseCollector(Collector):
    """``connector_connections{provider,status}`` (one GROUP BY on an index), the age of the oldest
    due refresh, and the webhook backlog when the outbox exists. Runs inside the scrape's request."""

    def collect(self):
        from ..extensions import db

        try:
            families = list(self._families(db.session))
        except SQLAlchemyError as exc:
            # The process's counters are still worth a scrape when the database is down.
            db.session.rollback()
            log.warning("metrics: the database gauges could not be read (%s)", type(exc).__name__)
            families = []
        yield GaugeMetricFamily("connector_database_up", "1 if this scrape could read the database gauges",
                                value=1 if families else 0)
        yield from families

    @staticmethod
    def _families(session):
        from .db_gauges import connection_counts, oldest_due_refresh_age

        connections = GaugeMetricFamily("connector_connections", "Connections by provider and status",
                                        labels=["provider", "status"])
        for provider, status, count in connection_counts():
            connections.add_metric([provider, status], count)
        yield connections
        yield GaugeMetricFamily("connector_oldest_due_refresh_age_seconds",
                                "Seconds since the access token of the longest-overdue refreshable active "
                                "connection expired (0: nothing overdue)", value=oldest_due_refresh_age())
        if _webhook_backlog is not None:
            yield GaugeMetricFamily("connector_webhook_backlog", "Webhook events waiting for delivery",
                                    value=_webhook_backlog(session))


class _ProcessCollector(Collector):
    """This process's own metrics (single-process mode)."""

    def collect(self):
        yield from REGISTRY.collect()


def exposition() -> bytes:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessCollector())
    registry.register(DatabaseCollector())
    return generate_latest(registry)


bp = Blueprint("observability_metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    token = current_app.config.get("METRICS_TOKEN")
    if not token:
        raise NotFound("metrics are off (METRICS_TOKEN is not set)")
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), token.encode()):
        raise InvalidToken("send the metrics token as 'Authorization: Bearer <METRICS_TOKEN>'")
    return Response(exposition(), mimetype=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    _providers.update(spec.name for spec in app.extensions["connector"].registry.enabled())
    app.register_blueprint(bp)
    # First, so the duration includes the other hooks (and a request they refuse is still timed).
    app.before_request_funcs.setdefault(None, []).insert(0, _start_timer)
    app.after_request(_count_request)
