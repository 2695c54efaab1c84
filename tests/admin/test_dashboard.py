"""The dashboard: counts, refresh outcomes and durations as inline SVG, webhook backlog and refresh-token
expiry panels that appear only when the database has what they need."""
from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from app import clock
from app.admin import dashboard
from app.extensions import db
from app.models import Connection, RefreshObservation
from app.refresh_stats import rollup_refresh_stats
from tests.conftest import make_connection


def _observe(app, rows):
    with app.app_context():
        db.session.add_all(RefreshObservation(at=at, provider=p, outcome=o, duration_ms=ms) for at, p, o, ms in rows)
        db.session.commit()


def test_dashboard_is_the_first_page_with_counts_and_refresh_charts(app, signed_in):
    make_connection(app, "auth0|alice", "spotify", access="alice-access-secret", refresh="alice-refresh-secret")
    make_connection(app, "auth0|bob", "spotify")
    make_connection(app, "auth0|alice", "github", refresh=None, expires_in=None)
    now = clock.now()
    _observe(app, [(now - timedelta(days=3), "spotify", "ok", 120)] * 5
             + [(now - timedelta(hours=2), "spotify", "ok", 300),
                (now - timedelta(hours=1), "spotify", "needs_reauth", 80)])
    with app.app_context():
        rollup_refresh_stats(now)
    _observe(app, [(now, "github", "unavailable", 9000)])  # not rolled up yet: still shown

    response = signed_in.get("/admin/")
    page = response.text
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "style=" not in page and "<script" not in page  # nothing the CSP would block
    assert 'href="/admin/">Dashboard</a>' in page
    counts = page[page.index('id="counts"'):page.index("</table>", page.index('id="counts"'))]
    assert re.search(r'provider=spotify&amp;status=active">2</a>', counts) and ">3</td></tr></tfoot>" in counts
    refreshes = page[page.index('id="refreshes"'):page.index("</table>", page.index('id="refreshes"'))]
    assert refreshes.count('<svg class="chart outcomes"') == 2 and refreshes.count('<svg class="chart durations"') == 2
    assert "2 · <span class=\"bad\">1 (50.0 %)</span>" in refreshes  # spotify, 24 h
    assert "7 · <span class=\"bad\">1 (14.3 %)</span>" in refreshes  # spotify, 7 days
    assert 'class="bar needs_reauth"' in refreshes and "needs reauth</title>" in refreshes
    assert 'id="webhooks-off"' in page
    assert "alice-access-secret" not in page and "alice-refresh-secret" not in page

    week = signed_in.get("/admin/", query_string={"window": "7d"}).text
    assert "one bar per 6 hours" in week and '<strong aria-current="page">last 7d</strong>' in week


def test_an_unknown_window_is_a_400_inside_the_page(signed_in):
    response = signed_in.get("/admin/", query_string={"window": "1y"})
    assert response.status_code == 400
    assert 'id="filter-error"' in response.text and "Chart window" in response.text


def test_empty_database_says_so(signed_in):
    page = signed_in.get("/admin/").text
    assert 'id="no-connections"' in page and 'id="no-refreshes"' in page


def test_webhook_panel_counts_the_backlog_and_the_dead_letters(app, signed_in):
    from app.events.model import Event

    app.config["WEBHOOK_URL"] = "https://hooks.example/connector"  # webhooks on: the panel shows
    now = clock.now()
    rows = [("delivered", now)] * 3 + [("pending", now - timedelta(minutes=7)), ("pending", now), ("failed", now),
                                       ("skipped", now)]
    with app.app_context():
        for i, (status, at) in enumerate(rows):
            db.session.add(Event(public_id=f"evt_{i}", type="connection.created", connection_id=f"c{i}",
                                 user_id="auth0|x", provider="spotify", sequence=1, body="{}", created_at=at,
                                 delivery_status=status, attempts=0))
        db.session.commit()
        stats = dashboard.webhook_backlog()
    assert (stats.backlog, stats.failed, stats.by_state) == (2, 1, {"pending": 2, "failed": 1})
    assert stats.oldest_pending == rows[3][1]
    page = signed_in.get("/admin/").text
    assert 'id="webhook-backlog">2<' in page and 'id="webhook-failed" class="bad">1<' in page


def test_expiring_refresh_tokens_soonest_first_active_only(app, signed_in):
    now = clock.now()
    rows = [("a", "active", now + timedelta(days=5)), ("b", "active", now + timedelta(days=1)),
            ("c", "needs_reauth", now), ("d", "active", None), ("e", "active", now + timedelta(days=2))]
    ids = {}
    for user, status, at in rows:
        ids[user] = make_connection(app, f"auth0|{user}", "google")
        with app.app_context():
            row = db.session.get(Connection, ids[user])
            row.status, row.refresh_token_expires_at = status, at
            db.session.commit()
    with app.app_context():
        found = dashboard.expiring_refresh_tokens(limit=2)
    assert [r.id for r in found] == [ids["b"], ids["e"]]
    page = signed_in.get("/admin/").text
    assert 'id="expiring"' in page and page.index("auth0|b") < page.index("auth0|e")


def test_a_stalled_rollup_is_flagged(app, signed_in, monkeypatch):
    now = clock.now()
    _observe(app, [(now - timedelta(minutes=2), "github", "ok", 100)])
    assert 'id="rollup-behind"' not in signed_in.get("/admin/").text  # a fresh observation: all is well
    _observe(app, [(now - timedelta(minutes=30), "github", "ok", 100)])  # (ids grow: oldest by id is the first)
    with app.app_context():
        rollup_refresh_stats(now)
    _observe(app, [(now - timedelta(minutes=30), "github", "ok", 100), (now, "github", "ok", 100)])
    page = signed_in.get("/admin/").text
    assert 'id="rollup-behind"' in page and "4 · <span" in page  # all four counted


def test_counts_come_from_the_workers_count_when_there_is_one(app, signed_in):
    from app.models import ConnectionCount
    from app.refresh_stats import count_connections

    make_connection(app, "auth0|alice", "spotify")
    make_connection(app, "auth0|bob", "github")
    now = clock.now()
    with app.app_context():
        assert count_connections(now - timedelta(minutes=20))
        assert not count_connections(now - timedelta(minutes=19), max_age=timedelta(minutes=5))  # fresh enough
    make_connection(app, "auth0|carol", "spotify")  # after the count: not shown until the next one
    page = signed_in.get("/admin/").text
    assert "Counted by the worker at" in page and 'id="rollup-behind"' in page  # 20 minutes old: flagged
    assert 'provider=spotify&amp;status=active">1</a>' in page
    with app.app_context():
        db.session.execute(Connection.__table__.delete().where(Connection.provider == "github"))
        db.session.commit()
        assert count_connections(now)
        rows = {(c.provider, c.status): c.count for c in db.session.scalars(select(ConnectionCount))}
    assert rows == {("spotify", "active"): 2}  # github's row, gone from the table, is gone from the count
    page = signed_in.get("/admin/").text
    assert 'provider=spotify&amp;status=active">2</a>' in page and 'id="rollup-behind"' not in page
