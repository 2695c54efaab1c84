"""``GET /api/events``: the event feed, for receivers that cannot take webhooks, and for replay.

Events come in feed order (``publish_to_feed``: the order in which they became visible once
committed), after an opaque cursor; the ids are the webhooks' ``webhook-id``.
"""
from __future__ import annotations

import base64
import binascii
import json
import re

from flask import Blueprint, request
from sqlalchemy import select

from ..api.access import machine_access
from ..api.auth import require_machine
from ..errors import InvalidRequest
from ..extensions import db
from .model import Event
from .outbox import publish_to_feed

bp = Blueprint("events_api", __name__, url_prefix="/api")

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
_LIMIT_RE = re.compile(r"[0-9]{1,5}")
_CURSOR_RE = re.compile(r"[A-Za-z0-9_-]{1,40}")
_CURSOR_PREFIX = "feed:"


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{position}".encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    problem = InvalidRequest("after must be a cursor this feed returned (next_cursor)")
    if not _CURSOR_RE.fullmatch(cursor):
        raise problem
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise problem from None
    number = text.removeprefix(_CURSOR_PREFIX)
    if not text.startswith(_CURSOR_PREFIX) or not re.fullmatch(r"[0-9]{1,12}", number):
        raise problem
    return int(number)


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not _LIMIT_RE.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def event_json(event: Event) -> dict:
    """The feed's view of an event: its id and the webhook's payload (type, timestamp, data)."""
    return {"id": event.public_id, **json.loads(event.body)}


@bp.get("/events")
@machine_access("read:events")
def events() -> dict:
    require_machine("read:events")
    after = decode_cursor(request.args.get("after"))
    limit = _limit(request.args.get("limit"))
    publish_to_feed()
    db.session.commit()
    rows = db.session.scalars(
        select(Event).where(Event.feed_position > after).order_by(Event.feed_position).limit(limit)
    ).all()
    last = rows[-1].feed_position if rows else after
    return {"events": [event_json(row) for row in rows], "next_cursor": encode_cursor(last),
            "has_more": len(rows) == limit}
