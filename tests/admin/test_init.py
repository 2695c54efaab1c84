"""The admin console's extensions stay inside the console: nothing else opens Flask's session."""
from urllib.parse import quote

from tests.conftest import APP_ORIGIN, BASE_URL, RETURN_URL, make_connection


def test_api_responses_never_open_the_session(client, app, auth0):
    """Flask-Login's remember-cookie hook read the session after every request, so each API answer
    carried ``Vary: Cookie`` (and a shared cache could not serve it to anyone else)."""
    make_connection(app, "auth0|job", "github")
    path = f"/api/users/{quote('auth0|job', safe='')}/connections/github/token"
    response = client.post(path, headers={"Authorization": f"Bearer {auth0.m2m_token('read:tokens')}"})
    assert response.status_code == 200, response.get_json()
    assert "Cookie" not in response.headers.get("Vary", "")
    assert "Set-Cookie" not in response.headers
    refused = client.post(path, headers={"Authorization": "Bearer garbage"})
    assert refused.status_code == 401 and "Cookie" not in refused.headers.get("Vary", "")
    assert "Cookie" not in client.get("/healthz").headers.get("Vary", "")


def test_connect_start_never_opens_the_session(client, auth0):
    response = client.post("/connect/start", base_url=BASE_URL, headers={"Origin": APP_ORIGIN},
                           data={"access_token": auth0.token(), "provider": "github", "return_to": RETURN_URL})
    assert response.status_code == 303
    assert "Cookie" not in response.headers.get("Vary", "")


def test_the_console_still_uses_its_session(client):
    response = client.get("/admin/login", base_url=BASE_URL)
    assert "Cookie" in response.headers.get("Vary", "")
