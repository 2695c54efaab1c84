"""The admin callback's ID token and token response are outside input: every shape is a clear
400, never an unhandled exception; the audience rules of OIDC Core §3.1.3.7 (steps 3-5) hold."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from app.extensions import db
from app.models import AdminLoginAttempt, AdminSession, AuditEvent
from tests.admin.conftest import ADMIN_CLIENT_ID, ADMIN_SUB, TOKEN_URL
from tests.conftest import ISSUER
from tests.jose_strategies import tokens
from tests.test_identity import NESTED, signed


def _sessions(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(AdminSession))


def _last_failure(app) -> str:
    with app.app_context():
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "admin_login")
                                   .order_by(AuditEvent.id.desc())).first()
        return event.detail["reason"]


def _sign_in(admin_login, **claims):
    """A sign-in whose ID token carries ``claims`` (``aud`` included), signed by the tenant's key."""
    params = admin_login.start()
    claims = {"aud": ADMIN_CLIENT_ID, "nonce": params["nonce"], "scope": None, "name": "Operator", **claims}
    id_token = admin_login.auth0.token(ADMIN_SUB, **claims)
    return _answer(admin_login, params, json={"access_token": "at", "token_type": "Bearer", "id_token": id_token})


@pytest.mark.parametrize("claims", [
    {"aud": "some-other-client", "azp": ADMIN_CLIENT_ID},  # once signed in
    {"aud": [ADMIN_CLIENT_ID, "some-other-client"]},  # an extra, untrusted audience: once signed in
    {"aud": [ADMIN_CLIENT_ID, "some-other-client"], "azp": ADMIN_CLIENT_ID},
    {"aud": ADMIN_CLIENT_ID, "azp": "some-other-client"},
    {"aud": "https://connector.test/api"},
    {"aud": []},
])
def test_audience_rules_are_enforced(app, admin_login, claims):
    response = _sign_in(admin_login, **claims)
    assert response.status_code == 400 and "sign-in failed" in response.text, response.text
    assert _sessions(app) == 0 and _last_failure(app) == "invalid_id_token"


@pytest.mark.parametrize("claims", [
    {"aud": ADMIN_CLIENT_ID},
    {"aud": [ADMIN_CLIENT_ID]},
    {"aud": ADMIN_CLIENT_ID, "azp": ADMIN_CLIENT_ID},
    {"aud": [ADMIN_CLIENT_ID], "azp": ADMIN_CLIENT_ID},
])
def test_our_audience_alone_signs_in(app, admin_login, claims):
    assert _sign_in(admin_login, **claims).status_code == 302
    assert _sessions(app) == 1


def _raw_id_token(admin_login, params, header=None, payload=None, **claims) -> str:
    base = {"iss": ISSUER, "aud": ADMIN_CLIENT_ID, "sub": ADMIN_SUB, "nonce": params["nonce"],
            "iat": 1, "exp": 4_000_000_000, **claims}
    return signed(admin_login.auth0.key, header or {"alg": "RS256", "kid": "kid-1"}, payload or base)


def _answer(admin_login, params, *, json=None, body=None, status=200):
    if body is not None:
        admin_login.http.replace("POST", TOKEN_URL, body=body, status=status)
    else:
        admin_login.http.replace("POST", TOKEN_URL, json=json, status=status)
    return admin_login.client.get("/admin/callback", query_string={"code": "c", "state": params["state"]})


@pytest.mark.parametrize("make", [
    lambda p, t: {"access_token": "a", "token_type": "Bearer",
                  "id_token": _raw_id_token(t, p, header={"alg": "RS256", "kid": "kid-1", "crit": [1]})},
    lambda p, t: {"access_token": "a", "token_type": "Bearer",
                  "id_token": _raw_id_token(t, p, header={"alg": "RS256", "kid": "kid-1", "crit": [{}]})},
    lambda p, t: {"access_token": "a", "token_type": "Bearer", "id_token": _raw_id_token(t, p, header=NESTED)},
    lambda p, t: {"access_token": "a", "token_type": "Bearer", "id_token": _raw_id_token(t, p, payload=NESTED)},
    lambda p, t: {"access_token": "a", "token_type": "Bearer", "id_token": _raw_id_token(t, p, payload=b"\xff")},
    lambda p, t: {"access_token": "a", "token_type": "Bearer", "id_token": _raw_id_token(t, p, payload=b"[]")},
    lambda p, t: {"access_token": "a", "token_type": "Bearer", "id_token": _raw_id_token(t, p, sub=["x"])},
    lambda p, t: {"access_token": "a", "token_type": "Bearer", "id_token": _raw_id_token(t, p, sub="a\nb")},
    lambda p, t: {"access_token": "a", "token_type": "Bearer", "id_token": _raw_id_token(t, p, exp="soon")},
    lambda p, t: {"access_token": "a", "token_type": "Bearer", "id_token": _raw_id_token(t, p, iat=[1])},
    lambda p, t: {"access_token": "a", "token_type": "Bearer", "id_token": _raw_id_token(t, p, nonce=[1])},
    lambda p, t: {"access_token": "a", "token_type": "Bearer", "id_token": _raw_id_token(t, p, aud={"a": 1})},
    lambda p, t: {"access_token": "a", "token_type": "Bearer", "id_token": _raw_id_token(t, p, aud=[[1]])},
    lambda p, t: {"access_token": "a", "token_type": "Bearer", "id_token": _raw_id_token(t, p, auth_time="x")},
    lambda p, t: {"access_token": "a", "token_type": "Bearer", "id_token": _raw_id_token(t, p, at_hash=1)},
    lambda p, t: {"access_token": "a", "token_type": "Bearer", "id_token": _raw_id_token(t, p, azp=[1])},
    lambda p, t: {"access_token": "a", "token_type": "Bearer", "id_token": 12},
    lambda p, t: {"access_token": "a", "token_type": "Bearer", "id_token": ["x.y.z"]},
    lambda p, t: {"access_token": "a", "token_type": "Bearer", "id_token": "x" * 20000},
    lambda p, t: {"access_token": "a", "token_type": "Bearer"},
    lambda p, t: [],
    lambda p, t: "token",
    lambda p, t: None,
])
def test_malformed_token_responses_are_a_clear_400(app, admin_login, make):
    params = admin_login.start()
    response = _answer(admin_login, params, json=make(params, admin_login))
    assert response.status_code == 400 and "sign-in failed" in response.text, response.text
    assert _sessions(app) == 0


@pytest.mark.parametrize("body,status", [(b"<html>oops</html>", 200), (b"{", 200), (b"[" * 5000, 200),
                                         (b"", 500), (b"{}", 502)])
def test_a_token_endpoint_answer_that_is_not_json_is_a_clear_400(app, admin_login, body, status):
    response = _answer(admin_login, admin_login.start(), body=body, status=status)
    assert response.status_code == 400 and "sign-in failed" in response.text, response.text


def test_a_name_that_is_not_text_is_dropped_not_stored(app, admin_login):
    assert _sign_in(admin_login, name=["Operator"], email={"x": 1}).status_code == 302
    with app.app_context():
        assert db.session.scalars(select(AdminSession)).one().name is None


@settings(max_examples=10, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_generated_id_tokens_are_never_a_server_error(app, admin_login, data):
    with app.app_context():  # every example fails: start each with a fresh throttle count
        db.session.execute(delete(AdminLoginAttempt))
        db.session.commit()
    params = admin_login.start()
    id_token = data.draw(tokens(admin_login.auth0.key))
    response = _answer(admin_login, params, json={"access_token": "at", "token_type": "Bearer", "id_token": id_token})
    assert response.status_code == 400 and "sign-in failed" in response.text, response.text
