"""Keyset pagination: every row once, in order, across pages, even with equal timestamps."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select, text

from app.admin.queries import AuditQuery, ConnectionQuery, search_audit, search_connections, user_id_prefix
from app.errors import InvalidRequest
from app.extensions import db
from app.models import Connection, record_audit, search_key


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


USER_IDS = ["auth0|Alice", "auth0|alice2", "AUTH0|ALICEX", "auth0|bob", "google-oauth2|alice", "alice@example",
            "Alice_b", "aliceXb", "100%ok", "100x", "back\\slash", "backXslash", "é|x"]


def _search_users(app, prefix: str) -> list[str]:
    with app.app_context():
        return sorted(c.user_id for c in _walk(ConnectionQuery(user_id=prefix), limit=2)
                      for c in [db.session.get(Connection, c)])


@pytest.fixture
def users(app):
    with app.app_context():
        db.session.add_all(Connection(user_id=u, provider="github", status="active") for u in USER_IDS)
        db.session.commit()


@pytest.mark.parametrize(("prefix", "expected"), [
    ("auth0|alice", ["AUTH0|ALICEX", "auth0|Alice", "auth0|alice2"]),  # any case, either side
    ("AUTH0|Alice", ["AUTH0|ALICEX", "auth0|Alice", "auth0|alice2"]),
    ("auth0|alice2", ["auth0|alice2"]),
    ("alice", ["Alice_b", "alice@example", "aliceXb"]),  # a prefix, not a substring: not "auth0|alice"
    ("alice_", ["Alice_b"]),  # "_" is a character, not LIKE's wildcard
    ("100%", ["100%ok"]),  # "%" too
    ("back\\", ["back\\slash"]),  # and the escape character itself
    ("é", ["é|x"]),
    ("É", []),  # ASCII letters fold, others match exactly: the same on both databases
    ("nobody", []),
    ("lice", []),
])
def test_user_search_is_a_case_insensitive_prefix(app, users, prefix, expected):
    assert _search_users(app, prefix) == expected


def test_user_search_combines_with_the_other_filters_and_paginates(app, users):
    with app.app_context():
        db.session.add_all(Connection(user_id=f"auth0|alice{i}", provider="spotify", status="needs_reauth")
                           for i in range(5))
        db.session.commit()
    with app.app_context():
        walked = _walk(ConnectionQuery(user_id="AUTH0|ALICE", provider="spotify", status="needs_reauth"), limit=2)
        assert sorted(db.session.get(Connection, i).user_id for i in walked) == [f"auth0|alice{i}" for i in range(5)]


def test_user_search_pages_in_user_id_order_with_its_own_cursor(app, users):
    with app.app_context():
        db.session.add_all(Connection(user_id=f"Auth0|Carol{i:02d}", provider="spotify") for i in range(7))
        db.session.commit()
        seen, cursor = [], None
        for _ in range(10):
            page = search_connections(ConnectionQuery(user_id="auth0|"), after=cursor, limit=3)
            seen += [c.user_id for c in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        expected = sorted((u for u in USER_IDS + [f"Auth0|Carol{i:02d}" for i in range(7)]
                           if u.lower().startswith("auth0|")), key=str.lower)
        assert seen == expected
        # A cursor of the newest-first listing is not one of a user search, and the other way round.
        newest = search_connections(ConnectionQuery(), limit=2).next_cursor
        by_user = search_connections(ConnectionQuery(user_id="auth0|"), limit=2).next_cursor
        with pytest.raises(InvalidRequest, match="invalid page cursor"):
            search_connections(ConnectionQuery(user_id="auth0|"), after=newest)
        with pytest.raises(InvalidRequest, match="invalid page cursor"):
            search_connections(ConnectionQuery(), after=by_user)


def test_user_search_is_one_ordered_range_of_the_user_id_index(app):
    """The plan, not a timing: the prefix is a range of the (lower(user_id), id) index, read in order
    (no sort), so a page costs the same however many users match."""
    with app.app_context():
        db.session.add_all(Connection(user_id=f"auth0|u{i}", provider="github") for i in range(50))
        db.session.commit()
        stmt = select(Connection.id).where(user_id_prefix("AUTH0|U1")).order_by(
            search_key(Connection.user_id), Connection.id).limit(51)
        sql = str(stmt.compile(db.engine, compile_kwargs={"literal_binds": True}))
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text("SET LOCAL enable_seqscan = off"))
            db.session.execute(text("SET LOCAL enable_bitmapscan = off"))
            plan = "\n".join(db.session.scalars(text("EXPLAIN " + sql)))
            assert "Scan using ix_connections_user_id_lower" in plan and "Sort" not in plan, plan
            definition = db.session.scalar(text(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_connections_user_id_lower'"))
            assert 'COLLATE "C"' in definition, definition  # byte order whatever the database's collation
        else:
            plan = "\n".join(row[-1] for row in db.session.execute(text("EXPLAIN QUERY PLAN " + sql)))
            assert "ix_connections_user_id_lower (<expr>>? AND <expr><?)" in plan and "TEMP B-TREE" not in plan, plan
        db.session.rollback()
