"""Read-side queries for the admin console: keyset-paginated connections and audit events.

Keyset (not OFFSET) pagination keeps every page as fast as the first at a million rows:
a page is "the next ``limit`` rows after this (created_at, id)", which an index answers
directly. Cursors are opaque to the browser and checked on the way back in.

The user filter is a case-insensitive prefix of the user id ("alice" finds "Alice|1" and
"alice@example"), answered from the expression index on ``lower(user_id)`` (migration 0006),
never by a ``LIKE '%x%'`` scan. ASCII letters match in any case on both databases (user ids are
ASCII in practice: ``auth0|…``, ``google-oauth2|…``); other letters as the database's ``lower()`` folds them.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select, tuple_

from ..errors import InvalidRequest
from ..extensions import db
from ..models import AuditEvent, Connection

MAX_LIMIT = 200
# ASCII only: str.isdigit()/isalnum() also accept Unicode digits ("²") that int() refuses.
AUDIT_CURSOR_RE = re.compile(r"[0-9]{1,18}")
ROW_ID_RE = re.compile(r"[0-9A-Za-z]{1,32}")
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
LIKE_ESCAPE = "\\"
# Above every character a user id can hold: the exclusive upper bound of a prefix range.
TOP = "\U0010ffff"


@dataclass(frozen=True)
class ConnectionQuery:
    user_id: str | None = None  # a prefix of the user id, any case
    provider: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class ConnectionPage:
    items: list[Connection]
    next_cursor: str | None


@dataclass(frozen=True)
class AuditQuery:
    user_id: str | None = None
    provider: str | None = None
    action: str | None = None
    actor_id: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive (the console passes the day after its inclusive "To" day)


@dataclass(frozen=True)
class AuditPage:
    items: list[AuditEvent]
    next_cursor: str | None


def search_connections(query: ConnectionQuery, *, after: str | None = None, limit: int = 50) -> ConnectionPage:
    """Newest first; ``after`` is the ``next_cursor`` of the previous page."""
    limit = _limit(limit)
    stmt = select(Connection)
    if query.user_id:
        stmt = stmt.where(user_id_prefix(query.user_id))
    if query.provider:
        stmt = stmt.where(Connection.provider == query.provider)
    if query.status:
        stmt = stmt.where(Connection.status == query.status)
    if after:
        created_at, row_id = _decode_connection_cursor(after)
        # A row-value comparison: the planner walks the (created_at, id) index straight to the
        # cursor; the equivalent OR of two conditions made PostgreSQL scan up to it.
        stmt = stmt.where(tuple_(Connection.created_at, Connection.id) < tuple_(created_at, row_id))
    stmt = stmt.order_by(Connection.created_at.desc(), Connection.id.desc()).limit(limit + 1)
    rows = list(db.session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = _encode(f"{rows[-1].created_at.isoformat()}|{rows[-1].id}") if more else None
    return ConnectionPage(rows, cursor)


def search_audit(query: AuditQuery, *, before: str | None = None, limit: int = 50) -> AuditPage:
    """Newest first, by id (ids grow with time); ``before`` is the previous page's ``next_cursor``."""
    limit = _limit(limit)
    stmt = select(AuditEvent)
    for column, value in ((AuditEvent.user_id, query.user_id), (AuditEvent.provider, query.provider),
                          (AuditEvent.action, query.action), (AuditEvent.actor_id, query.actor_id)):
        if value:
            stmt = stmt.where(column == value)
    if query.since:
        stmt = stmt.where(AuditEvent.at >= query.since)
    if query.until:
        stmt = stmt.where(AuditEvent.at < query.until)
    if before:
        stmt = stmt.where(AuditEvent.id < _decode_audit_cursor(before))
    rows = list(db.session.scalars(stmt.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(rows, _encode(str(rows[-1].id)) if more else None)


def connection_audit(connection: Connection, limit: int = 100) -> list[AuditEvent]:
    """The audit trail of one connection (its user and provider), newest first."""
    stmt = (select(AuditEvent)
            .where(AuditEvent.user_id == connection.user_id, AuditEvent.provider == connection.provider)
            .order_by(AuditEvent.id.desc()).limit(limit))
    return list(db.session.scalars(stmt))


def user_id_prefix(prefix: str) -> ColumnElement[bool]:
    """``lower(user_id)`` starts with ``prefix`` (ASCII case-insensitive), in a form the index answers.

    PostgreSQL: ``LIKE 'abc%'`` (wildcards escaped) on the ``text_pattern_ops`` index, which works in
    any collation. SQLite: the range ``'abc' <= lower(user_id) < 'abc' || U+10FFFF``, which its
    expression index answers (SQLite's LIKE is never an index range on an expression); SQLite compares
    text by code point, so the range holds exactly the strings that start with the prefix.
    """
    folded = prefix.translate(ASCII_LOWER)
    lowered = func.lower(Connection.user_id)
    if db.session.get_bind().dialect.name == "postgresql":
        pattern = folded.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%")
        return lowered.like(pattern.replace("_", LIKE_ESCAPE + "_") + "%", escape=LIKE_ESCAPE)
    return (lowered >= folded) & (lowered < folded + TOP)


def _limit(limit: int) -> int:
    return max(1, min(int(limit), MAX_LIMIT))


def _encode(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
    if len(cursor) > 200:
        raise InvalidRequest("invalid page cursor: too long")
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequest("invalid page cursor: not one this console issued") from None


def _decode_connection_cursor(cursor: str) -> tuple[datetime, str]:
    stamp, sep, row_id = _decode(cursor).partition("|")
    try:
        if not sep or not ROW_ID_RE.fullmatch(row_id):
            raise ValueError
        return datetime.fromisoformat(stamp), row_id
    except ValueError:
        raise InvalidRequest("invalid page cursor: not one this console issued") from None


def _decode_audit_cursor(cursor: str) -> int:
    raw = _decode(cursor)
    if not AUDIT_CURSOR_RE.fullmatch(raw):
        raise InvalidRequest("invalid page cursor: not one this console issued")
    return int(raw)
