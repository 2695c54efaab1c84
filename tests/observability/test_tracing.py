"""The in-memory trace of a token request: the expected spans, one trace, and no secret anywhere."""
from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.observability.tracing import init_tracing
from config import ConfigError, load_config
from tests.conftest import base_env, make_connection
from tests.stub_provider import CLIENT_SECRET


@pytest.fixture
def traced(app):
    exporter = InMemorySpanExporter()
    init_tracing(app, exporter)
    yield exporter
    RequestsInstrumentor().uninstrument()
    SQLAlchemyInstrumentor().uninstrument()


def _everything(spans) -> str:
    """Every name, attribute and event of every span, as one string to search."""
    return json.dumps([{"name": s.name, "attributes": dict(s.attributes or {}),
                        "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in s.events],
                        "resource": dict(s.resource.attributes)} for s in spans], default=str)


def test_trace_of_a_token_request(client, app, auth0, stub, traced):
    access, refresh = stub.issue()
    make_connection(app, "auth0|job", "stub", access=access, refresh=refresh, expires_in=-1)
    m2m = auth0.m2m_token("read:tokens")
    response = client.post(f"/api/users/{quote('auth0|job', safe='')}/connections/stub/token?min_ttl=60",
                           headers={"Authorization": f"Bearer {m2m}"})
    assert response.status_code == 200
    new_access = response.json["access_token"]
    spans = traced.get_finished_spans()
    server = [s for s in spans if s.name == "POST /api/users/<user_id>/connections/<provider>/token"]
    assert len(server) == 1
    trace_id = server[0].context.trace_id
    in_trace = [s for s in spans if s.context.trace_id == trace_id]
    client_spans = [s for s in in_trace if s.kind.name == "CLIENT" and s.attributes.get("http.method") == "POST"]
    sql = [s for s in in_trace if "db.statement" in (s.attributes or {})]
    assert client_spans, [s.name for s in in_trace]  # the refresh at the provider
    assert any("UPDATE connections" in s.attributes["db.statement"] for s in sql)
    assert any(s.attributes["db.statement"].startswith("SELECT") for s in sql)
    text = _everything(spans)
    for secret in (access, refresh, new_access, m2m, CLIENT_SECRET, "s" * 40):
        assert secret not in text
    assert "min_ttl=60" not in text and "?[redacted]" in text


def test_callback_code_and_state_stay_out_of_spans(client, traced):
    client.get("/connect/callback?code=SECRETCODE&state=SECRETSTATE&iss=x")
    text = _everything(traced.get_finished_spans())
    assert "/connect/callback" in text
    assert "SECRETCODE" not in text and "SECRETSTATE" not in text


@pytest.mark.parametrize("settings,on", [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
    ({"OTEL_TRACES_EXPORTER": "console"}, True),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, False),
])
def test_tracing_is_on_only_with_an_exporter(settings, on):
    assert load_config(base_env(**settings), testing=True)["TRACING"] is on


def test_unknown_exporter_is_a_configuration_error():
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER"):
        load_config(base_env(OTEL_TRACES_EXPORTER="zipkin"), testing=True)


def test_without_an_exporter_opentelemetry_is_not_even_imported():
    import subprocess
    import sys

    code = ("import sys\nfrom app import create_app\nfrom tests.conftest import base_env\n"
            "create_app(test_config={'SQLALCHEMY_DATABASE_URI': 'sqlite://'}, env=base_env())\n"
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=__file__.rsplit("/tests/", 1)[0])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
