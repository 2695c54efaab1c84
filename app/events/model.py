"""The events table: a transactional outbox of connection state changes.

A row is written in the same transaction as the change it reports (``app.events.outbox``), then
delivered by the worker as a signed webhook (``app.events.webhooks``) and served by the event
feed (``app.events.feed``). ``body`` is the exact JSON sent, never token material.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .. import clock
from ..extensions import db

# delivery_status values
PENDING, DELIVERED, FAILED, SKIPPED = "pending", "delivered", "failed", "skipped"


class Event(db.Model):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("public_id", name="uq_events_public_id"),
        # One number per event and connection: a second writer of the same number fails, never duplicates.
        UniqueConstraint("connection_id", "sequence", name="uq_events_connection_sequence"),
        UniqueConstraint("feed_position", name="uq_events_feed_position"),
        Index("ix_events_delivery", "delivery_status", "next_attempt_at"),
        Index("ix_events_type_created", "type", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40))  # "evt_…": the webhook-id and the feed's id
    type: Mapped[str] = mapped_column(String(64))
    connection_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    provider: Mapped[str] = mapped_column(String(64))
    sequence: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=clock.now, index=True)
    # The feed's order: given once the event is committed, in the order events became visible.
    feed_position: Mapped[int | None] = mapped_column(Integer)
    delivery_status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(String(64))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)
