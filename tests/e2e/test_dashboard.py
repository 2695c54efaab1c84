"""The admin dashboard in Chromium: the inline SVG charts draw (with the console's strict CSP: no
violation reported), the panels show, and the page fits a desktop and a 390 px phone.

The demo app runs in-process on a loopback port, on SQLite, seeded with connections of three
providers, a week of refresh observations (most rolled up, some pending) and webhook events.
Screenshots go to test-artifacts/dashboard/ (gitignored) for a person to look at.
"""
from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from app import clock
from app.events.model import Event
from app.extensions import db
from app.models import Connection, RefreshObservation
from app.refresh_stats import rollup_refresh_stats

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
PROVIDERS = {"sandbox": (0.97, 180), "github": (0.999, 90), "google": (0.85, 450)}  # ok share, typical ms


def _seed() -> None:
    rng = random.Random(16)
    statuses = ["active"] * 8 + ["needs_reauth", "revoked"]
    now = clock.now()
    db.session.add_all(Connection(user_id=f"auth0|user{i:03d}", provider=provider, status=rng.choice(statuses),
                                  external_account_id=f"acct-{i}",
                                  refresh_token_expires_at=now + timedelta(days=3 + i) if i % 5 == 0 else None)
                       for i, provider in enumerate(list(PROVIDERS) * 12))
    observations = []
    for hours_ago in range(7 * 24):
        for provider, (ok_share, typical) in PROVIDERS.items():
            for _ in range(rng.randint(2, 8)):
                roll = rng.random()
                outcome = "ok" if roll < ok_share else rng.choice(["unavailable", "unavailable", "needs_reauth"])
                ms = int(rng.lognormvariate(0, 0.6) * typical * (4 if outcome == "unavailable" else 1))
                at = now - timedelta(hours=hours_ago, minutes=rng.randint(0, 59))
                observations.append(RefreshObservation(at=at, provider=provider, outcome=outcome, duration_ms=ms))
    db.session.add_all(observations)
    db.session.commit()
    rollup_refresh_stats(now)
    db.session.add(RefreshObservation(at=now, provider="google", outcome="unavailable", duration_ms=12000))
    for i, (status, minutes) in enumerate([("delivered", 90)] * 20 + [("pending", 14), ("pending", 2),
                                                                      ("failed", 300)]):
        db.session.add(Event(public_id=f"evt_seed{i}", type="connection.created", connection_id=f"c{i}",
                             user_id=f"auth0|user{i:03d}", provider="sandbox", sequence=1, body="{}",
                             created_at=now - timedelta(minutes=minutes), delivery_status=status, attempts=1))
    db.session.commit()


@pytest.fixture
def live_demo(serve_demo):
    # webhooks on (nothing listens there: the page only counts the outbox)
    return serve_demo(_seed, WEBHOOK_URL="http://127.0.0.1:9/hooks", WEBHOOK_SECRET="whsec_" + "A" * 43 + "=")


@pytest.mark.parametrize("screen", WIDTHS)
def test_dashboard_draws_its_charts_within_the_csp(live_demo, browser, screen):
    viewport = WIDTHS[screen]
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        page.goto(live_demo + "/admin/")
        page.click("#login-demo")
        page.get_by_role("link", name="Dashboard").click()
        expect(page.locator("h1")).to_have_text("Dashboard")
        expect(page.locator("#counts tbody tr")).to_have_count(3)
        expect(page.locator("#refreshes tbody tr")).to_have_count(3)
        expect(page.locator("svg.chart.outcomes")).to_have_count(3)
        expect(page.locator("svg.chart.durations")).to_have_count(3)
        chart = page.locator("svg.chart.outcomes").first
        box = chart.bounding_box()
        assert box and box["width"] > 100 and box["height"] > 20
        # The bars are painted in their class's colour: the stylesheet reached the inline SVG.
        fill = page.locator("svg.chart rect.bar.ok").first.evaluate("e => getComputedStyle(e).fill")
        assert fill == "rgb(46, 139, 87)"
        expect(page.locator("#webhook-backlog")).to_have_text("2")
        expect(page.locator("#webhook-failed")).to_have_text("1")
        expect(page.locator("#expiring")).to_be_visible()
        _snap(page, viewport, "dashboard-24h")
        page.get_by_role("link", name="last 7d").click()
        expect(page.locator("#refreshes")).to_contain_text("7 days")
        assert page.locator("svg.chart.outcomes").first.locator("rect.bar").count() > 20
        _snap(page, viewport, "dashboard-7d")
        assert not [m for m in console if "Content Security Policy" in m], console
    finally:
        context.close()


def _snap(page, viewport: dict, name: str) -> None:
    """Screenshot, then: nothing wider than the screen (a 390 px phone scrolls only vertically)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{viewport['width']}.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= viewport["width"], f"{name}: {width} px wide on a {viewport['width']} px screen"
