"""Webhook delivery to a real receiver on loopback: signatures, retries with the same id, dead letters."""
import json
import socket
from datetime import UTC, timedelta
from email.utils import format_datetime

import pytest
from sqlalchemy import update
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app import clock
from app.events import outbox
from app.events.model import Event
from app.events.webhooks import deliver_due, retry_after_seconds
from app.extensions import db
from app.models import Connection
from config import ConfigError, load_config
from tests.conftest import base_env, make_connection
from tests.events.conftest import SECRET_1, SECRET_2, stored_events


def _emit(app, user_id="auth0|alice", provider="spotify", count=1) -> list[str]:
    connection_id = make_connection(app, user_id, provider)
    with app.app_context():
        row = db.session.get(Connection, connection_id)
        ids = [outbox.emit_event(row, outbox.CREATED).public_id for _ in range(count)]
        db.session.commit()
    return ids


def _deliver(app):
    with app.app_context():
        return deliver_due()


def _time_passes(app):
    """Every pending event becomes due now (as if its backoff had elapsed)."""
    with app.app_context():
        db.session.execute(update(Event).where(Event.delivery_status == "pending").values(next_attempt_at=clock.now()))
        db.session.commit()


def _closed_port_url() -> str:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks"


def test_requests_verify_with_the_standardwebhooks_library_under_each_secret(app, receiver):
    [event_id] = _emit(app)
    assert _deliver(app) == {"delivered": 1}
    [request] = receiver.received
    assert request.headers["webhook-id"] == event_id
    assert request.headers["content-type"] == "application/json"
    assert len(request.headers["webhook-signature"].split(" ")) == 2  # one per secret (rotation)
    for secret in (SECRET_1, SECRET_2):
        payload = Webhook(secret).verify(request.body, request.headers)
        assert payload["type"] == "connection.created" and payload["data"]["sequence"] == 1
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "c" * 32).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET_1).verify(request.body.replace(b"created", b"revoked"), request.headers)
    [stored] = stored_events(app)
    assert (stored["status"], stored["attempts"], stored["last_error"]) == ("delivered", 1, None)
    assert _deliver(app) == {}  # delivered once


def test_500_is_retried_after_backoff_with_the_same_id(app, receiver):
    [event_id] = _emit(app)
    receiver.script = [500]
    before = clock.now()
    assert _deliver(app) == {"retrying": 1}
    [stored] = stored_events(app)
    assert (stored["status"], stored["attempts"], stored["last_error"]) == ("pending", 1, "http_500")
    delay = (stored["next_attempt_at"] - before).total_seconds()
    assert 5 * 0.8 - 1 <= delay <= 5 + 1  # WEBHOOK_BACKOFF_BASE with up to 20 % jitter
    assert _deliver(app) == {}  # not due yet
    _time_passes(app)
    assert _deliver(app) == {"delivered": 1}
    assert receiver.ids() == [event_id, event_id]
    assert stored_events(app)[0]["attempts"] == 2


@pytest.mark.parametrize("retry_after,expected", [("120", 120), ("999999", 3600)])
def test_429_honours_retry_after_capped(app, receiver, retry_after, expected):
    [event_id] = _emit(app)
    receiver.script = [(429, {"Retry-After": retry_after})]
    before = clock.now()
    assert _deliver(app) == {"retrying": 1}
    delay = (stored_events(app)[0]["next_attempt_at"] - before).total_seconds()
    assert expected - 1 <= delay <= expected + 1
    _time_passes(app)
    assert _deliver(app) == {"delivered": 1}
    assert receiver.ids() == [event_id, event_id]


def test_a_receiver_that_does_not_answer_in_time_is_retried(app, receiver):
    [event_id] = _emit(app)
    receiver.script = ["hang"]  # WEBHOOK_TIMEOUT is 1 s here
    assert _deliver(app) == {"retrying": 1}
    assert stored_events(app)[0]["last_error"] == "timeout"
    receiver.release.set()
    _time_passes(app)
    assert _deliver(app) == {"delivered": 1}
    assert receiver.ids() == [event_id, event_id]


def test_a_refused_connection_is_retried_with_the_same_id(app, receiver):
    [event_id] = _emit(app)
    app.config["WEBHOOK_URL"] = _closed_port_url()
    assert _deliver(app) == {"retrying": 1}
    assert stored_events(app)[0]["last_error"] == "connection_error"
    app.config["WEBHOOK_URL"] = receiver.url
    _time_passes(app)
    assert _deliver(app) == {"delivered": 1}
    assert receiver.ids() == [event_id]
    assert stored_events(app)[0]["attempts"] == 2


def test_a_redirect_is_not_followed_and_counts_as_a_failure(app, receiver):
    _emit(app)
    receiver.script = [(307, {"Location": "http://169.254.169.254/"})]
    assert _deliver(app) == {"retrying": 1}
    assert stored_events(app)[0]["last_error"] == "http_307"


def test_after_the_last_attempt_the_event_is_failed_and_can_be_redelivered(app, receiver, runner):
    app.config["WEBHOOK_MAX_ATTEMPTS"] = 3
    [event_id] = _emit(app)
    receiver.script = [500, 502, 503]
    for _ in range(3):
        _deliver(app)
        _time_passes(app)
    [stored] = stored_events(app)
    assert (stored["status"], stored["attempts"], stored["last_error"]) == ("failed", 3, "http_503")
    assert _deliver(app) == {}  # a dead letter stays put
    result = runner.invoke(args=["connector", "redeliver-event", event_id])
    assert result.exit_code == 0 and event_id in result.output
    assert _deliver(app) == {"delivered": 1}
    assert receiver.ids() == [event_id] * 4
    unknown = runner.invoke(args=["connector", "redeliver-event", "evt_nope"])
    assert unknown.exit_code != 0 and "no event" in unknown.output


def test_without_a_webhook_url_events_are_kept_for_the_feed_and_not_sent(app, receiver):
    app.config["WEBHOOK_URL"] = None
    _emit(app)
    assert _deliver(app) == {}
    assert stored_events(app)[0]["status"] == "skipped" and receiver.received == []


def test_the_body_is_the_stored_payload_byte_for_byte(app, receiver):
    _emit(app)
    _deliver(app)
    with app.app_context():
        body = db.session.query(Event.body).scalar()
    assert receiver.received[0].body == body.encode()
    assert json.loads(body)["data"]["provider"] == "spotify"


def test_generated_secrets_are_accepted_by_the_library_and_the_config(runner):
    result = runner.invoke(args=["connector", "generate-webhook-secret"])
    secret = result.output.strip()
    assert result.exit_code == 0 and secret.startswith("whsec_")
    Webhook(secret)
    assert load_config(base_env(WEBHOOK_URL="https://hooks.example/x", WEBHOOK_SECRET=secret))["WEBHOOK_SECRETS"] == [
        secret]


@pytest.mark.parametrize("settings,variable", [
    ({"WEBHOOK_URL": "http://hooks.example/x", "WEBHOOK_SECRET": SECRET_1}, "WEBHOOK_URL"),
    ({"WEBHOOK_URL": "ftp://hooks.example/x", "WEBHOOK_SECRET": SECRET_1}, "WEBHOOK_URL"),
    ({"WEBHOOK_URL": "https://user:pw@hooks.example/x", "WEBHOOK_SECRET": SECRET_1}, "WEBHOOK_URL"),
    ({"WEBHOOK_URL": "https://hooks.example/x"}, "WEBHOOK_SECRET"),
    ({"WEBHOOK_URL": "https://hooks.example/x", "WEBHOOK_SECRET": "whsec_" + "YWJj"}, "WEBHOOK_SECRET"),
    ({"WEBHOOK_URL": "https://hooks.example/x", "WEBHOOK_SECRET": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"},
     "WEBHOOK_SECRET"),
    ({"WEBHOOK_URL": "https://hooks.example/x", "WEBHOOK_SECRET": f"{SECRET_1},whsec_!!"}, "WEBHOOK_SECRET"),
    ({"WEBHOOK_TIMEOUT": "0"}, "WEBHOOK_TIMEOUT"),
    ({"WORKER_INTERVAL": "soon"}, "WORKER_INTERVAL"),
])
def test_bad_webhook_settings_are_named(settings, variable):
    with pytest.raises(ConfigError, match=f"^{variable}:"):
        load_config(base_env(**settings))


def test_loopback_http_is_allowed():
    config = load_config(base_env(WEBHOOK_URL="http://127.0.0.1:9/h", WEBHOOK_SECRET=SECRET_1))
    assert config["WEBHOOK_URL"] == "http://127.0.0.1:9/h"


def test_retry_after_forms():
    assert retry_after_seconds("30") == 30
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("9" * 40) == 10**9
    later = format_datetime(clock.now().replace(tzinfo=UTC) + timedelta(seconds=90),
                            usegmt=True)
    assert 85 <= retry_after_seconds(later) <= 91
