"""What every audit event also does: carry the request id, move a metric, write one log line."""
from __future__ import annotations

import logging

from . import metrics
from .logs import current_request_id

log = logging.getLogger("app.audit")

# Outcomes that an operator should see at warning level; everything else is info.
WARNING_OUTCOMES = frozenset({"error", "failed", "needs_reauth", "unavailable", "rejected", "pending"})


def on_audit(event) -> None:
    """Called by ``record_audit`` with the new (not yet committed) ``AuditEvent``."""
    event.request_id = current_request_id()
    metrics.count_audit(event.action, event.outcome, event.provider)
    level = logging.WARNING if event.outcome in WARNING_OUTCOMES else logging.INFO
    detail = event.detail or {}
    log.log(level, "audit %s %s provider=%s%s", event.action, event.outcome, event.provider or "-",
            "".join(f" {key}={value}" for key, value in sorted(detail.items())),
            extra={"request_id": event.request_id, "user_id": event.user_id, "provider": event.provider,
                   "action": event.action, "outcome": event.outcome, "actor_type": event.actor_type})
