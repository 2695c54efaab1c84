"""Keyset pagination: every row once, in order, across pages, even with equal timestamps."""
from __future__ import annotations

from datetime import datetime

import pytest

from app.admin.queries import AuditQuery, ConnectionQuery, search_audit, search_connections
from app.errors import InvalidRequest
from app.extensions import db
from app.models import Connection, record_audit


def _rows(app, count: int) -> list[str]:
    same_time = datetime(2026, 1, 1, 12, 0, 0)
    with app.app_context():
        rows = [Connection(user_id=f"auth0|u{i:03d}", provider="spotify" if i % 2 else "github",
                           status="active", created_at=same_time if i < 4 else datetime(2026, 1, 2, 0, i))
                for i in range(count)]
        db.session.add_all(rows)
        db.session.commit()
        return [r.id for r in rows]


def _walk(query: ConnectionQuery, limit: int) -> list[str]:
    seen, cursor = [], None
    for _ in range(50):
        page = search_connections(query, after=cursor, limit=limit)
        seen += [row.id for row in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return seen
    raise AssertionError("pagination did not end")


def test_pages_cover_every_row_once_in_newest_first_order(app):
    ids = _rows(app, 11)
    with app.app_context():
        walked = _walk(ConnectionQuery(), limit=3)
        assert sorted(walked) == sorted(ids) and len(walked) == len(set(walked))
        stamps = [(db.session.get(Connection, i).created_at, i) for i in walked]
        assert stamps == sorted(stamps, reverse=True)
        spotify = _walk(ConnectionQuery(provider="spotify"), limit=2)
        assert len(spotify) == 5


def test_last_page_has_no_cursor(app):
    _rows(app, 3)
    with app.app_context():
        assert search_connections(ConnectionQuery(), limit=3).next_cursor is None


@pytest.mark.parametrize("cursor", ["@@@", "bm90LWEtY3Vyc29y", "MjAyNi0wMS0wMXxhYmMn", "x" * 300])
def test_forged_cursors_are_rejected(app, cursor):
    with app.app_context(), pytest.raises(InvalidRequest, match="invalid page cursor"):
        search_connections(ConnectionQuery(), after=cursor)


@pytest.mark.parametrize("cursor", [
    "wrI",  # "²": str.isdigit() is true, int() refuses it (was a 500)
    "2aHZog",  # Arabic-Indic digits: Unicode, not ASCII
    "MTExMTExMTExMTExMTExMTExMQ",  # 19 digits
    "@@@", "x" * 300,
])
def test_forged_audit_cursors_are_rejected(app, cursor):
    with app.app_context(), pytest.raises(InvalidRequest, match="invalid page cursor"):
        search_audit(AuditQuery(), before=cursor)


def test_connection_cursor_with_non_ascii_row_id_is_rejected(app):
    with app.app_context(), pytest.raises(InvalidRequest, match="invalid page cursor"):
        search_connections(ConnectionQuery(), after="MjAyNi0wMS0wMVQwMDowMDowMHxhYmPDqQ")


def test_audit_pages_go_back_in_time(app):
    with app.app_context():
        for i in range(5):
            record_audit("refresh_failed", "failed", actor_type="system", user_id=f"u{i}")
        db.session.commit()
        first = search_audit(AuditQuery(action="refresh_failed"), limit=3)
        second = search_audit(AuditQuery(action="refresh_failed"), before=first.next_cursor, limit=3)
        users = [e.user_id for e in first.items + second.items]
        assert users == ["u4", "u3", "u2", "u1", "u0"] and second.next_cursor is None
