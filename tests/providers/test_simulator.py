"""The simulator is as strict as its profile: a conformance test can only fail for a real
difference if the simulator refuses what the provider would refuse."""
from __future__ import annotations

import base64
import dataclasses
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.provider_sim.profile import Profile, Revocation
from tests.provider_sim.profiles import PROFILES
from tests.provider_sim.server import Simulator

CLIENT = ("sim-client", "sim-secret")
REDIRECT = "https://connector.test/connect/callback/x"
BASE = Profile(name="base", authorize_url="https://as.example/authorize", token_url="https://as.example/token",
               revocation=Revocation("rfc7009", "https://as.example/revoke", auth="basic"))


@pytest.fixture
def simulate():
    started = []

    def start(profile: Profile) -> Simulator:
        sim = Simulator(profile, *CLIENT).__enter__()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.__exit__(None, None, None)


def _url(sim: Simulator, real: str, **values: str) -> str:
    return sim.url + "/" + real.removeprefix("https://").format(**values)


def _code(sim: Simulator, verifier: str | None = None, **values: str) -> dict[str, str]:
    query = {"client_id": CLIENT[0], "redirect_uri": REDIRECT, "response_type": "code", "state": "s1"}
    if verifier:
        query["code_challenge"] = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(
            b"=").decode()
        query["code_challenge_method"] = "S256"
    answer = requests.get(_url(sim, sim.profile.authorize_url, **values), params=query, allow_redirects=False,
                          timeout=5)
    assert answer.status_code == 302
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}


def _post(sim: Simulator, body: dict, *, basic: bool = True, url: str | None = None, **kw) -> requests.Response:
    return requests.post(url or _url(sim, sim.profile.token_url), data=body, auth=CLIENT if basic else None,
                         timeout=5, **kw)


def _exchange(sim: Simulator, code: str, **kw) -> requests.Response:
    return _post(sim, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}, **kw)


def test_token_endpoint_refuses_client_auth_the_profile_does_not_take(simulate):
    sim = simulate(dataclasses.replace(BASE, client_auth="post"))
    code = _code(sim)["code"]
    assert _exchange(sim, code).status_code == 401  # Basic, where only post is taken
    assert sim.of("token")[-1].client_auth == "basic"


def test_code_is_single_use_and_bound_to_its_pkce_challenge(simulate):
    sim = simulate(BASE)
    code = _code(sim, verifier="v" * 43)["code"]
    wrong = _post(sim, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                        "code_verifier": "w" * 43})
    assert wrong.json()["error"] == "invalid_grant"
    again = _post(sim, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                        "code_verifier": "v" * 43})
    assert again.json()["error"] == "invalid_grant"  # the first try used it up


def test_pkce_required_refuses_an_authorize_without_challenge(simulate):
    sim = simulate(PROFILES["x"])
    assert _code(sim)["error"] == "invalid_request"


def test_json_only_token_endpoint_refuses_a_form_and_a_missing_header(simulate):
    sim = simulate(PROFILES["notion"])
    code = _code(sim)["code"]
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    assert requests.post(_url(sim, sim.profile.token_url), auth=CLIENT, json=body, timeout=5).status_code == 400
    sim = simulate(dataclasses.replace(PROFILES["notion"], required_headers=()))
    code = _code(sim)["code"]
    assert _exchange(sim, code).status_code == 400
    ok = requests.post(_url(sim, sim.profile.token_url), auth=CLIENT, timeout=5,
                       json={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})
    assert ok.status_code == 200  # the refused request did not spend the code
    assert "scope" not in ok.json() and "expires_in" not in ok.json() and ok.json()["bot_id"] == "bot-5f8a"


def test_rotating_refresh_token_is_single_use(simulate):
    sim = simulate(dataclasses.replace(BASE, rotation="rotating"))
    first = _exchange(sim, _code(sim)["code"]).json()["refresh_token"]
    assert _post(sim, {"grant_type": "refresh_token", "refresh_token": first}).status_code == 200
    reused = _post(sim, {"grant_type": "refresh_token", "refresh_token": first})
    assert (reused.status_code, reused.json()) == (400, {"error": "invalid_grant"})


def test_microsoft_style_rotation_keeps_the_old_refresh_token_valid(simulate):
    sim = simulate(dataclasses.replace(BASE, rotation="new_old_valid"))
    first = _exchange(sim, _code(sim)["code"]).json()["refresh_token"]
    second = _post(sim, {"grant_type": "refresh_token", "refresh_token": first}).json()["refresh_token"]
    assert second != first
    assert _post(sim, {"grant_type": "refresh_token", "refresh_token": first}).status_code == 200


def test_github_answers_form_encoded_unless_asked_for_json(simulate):
    sim = simulate(PROFILES["github"])
    code = _code(sim, verifier="v" * 43)["code"]
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": "v" * 43,
            "client_id": CLIENT[0], "client_secret": CLIENT[1]}
    answer = _post(sim, body, basic=False)
    assert answer.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert parse_qs(answer.text)["access_token"][0].startswith("github-at-")
    again = _post(sim, body, basic=False, headers={"Accept": "application/json"})
    assert (again.status_code, again.json()["error"]) == (200, "invalid_grant")  # errors are HTTP 200 too


def test_slack_nests_the_user_token_and_answers_errors_with_ok_false(simulate):
    sim = simulate(PROFILES["slack"])
    answer = _exchange(sim, _code(sim)["code"]).json()
    assert answer["ok"] is True and answer["authed_user"]["id"] == "U0USER1"
    assert answer["authed_user"]["access_token"].startswith("slack-at-") and answer["token_type"] == "bot"
    sim.kill_grants()
    dead = _post(sim, {"grant_type": "refresh_token", "refresh_token": answer["authed_user"]["refresh_token"]})
    assert (dead.status_code, dead.json()) == (200, {"ok": False, "error": "invalid_refresh_token"})


def test_templated_host_is_a_path_segment_and_recorded(simulate):
    sim = simulate(PROFILES["zendesk"])
    _code(sim, subdomain="acme")
    assert sim.of("authorize")[0].path_params["subdomain"] == "acme"
    assert requests.get(sim.url + "/acme.example.com/oauth/authorizations/new", timeout=5).status_code == 404


def test_revocation_refuses_the_wrong_client_authentication(simulate):
    sim = simulate(PROFILES["twitch"])  # client_id in the body, no secret
    tokens = _post(sim, {"grant_type": "authorization_code", "code": _code(sim)["code"], "redirect_uri": REDIRECT,
                         "client_id": CLIENT[0], "client_secret": CLIENT[1]}, basic=False).json()
    url = _url(sim, sim.profile.revocation.url)
    refused = requests.post(url, data={"token": tokens["access_token"], "client_id": CLIENT[0],
                                       "client_secret": CLIENT[1]}, timeout=5)
    assert refused.status_code == 401 and sim.grant_alive()
    done = requests.post(url, data={"token": tokens["access_token"], "client_id": CLIENT[0]}, timeout=5)
    assert done.status_code == 200 and not sim.grant_alive()


def test_dead_grant_answers_the_profiles_own_shape(simulate):
    sim = simulate(PROFILES["atlassian"])
    tokens = requests.post(_url(sim, sim.profile.token_url), timeout=5, json={
        "grant_type": "authorization_code", "code": _code(sim)["code"], "redirect_uri": REDIRECT,
        "client_id": CLIENT[0], "client_secret": CLIENT[1]}).json()
    sim.kill_grants()
    dead = requests.post(_url(sim, sim.profile.token_url), timeout=5, json={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
        "client_id": CLIENT[0], "client_secret": CLIENT[1]})
    assert dead.status_code == 403 and dead.json()["error"] == "invalid_grant"
