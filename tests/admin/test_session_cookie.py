"""The console's session cookie: Flask's signed cookie, its serializer made once per set of keys."""
import pytest
from itsdangerous import BadSignature

from app.admin.session_cookie import SessionCookieInterface


def test_the_signing_serializer_is_made_once_for_the_same_keys(app):
    interface = app.session_interface
    assert isinstance(interface, SessionCookieInterface)
    assert interface.get_signing_serializer(app) is interface.get_signing_serializer(app)


def test_a_new_key_gets_a_new_serializer_and_the_old_cookie_opens_only_while_it_is_a_fallback(app):
    interface = app.session_interface
    old = interface.get_signing_serializer(app)
    cookie = old.dumps({"signed": "with the old key"})
    app.config.update(SECRET_KEY="rotated-" + "k" * 32, SECRET_KEY_FALLBACKS=[app.config["SECRET_KEY"]])
    rotated = interface.get_signing_serializer(app)
    assert rotated is not old
    assert rotated.loads(cookie) == {"signed": "with the old key"}
    assert rotated.loads(rotated.dumps({"a": 1})) == {"a": 1}
    app.config["SECRET_KEY_FALLBACKS"] = []
    retired = interface.get_signing_serializer(app)
    assert retired is not rotated
    with pytest.raises(BadSignature):
        retired.loads(cookie)


def test_a_signed_in_console_session_survives_the_cached_serializer(client, app):
    """The cookie the console sets on one request is read back on the next (same serializer)."""
    with client.session_transaction() as session:
        session["probe"] = "kept"
    with client.session_transaction() as session:
        assert session["probe"] == "kept"


def test_a_request_without_cookies_gets_an_empty_session_and_sets_none(client):
    response = client.get("/healthz", headers={})
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers and "Cookie" not in response.headers.get("Vary", "")
