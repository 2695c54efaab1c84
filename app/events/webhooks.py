"""Delivering events as Standard Webhooks: signed, at least once, retried with backoff.

Each delivery attempt POSTs the event's stored body to ``WEBHOOK_URL`` with ``webhook-id`` (the
event's id, the same on every attempt), ``webhook-timestamp`` and ``webhook-signature``
(``v1,<base64 HMAC-SHA256>`` per secret of ``WEBHOOK_SECRET``, space-separated), signed by the
``standardwebhooks`` library. A 2xx ends it; any other answer, a timeout or a connection error
is tried again after an exponential backoff with jitter (at least ``Retry-After``, capped), up to
``WEBHOOK_MAX_ATTEMPTS``; then the event is ``failed`` until someone re-delivers it.

Copies of the worker share the work: each claims a few due events by taking their leases in one
short transaction (PostgreSQL skips rows another copy has locked; on SQLite the lease condition
is checked again in the UPDATE), and no transaction stays open while the receiver answers. A
worker killed mid-delivery leaves a lease that expires, and the event is delivered again.
"""
from __future__ import annotations

import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import requests
from flask import current_app
from sqlalchemy import func, or_, select, update
from standardwebhooks.webhooks import Webhook

from .. import clock
from ..errors import NotFound
from ..extensions import db
from ..http import new_session
from ..observability import metrics
from ..vault import lease_owner
from .model import DELIVERED, FAILED, PENDING, Event

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3.05
JITTER = 0.2  # each delay is shortened by up to this fraction, so retries of many events spread out


@dataclass(frozen=True)
class WebhookSettings:
    url: str | None
    secrets: tuple[str, ...]
    backoff_base: float
    backoff_max: float
    timeout: float
    max_attempts: int

    @classmethod
    def from_config(cls, config) -> WebhookSettings:
        return cls(config.get("WEBHOOK_URL"), tuple(config.get("WEBHOOK_SECRETS") or ()),
                   config.get("WEBHOOK_BACKOFF_BASE", 5.0), config.get("WEBHOOK_BACKOFF_MAX", 3600.0),
                   config.get("WEBHOOK_TIMEOUT", 10.0), config.get("WEBHOOK_MAX_ATTEMPTS", 34))

    @property
    def lease(self) -> timedelta:
        """Outlives one attempt (the whole exchange is bounded by ``timeout``)."""
        return timedelta(seconds=self.timeout + 2)

    @property
    def http_timeout(self) -> tuple[float, float]:
        """(connect, read) whose sum, the bound ``app.http`` puts on the whole exchange, is ``timeout``."""
        connect = min(CONNECT_TIMEOUT, self.timeout / 2)
        return connect, self.timeout - connect


def settings() -> WebhookSettings:
    return WebhookSettings.from_config(current_app.config)


def sign(secrets: tuple[str, ...], msg_id: str, timestamp: datetime, body: str) -> str:
    """The ``webhook-signature`` header: one ``v1,…`` signature per secret, space-separated."""
    return " ".join(Webhook(secret).sign(msg_id, timestamp, body) for secret in secrets)


def signed_headers(secrets: tuple[str, ...], msg_id: str, body: str, now: datetime | None = None) -> dict[str, str]:
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    return {"Content-Type": "application/json", "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": sign(secrets, msg_id, now, body)}


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None when absent or malformed."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(min(int(value[:12]), 10**9))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def backoff(cfg: WebhookSettings, attempts: int, retry_after: float | None) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones."""
    delay = min(cfg.backoff_base * 2 ** min(attempts - 1, 40), cfg.backoff_max)
    delay *= 1 - JITTER * random.random()
    if retry_after is not None:
        delay = max(delay, min(retry_after, cfg.backoff_max))
    return delay


def _claim(owner: str, cfg: WebhookSettings, limit: int) -> list[int]:
    now = clock.now()
    free = or_(Event.lease_owner.is_(None), Event.lease_expires_at < now)
    ids = db.session.scalars(
        select(Event.id).where(Event.delivery_status == PENDING, Event.next_attempt_at <= now).where(free)
        .order_by(Event.next_attempt_at, Event.id).limit(limit).with_for_update(skip_locked=True)
    ).all()
    if not ids:
        db.session.commit()
        return []
    # The conditions again: without SKIP LOCKED (SQLite) another copy may have claimed some since.
    db.session.execute(
        update(Event).where(Event.id.in_(ids), Event.delivery_status == PENDING).where(free)
        .values(lease_owner=owner, lease_expires_at=now + cfg.lease).execution_options(synchronize_session=False)
    )
    db.session.commit()
    return list(db.session.scalars(select(Event.id).where(Event.id.in_(ids), Event.lease_owner == owner)
                                   .order_by(Event.id)))


def _renew(event_id: int, owner: str, cfg: WebhookSettings) -> Event | None:
    """Our lease, renewed before an attempt (a batch's later events waited); None if it was lost."""
    result = db.session.execute(
        update(Event).where(Event.id == event_id, Event.lease_owner == owner, Event.delivery_status == PENDING)
        .values(lease_expires_at=clock.now() + cfg.lease).execution_options(synchronize_session=False)
    )
    db.session.commit()
    if result.rowcount != 1:
        return None
    db.session.expire_all()
    return db.session.get(Event, event_id)


def _send(cfg: WebhookSettings, event: Event) -> tuple[str | None, float | None]:
    """One attempt: (None, None) when the receiver took it, else (error code, Retry-After seconds)."""
    headers = signed_headers(cfg.secrets, event.public_id, event.body)
    try:
        response = new_session().post(cfg.url, data=event.body.encode(), headers=headers,
                                      timeout=cfg.http_timeout, allow_redirects=False)
    except requests.Timeout:
        return "timeout", None
    except requests.RequestException:
        return "connection_error", None
    if 200 <= response.status_code < 300:
        return None, None
    return f"http_{response.status_code}", retry_after_seconds(response.headers.get("Retry-After"))


def _record(event_id: int, owner: str, cfg: WebhookSettings, error: str | None, retry_after: float | None) -> str:
    now = clock.now()
    event = db.session.get(Event, event_id)
    outcome = "lost"
    if event is not None and event.lease_owner == owner:
        event.attempts += 1
        event.lease_owner = event.lease_expires_at = None
        event.last_error = error
        if error is None:
            event.delivery_status, event.delivered_at, outcome = DELIVERED, now, DELIVERED
        elif event.attempts >= cfg.max_attempts:
            event.delivery_status, outcome = FAILED, FAILED
            log.warning("webhook %s failed after %d attempts (%s)", event.public_id, event.attempts, error)
        else:
            event.next_attempt_at = now + timedelta(seconds=backoff(cfg, event.attempts, retry_after))
            outcome = "retrying"
    db.session.commit()
    metrics.record_webhook_delivery(outcome)
    return outcome


def backlog(session) -> int:
    """Events waiting for delivery (the metrics' ``connector_webhook_backlog``; the delivery index)."""
    return session.scalar(select(func.count()).select_from(Event).where(Event.delivery_status == PENDING)) or 0


def init_metrics(app) -> None:
    """With webhooks configured, the scrape reports the backlog (and not otherwise: the process's
    last configuration decides, as for every other setting)."""
    metrics.register_webhook_backlog(backlog if app.config.get("WEBHOOK_URL") else None)


def deliver_due(limit: int = 500, stop=None) -> Counter:
    """Deliver due events once each (at most ``limit``); counts by outcome. Needs an app context.

    ``stop`` (a ``threading.Event``): set to end after the current attempt."""
    cfg = settings()
    counts: Counter = Counter()
    if not cfg.url:
        return counts
    owner = lease_owner()
    while sum(counts.values()) < limit and not (stop and stop.is_set()):
        ids = _claim(owner, cfg, min(8, limit - sum(counts.values())))
        if not ids:
            break
        for event_id in ids:
            if stop and stop.is_set():
                _release(event_id, owner)
                continue
            event = _renew(event_id, owner, cfg)
            if event is None:
                counts["lost"] += 1
                continue
            started = time.monotonic()
            error, retry_after = _send(cfg, event)
            if error:
                log.info("webhook %s attempt %d: %s after %.1fs", event.public_id, event.attempts + 1, error,
                         time.monotonic() - started)
            counts[_record(event_id, owner, cfg, error, retry_after)] += 1
    return counts


def _release(event_id: int, owner: str) -> None:
    db.session.execute(update(Event).where(Event.id == event_id, Event.lease_owner == owner)
                       .values(lease_owner=None, lease_expires_at=None).execution_options(synchronize_session=False))
    db.session.commit()


def redeliver(public_id: str) -> Event:
    """Queue an event for delivery again (a failed one, or any to replay); the caller commits.

    For the CLI (``connector redeliver-event``) and the admin console. ``NotFound`` if unknown."""
    event = db.session.scalar(select(Event).where(Event.public_id == public_id))
    if event is None:
        raise NotFound("no event with this id")
    event.delivery_status = PENDING
    event.attempts = 0
    event.next_attempt_at = clock.now()
    event.last_error = None
    event.lease_owner = event.lease_expires_at = None
    return event
