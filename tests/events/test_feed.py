"""GET /api/events: commit order, an opaque cursor, the webhooks' ids, machine tokens with read:events."""
import pytest
from sqlalchemy import create_engine, text

from app.events import outbox
from app.events.webhooks import deliver_due
from app.extensions import db
from app.models import Connection
from tests.api.conftest import OpenApiChecker
from tests.conftest import make_connection


@pytest.fixture(scope="module")
def openapi():
    return OpenApiChecker()


def _emit(app, connection_id, count=1):
    with app.app_context():
        row = db.session.get(Connection, connection_id)
        ids = [outbox.emit_event(row, outbox.REVOKED_EVENT, actor_type="admin").public_id for _ in range(count)]
        db.session.commit()
        return ids


def _feed(client, auth0, query="", scope="read:events", expect=200, openapi=None):
    response = client.get("/api/events" + query, headers={"Authorization": f"Bearer {auth0.m2m_token(scope)}"})
    assert response.status_code == expect, response.get_data(as_text=True)
    if openapi:
        openapi.check(response, "/api/events", "get")
    return response.json


def test_pages_through_every_event_in_order_with_the_webhook_ids(app, client, auth0, receiver, openapi):
    first = make_connection(app, "auth0|alice", "spotify")
    second = make_connection(app, "auth0|bob", "spotify")
    ids = _emit(app, first, 2) + _emit(app, second, 1) + _emit(app, first, 2)
    seen, cursor = [], ""
    for _ in range(5):
        page = _feed(client, auth0, f"?limit=2{cursor}", openapi=openapi)
        seen += page["events"]
        cursor = "&after=" + page["next_cursor"]
        if not page["events"]:
            break
    assert [event["id"] for event in seen] == ids
    assert [e["data"]["sequence"] for e in seen if e["data"]["connection_id"] == first] == [1, 2, 3, 4]
    assert {"id", "type", "timestamp", "data"} == set(seen[0])
    with app.app_context():
        deliver_due()
    assert receiver.ids() == ids  # the same ids as the webhooks
    # A later event appears after the last cursor, and an empty page keeps the cursor.
    empty = _feed(client, auth0, cursor.replace("&", "?"))
    assert empty["events"] == [] and "&after=" + empty["next_cursor"] == cursor
    [late] = _emit(app, second)
    assert [e["id"] for e in _feed(client, auth0, cursor.replace("&", "?"))["events"]] == [late]


@pytest.mark.parametrize("query", ["?after=nope!", "?after=" + "A" * 41, "?after=Zm9vOjE", "?limit=0", "?limit=1001",
                                   "?limit=ten", "?after=ZmVlZDp4"])
def test_bad_cursor_or_limit_is_400(client, auth0, query, openapi):
    body = _feed(client, auth0, query, expect=400, openapi=openapi)
    assert body["status"] == 400


def test_needs_read_events_and_a_machine_token(client, auth0, openapi):
    _feed(client, auth0, scope="read:connections", expect=403, openapi=openapi)
    response = client.get("/api/events", headers={"Authorization": f"Bearer {auth0.token()}"})
    assert response.status_code == 403
    assert client.get("/api/events").status_code == 401


def test_an_event_committed_late_is_not_skipped(app, client, auth0, database_url):
    """Ids are taken at insert, commits happen later: a reader's cursor must not pass an event
    whose transaction was still open. (SQLite has one writer at a time, so there ids are in
    commit order anyway; PostgreSQL runs the two transactions at once.)"""
    if not database_url.startswith("postgresql"):
        pytest.skip("needs two concurrent writers")
    slow = make_connection(app, "auth0|slow", "spotify")
    fast = make_connection(app, "auth0|fast", "spotify")
    engine = create_engine(database_url)
    try:
        with engine.connect() as other:
            # An event inserted (so its id is taken) but not committed yet, in another transaction.
            other.execute(text(
                "INSERT INTO events (public_id, type, connection_id, user_id, provider, sequence, body, created_at,"
                " delivery_status, attempts) VALUES ('evt_slow', 'connection.revoked', :c, 'auth0|slow', 'spotify',"
                " 1, '{\"type\": \"connection.revoked\", \"timestamp\": \"x\", \"data\": {}}', now(), 'skipped', 0)"),
                {"c": slow})
            [quick] = _emit(app, fast)
            page = _feed(client, auth0)
            assert [e["id"] for e in page["events"]] == [quick]
            other.commit()
        after = _feed(client, auth0, "?after=" + page["next_cursor"])
        assert [e["id"] for e in after["events"]] == ["evt_slow"]
    finally:
        engine.dispose()


def test_concurrent_readers_publish_each_event_once(app, client, auth0):
    import threading

    connection_id = make_connection(app, "auth0|alice", "spotify")
    ids = _emit(app, connection_id, 30)
    go, errors = threading.Barrier(4), []

    def publish() -> None:
        try:
            go.wait(10)
            with app.app_context():
                outbox.publish_to_feed(batch=7)
                db.session.commit()
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=publish) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with app.app_context():
        positions = sorted(p for p in db.session.scalars(text("SELECT feed_position FROM events")) if p)
    assert positions == list(range(1, 29))  # 4 × 7, each given once, no gaps
    assert [e["id"] for e in _feed(client, auth0, "?limit=1000")["events"]] == ids
