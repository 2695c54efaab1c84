import io
import json
import logging
from urllib.parse import quote

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent
from app.observability.logs import configure_logging, gunicorn_logconfig
from tests.conftest import make_connection


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def json_lines():
    """The root logger's lines in LOG_FORMAT=json, as written (one JSON object per line)."""
    stream = io.StringIO()
    handler = configure_logging("json", stream=stream)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logging.getLogger().removeHandler(handler)


def test_a_request_id_is_generated_returned_and_recorded_in_the_audit(client, app, auth0, stub, json_lines):
    access, refresh = stub.issue()
    make_connection(app, "auth0|alice", "stub", access=access, refresh=refresh)
    response = client.delete("/api/connections/stub", headers=_bearer(auth0.token("auth0|alice")),
                             environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert response.status_code == 200
    request_id = response.headers["X-Request-ID"]
    assert len(request_id) == 32
    with app.app_context():
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "revoke")).one()
        assert event.request_id == request_id
    audit = [line for line in json_lines() if line["logger"] == "app.audit"]
    assert audit and audit[0]["request_id"] == request_id
    assert audit[0]["level"] == "INFO" and audit[0]["user_id"] == "auth0|alice" and audit[0]["provider"] == "stub"
    assert {"time", "level", "logger", "message"} <= audit[0].keys()
    assert access not in json.dumps(json_lines()) and refresh not in json.dumps(json_lines())


def test_every_response_carries_a_new_request_id(client):
    ids = {client.get("/healthz").headers["X-Request-ID"] for _ in range(3)}
    ids.add(client.get("/no/such/page").headers["X-Request-ID"])
    ids.add(client.get("/connect/callback?x=%00").headers["X-Request-ID"])  # refused early: still an id
    assert len(ids) == 5


def test_a_client_cannot_choose_its_request_id_without_a_trusted_proxy(client):
    response = client.get("/healthz", headers={"X-Request-ID": "chosen-by-client"})
    assert response.headers["X-Request-ID"] != "chosen-by-client"


@pytest.fixture
def trusted_env(env):
    return {**env, "TRUSTED_PROXY_HOPS": "1"}


@pytest.mark.parametrize("presented,kept", [
    ("abc-123", True), ("a" * 128, True), ("0f3e:span/1=", True),
    ("a" * 129, False), ("has space", False), ("-leading-dash", False), ("x\u00e9", False), ("", False),
])
def test_a_trusted_proxys_request_id_is_kept_when_it_looks_like_one(app_factory_trusted, presented, kept):
    response = app_factory_trusted.get("/healthz", headers={"X-Request-ID": presented})
    assert (response.headers["X-Request-ID"] == presented) is kept
    assert len(response.headers["X-Request-ID"]) <= 128


@pytest.fixture
def app_factory_trusted(database_url, mocked_http, trusted_env):
    from app import create_app

    app = create_app(test_config={"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url}, env=trusted_env)
    return app.test_client()


def test_audit_events_log_at_the_right_level(client, app, auth0, stub, caplog):
    make_connection(app, "auth0|job", "stub", expires_in=-1, refresh="not-a-valid-refresh-token")
    with caplog.at_level(logging.INFO, logger="app.audit"):
        response = client.post(f"/api/users/{quote('auth0|job', safe='')}/connections/stub/token",
                               headers=_bearer(auth0.m2m_token("read:tokens")))
    assert response.status_code == 409
    records = [r for r in caplog.records if r.name == "app.audit"]
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("WARNING", "audit refresh needs_reauth provider=stub error=invalid_grant")]
    assert records[0].request_id == response.headers["X-Request-ID"]
    assert "not-a-valid-refresh-token" not in caplog.text


def test_text_format_carries_the_same_fields():
    stream = io.StringIO()
    handler = configure_logging("text", stream=stream)
    try:
        logging.getLogger("app.test").warning("hello %s", "world")
    finally:
        logging.getLogger().removeHandler(handler)
    line = stream.getvalue().strip()
    assert " WARNING app.test [-] hello world" in line


def test_unknown_format_is_refused():
    with pytest.raises(ValueError):
        configure_logging("xml")
    with pytest.raises(ValueError):
        gunicorn_logconfig("xml")


def test_gunicorn_logconfig_is_a_valid_dict_config():
    import logging.config

    config = gunicorn_logconfig("json")
    logging.config.dictConfig(config)
    handler = logging.getLogger("gunicorn.error").handlers[0]
    try:
        record = logging.LogRecord("gunicorn.error", logging.INFO, __file__, 1, "Booting worker", (), None)
        for log_filter in handler.filters:
            log_filter.filter(record)
        assert json.loads(handler.format(record))["message"] == "Booting worker"
    finally:
        for name in ("gunicorn.error", "gunicorn.access"):
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True


def test_a_users_request_logs_carry_user_and_provider(client, app, auth0, stub, json_lines):
    make_connection(app, "auth0|bob", "stub", expires_in=-1, refresh="not-a-valid-refresh-token")
    response = client.get("/api/proxy/stub/me", headers=_bearer(auth0.token("auth0|bob")))
    assert response.status_code == 409
    vault = [line for line in json_lines() if line["logger"] == "app.vault"]
    assert vault and vault[0]["user_id"] == "auth0|bob" and vault[0]["provider"] == "stub"
    assert vault[0]["request_id"] == response.headers["X-Request-ID"]
