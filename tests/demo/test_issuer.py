"""The demo issuer stands in for Auth0: its tokens pass the same verifier as a tenant's."""
from __future__ import annotations

import os
import stat

import requests

from app import create_app
from app.demo import keys
from app.runtime import runtime


def test_discovery_and_jwks_are_served_like_a_tenant(demo):
    config = requests.get(demo.url("/demo/issuer/.well-known/openid-configuration"), timeout=5).json()
    assert config["issuer"] == demo.url("/demo/issuer/")
    jwks = requests.get(config["jwks_uri"], timeout=5).json()
    assert [k["kty"] for k in jwks["keys"]] == ["RSA"]
    assert not {"d", "p", "q"} & set(jwks["keys"][0])  # public part only


def test_signed_in_user_gets_a_user_token_the_service_verifies(demo):
    token = demo.sign_in(requests.Session(), "bob")
    with demo.app.app_context():
        principal = runtime().verifier.verify(token)
    assert principal.sub == "demo|bob" and not principal.is_machine
    listed = requests.get(demo.url("/api/connections"), headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert listed.status_code == 200 and listed.json() == {"connections": []}


def test_sign_in_refuses_a_redirect_off_the_allowlist_and_a_missing_state(demo):
    base = {"client_id": "demo-spa", "response_type": "token", "state": "s" * 24}
    off_list = requests.get(demo.url("/demo/issuer/authorize"), timeout=5,
                            params={**base, "redirect_uri": "https://evil.example/demo/spa"})
    assert off_list.status_code == 400 and "allowlist" in off_list.text
    no_state = requests.get(demo.url("/demo/issuer/authorize"), timeout=5,
                            params={**base, "state": "", "redirect_uri": demo.url("/demo/spa")})
    assert no_state.status_code == 400 and "state" in no_state.text


def test_sign_in_post_without_csrf_token_is_refused(demo):
    response = requests.post(demo.url("/demo/issuer/authorize"), data={"user": "alice"}, timeout=5,
                             params={"client_id": "demo-spa", "response_type": "token", "state": "s" * 24,
                                     "redirect_uri": demo.url("/demo/spa")}, allow_redirects=False)
    assert response.status_code == 400 and "Location" not in response.headers


def test_job_client_gets_a_machine_token_for_the_machine_api(demo):
    url = demo.url("/demo/issuer/oauth/token")
    wrong = requests.post(url, data={"grant_type": "client_credentials"}, auth=("demo-job", "nope"), timeout=5)
    assert wrong.status_code == 401 and wrong.json() == {"error": "invalid_client"}
    issued = requests.post(url, data={"grant_type": "client_credentials"}, auth=("demo-job", "demo-job-secret"),
                           timeout=5).json()
    headers = {"Authorization": f"Bearer {issued['access_token']}"}
    listed = requests.get(demo.url("/api/users/demo%7Calice/connections"), headers=headers, timeout=5)
    assert listed.status_code == 200
    refused = requests.get(demo.url("/api/connections"), headers=headers, timeout=5)  # a user endpoint
    assert refused.status_code == 403


def test_signing_key_is_owner_only_and_survives_a_restart(tmp_path, database_url):
    state = tmp_path / "state"
    env = {"CONNECTOR_DEMO": "1"}
    first = create_app(test_config={"SQLALCHEMY_DATABASE_URI": database_url, "DEMO_STATE_DIR": str(state)}, env=env)
    second = create_app(test_config={"SQLALCHEMY_DATABASE_URI": database_url, "DEMO_STATE_DIR": str(state)}, env=env)
    assert first.extensions["demo_issuer_key"].kid == second.extensions["demo_issuer_key"].kid
    mode = os.stat(state / keys.KEY_FILE).st_mode
    assert stat.S_IMODE(mode) == 0o600
