"""Read-side queries for the admin console: keyset-paginated connections and audit events.

Keyset (not OFFSET) pagination keeps every page as fast as the first at a million rows:
a page is "the next ``limit`` rows after this (created_at, id)", which an index answers
directly. Cursors are opaque to the browser and checked on the way back in.

The user filter is a case-insensitive prefix of the user id ("alice" finds "Alice|1" and
"alice@example"), never a ``LIKE '%x%'`` scan: its results are listed by user id, so a page is
"the next ``limit`` rows after this (lower(user_id), id)", one range of the expression index on
``(lower(user_id), id)`` (migration 0006) read in order, as cheap for a prefix that matches a
hundred thousand users as for one. ASCII letters match in any case; other characters match
exactly, the same on both databases (SQLite's lower() and PostgreSQL's under collation "C" fold
ASCII only). User ids are ASCII in practice: ``auth0|…``, ``google-oauth2|…``.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, select, tuple_

from ..errors import InvalidRequest
from ..extensions import db
from ..models import AuditEvent, Connection, search_key

MAX_LIMIT = 200
# ASCII only: str.isdigit()/isalnum() also accept Unicode digits ("²") that int() refuses.
AUDIT_CURSOR_RE = re.compile(r"[0-9]{1,18}")
ROW_ID_RE = re.compile(r"[0-9A-Za-z]{1,32}")
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# The highest code point: "abc" + TOP is above every string that starts with "abc" (but "abc" + TOP itself).
TOP = "\U0010ffff"
USER_CURSOR_MARK = "u:"


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
    """Newest first, or by user id when searching by user; ``after`` is the previous page's ``next_cursor``."""
    limit = _limit(limit)
    key = search_key(Connection.user_id)
    # The search key comes back with each row: the next cursor holds the database's lower(), not Python's.
    stmt = select(Connection, key) if query.user_id else select(Connection)
    if query.user_id:
        stmt = stmt.where(user_id_prefix(query.user_id))
    if query.provider:
        stmt = stmt.where(Connection.provider == query.provider)
    if query.status:
        stmt = stmt.where(Connection.status == query.status)
    if query.user_id:
        if after:
            stmt = stmt.where(tuple_(key, Connection.id) > tuple_(*_decode_user_cursor(after)))
        stmt = stmt.order_by(key, Connection.id)
    else:
        if after:
            created_at, row_id = _decode_connection_cursor(after)
            # A row-value comparison: the planner walks the (created_at, id) index straight to the
            # cursor; the equivalent OR of two conditions made PostgreSQL scan up to it.
            stmt = stmt.where(tuple_(Connection.created_at, Connection.id) < tuple_(created_at, row_id))
        stmt = stmt.order_by(Connection.created_at.desc(), Connection.id.desc())
    stmt = stmt.limit(limit + 1)
    if not query.user_id:
        rows = list(db.session.scalars(stmt))
        more, rows = len(rows) > limit, rows[:limit]
        return ConnectionPage(rows, _encode(f"{rows[-1].created_at.isoformat()}|{rows[-1].id}") if more else None)
    pairs = db.session.execute(stmt).all()
    more, pairs = len(pairs) > limit, pairs[:limit]
    cursor = _encode(f"{USER_CURSOR_MARK}{pairs[-1][0].id}|{pairs[-1][1]}") if more else None
    return ConnectionPage([row for row, _ in pairs], cursor)


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
    """The user id starts with ``prefix``, ASCII case-insensitively: ``prefix <= key < prefix + U+10FFFF``.

    ``key`` is ``search_key(user_id)``: ``lower(user_id)`` compared by code point (``COLLATE "C"`` on
    PostgreSQL), so the range holds exactly the ids that start with the prefix, and the index answers it.
    No LIKE: nothing in the prefix is a wildcard.
    """
    folded = prefix.translate(ASCII_LOWER)
    key = search_key(Connection.user_id)
    return (key >= folded) & (key < folded + TOP)


def _limit(limit: int) -> int:
    return max(1, min(int(limit), MAX_LIMIT))


def _encode(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
    if len(cursor) > 500:
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


def _decode_user_cursor(cursor: str) -> tuple[str, str]:
    raw = _decode(cursor)
    row_id, sep, key = raw.removeprefix(USER_CURSOR_MARK).partition("|")
    if not raw.startswith(USER_CURSOR_MARK) or not sep or not ROW_ID_RE.fullmatch(row_id) or len(key) > 255:
        raise InvalidRequest("invalid page cursor: not one this console issued")
    return key, row_id


def _decode_audit_cursor(cursor: str) -> int:
    raw = _decode(cursor)
    if not AUDIT_CURSOR_RE.fullmatch(raw):
        raise InvalidRequest("invalid page cursor: not one this console issued")
    return int(raw)
