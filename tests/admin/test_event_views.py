"""The console's events page: recent events by type and delivery status, and re-delivery."""
from __future__ import annotations

from sqlalchemy import select

from app.events.model import FAILED, PENDING, SKIPPED, Event
from app.extensions import db
from app.models import AuditEvent
from tests.admin.conftest import ADMIN_SUB, csrf_token
from tests.conftest import make_connection


def _revoked_connection(app, client, user: str = "auth0|alice") -> str:
    """A connection revoked through the console: its connection.revoked event is in the outbox."""
    connection_id = make_connection(app, user, "spotify")
    done = client.post(f"/admin/connections/{connection_id}/revoke", data={"csrf_token": csrf_token(client)})
    assert done.status_code == 302
    return connection_id


def _event(app, connection_id: str) -> Event:
    with app.app_context():
        return db.session.scalars(select(Event).where(Event.connection_id == connection_id)).one()


def test_events_page_lists_events_and_filters_by_type_and_delivery(app, client, signed_in):
    connection_id = _revoked_connection(app, client)
    event = _event(app, connection_id)
    assert (event.type, event.delivery_status) == ("connection.revoked", SKIPPED)  # no WEBHOOK_URL here
    page = client.get("/admin/events")
    assert page.status_code == 200 and event.public_id in page.text and "connection.revoked" in page.text
    assert client.get("/admin/events", query_string={"type": "connection.revoked"}).text.count("<tr>") == 2
    none = client.get("/admin/events", query_string={"status": "failed"})
    assert none.status_code == 200 and 'id="no-events"' in none.text


def test_bad_event_filters_are_shown_inside_the_page(client, signed_in):
    for args in ({"type": "connection.exploded"}, {"status": "lost"}, {"before": "٣"}, {"before": "x" * 300}):
        page = client.get("/admin/events", query_string=args)
        assert page.status_code == 400 and 'id="filter-error"' in page.text and "<h1>Events</h1>" in page.text


def test_redelivery_needs_csrf_then_queues_the_event_and_audits(app, client, signed_in):
    connection_id = _revoked_connection(app, client)
    event = _event(app, connection_id)
    with app.app_context():
        row = db.session.get(Event, event.id)
        row.delivery_status, row.attempts, row.last_error = FAILED, 34, "http_500"
        db.session.commit()
    assert f'id="redeliver-{event.public_id}"' in client.get("/admin/events").text
    forged = client.post(f"/admin/events/{event.public_id}/redeliver")
    assert forged.status_code == 400
    assert _event(app, connection_id).delivery_status == FAILED
    done = client.post(f"/admin/events/{event.public_id}/redeliver", data={"csrf_token": csrf_token(client)},
                       follow_redirects=True)
    assert done.status_code == 200 and "queued for delivery again" in done.text
    again = _event(app, connection_id)
    assert (again.delivery_status, again.attempts, again.last_error, again.public_id) == \
        (PENDING, 0, None, event.public_id)  # the same webhook-id
    with app.app_context():
        audit = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "event_redeliver")).one()
        assert (audit.actor_type, audit.actor_id, audit.detail["event"]) == ("admin", ADMIN_SUB, event.public_id)


def test_redelivering_an_unknown_event_is_a_404(client, signed_in):
    for public_id in ("evt_nope", "e" * 200):
        response = client.post(f"/admin/events/{public_id}/redeliver", data={"csrf_token": csrf_token(client)})
        assert response.status_code == 404


def test_connection_page_shows_its_last_event(app, client, signed_in):
    connection_id = _revoked_connection(app, client)
    page = client.get(f"/admin/connections/{connection_id}")
    assert page.status_code == 200 and "connection.revoked" in page.text.split('id="last-event"')[1][:200]


def test_events_page_needs_a_signed_in_administrator(app, client):
    assert client.get("/admin/events").status_code == 302
    assert client.post("/admin/events/evt_x/redeliver").status_code in (302, 400)
