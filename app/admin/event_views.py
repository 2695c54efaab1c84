"""Admin pages for the events outbox: recent events by type and delivery status, and re-delivery.

A failed event (its webhook attempts ran out) or one stored while webhooks were off can be queued
again; the worker sends it with the same ``webhook-id``. Event bodies hold no token material.
"""
from __future__ import annotations

from flask import Response, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from ..errors import NotFound
from ..events.model import DELIVERED, FAILED, PENDING, SKIPPED, Event
from ..events.outbox import EVENT_TYPES
from ..events.webhooks import redeliver
from ..extensions import db
from ..models import record_audit
from .blueprint import bp
from .views import Filters

PAGE_SIZE = 50
DELIVERY_STATUSES = (PENDING, DELIVERED, FAILED, SKIPPED)
REDELIVERABLE = (FAILED, SKIPPED)
MAX_PUBLIC_ID = 40


@bp.get("/events")
def events() -> tuple[str, int]:
    filters = Filters()
    event_type = filters.choice("type", EVENT_TYPES, "an event type")
    status = filters.choice("status", DELIVERY_STATUSES, "a delivery status")
    before = filters.text("before")
    if before is not None and not (before.isascii() and before.isdigit() and len(before) <= 18):
        filters.errors["before"] = "not a page of this console"
    rows: list[Event] = []
    if not filters.errors:
        statement = select(Event).order_by(Event.id.desc()).limit(PAGE_SIZE + 1)
        if event_type:
            statement = statement.where(Event.type == event_type)
        if status:
            statement = statement.where(Event.delivery_status == status)
        if before:
            statement = statement.where(Event.id < int(before))
        rows = list(db.session.scalars(statement))
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return render_template("admin/events.html", rows=rows, types=EVENT_TYPES, statuses=DELIVERY_STATUSES,
                           event_type=event_type, status=status, errors=filters.errors, args=request.args,
                           next_before=rows[-1].id if more else None, first_page=before is None,
                           redeliverable=REDELIVERABLE), 400 if filters.errors else 200


@bp.post("/events/<public_id>/redeliver")
def redeliver_event(public_id: str) -> Response:
    if len(public_id) > MAX_PUBLIC_ID:
        raise NotFound("no event with this id")
    event = redeliver(public_id)  # NotFound if unknown
    record_audit("event_redeliver", "queued", actor_type="admin", actor_id=current_user.sub,
                 user_id=event.user_id, provider=event.provider, event=event.public_id, type=event.type)
    db.session.commit()
    flash(f"Event {event.public_id} is queued for delivery again.")
    return redirect(url_for("admin.events", type=request.args.get("type") or None,
                            status=request.args.get("status") or None))


def last_event(connection_id: str) -> Event | None:
    """The newest event of a connection (for its page)."""
    return db.session.scalar(select(Event).where(Event.connection_id == connection_id)
                             .order_by(Event.sequence.desc()).limit(1))
