"""Each catalog provider, run through the connector against a simulator that behaves as that
provider documents (tests/provider_sim/profiles.py): connect → token → refresh (with its
rotation) → a dead grant (with its error shape) → revoke (with its style).

The catalog entry is used as shipped, only its URLs pointed at the simulator (an override entry,
as an operator's providers file would). The simulator refuses what its provider would refuse;
the tests also check that each request has the shape the ENTRY declares. A failing stage means
the entry does not describe the provider (a catalog fact), the schema cannot load it, or the
runtime does not honour it. Storage-touching stages also run on PostgreSQL (TEST_DATABASE_URL).
"""
from __future__ import annotations

import math
import os

import pytest
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.models import RevocationTask
from app.oauth_client import error_code
from app.providers.spec import ProviderSpec, spec_from_mapping
from tests.conftest import base_env
from tests.provider_sim.profile import Profile
from tests.provider_sim.profiles import PROFILES
from tests.provider_sim.server import Simulator
from tests.providers.conformance import (
    Lifecycle,
    catalog_entry,
    check_client_auth,
    check_token_request,
    client_credentials,
    providers_file,
)

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
POSTGRESQL_ONLY = pytest.mark.parametrize("database_url", [pytest.param("postgresql", marks=pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"), reason="TEST_DATABASE_URL is not set"))], indirect=True)


@pytest.fixture(params=sorted(PROFILES))
def profile(request) -> Profile:
    return PROFILES[request.param]


@pytest.fixture
def sim(profile):
    with Simulator(profile, *client_credentials(profile.entry_name)) as simulator:
        yield simulator


@pytest.fixture
def operator_entry() -> dict:
    """What the operator's providers file adds to the catalog entry (besides the simulator URLs)."""
    return {}


@pytest.fixture
def env(sim, profile, tmp_path, operator_entry) -> dict[str, str]:
    client_id, secret = client_credentials(profile.entry_name)
    prefix = profile.entry_name.upper()
    return base_env(CONNECTOR_PROVIDERS_FILE=providers_file(tmp_path, profile, sim, operator_entry),
                    PROVIDER_READ_TIMEOUT="2",
                    **{f"{prefix}_CLIENT_ID": client_id, f"{prefix}_CLIENT_SECRET": secret})


@pytest.fixture
def flow(app, client, auth0, sim, profile) -> Lifecycle:
    with app.app_context():
        spec = app.extensions["connector"].registry.get(profile.entry_name)
    return Lifecycle(app, client, auth0, sim, spec, profile)


def has_refresh_token(profile: Profile) -> bool:
    return profile.issues_refresh_token


# Refresh and dead-grant stages only for providers that issue refresh tokens (the GitHub OAuth app
# and Slack without token rotation do not: their access tokens never expire).
WITH_REFRESH_TOKENS = pytest.mark.parametrize(
    "profile", sorted(n for n, p in PROFILES.items() if p.issues_refresh_token), indirect=True)


def dead_grant_code(spec: ProviderSpec, profile: Profile) -> str | None:
    """The code the entry reads from the provider's dead-grant answer (through its error_shape)."""
    return error_code(spec.error_shape, profile.dead_grant.body, profile.dead_grant.status)


def catalog_spec(profile: Profile) -> ProviderSpec:
    return spec_from_mapping(profile.entry_name, {**catalog_entry(profile.entry_name), **dict(profile.entry_override)})


def recognises_dead_grant(spec: ProviderSpec, profile: Profile) -> bool:
    """Whether the entry takes the dead-grant answer for "reconnect". Only an answer the profile marks
    unverified (observed, not documented) may go unrecognised: the team's rule keeps such facts out
    of the catalog, and a documented one that is not recognised is a catalog fact to fix."""
    code = dead_grant_code(spec, profile)
    recognised = code in spec.reauth_error_codes
    assert recognised or "dead_grant" in profile.unverified, (
        f"catalog fact: {profile.name}'s documented dead-grant answer reads as {code!r}, which is not among "
        f"its reauth_error_codes {list(spec.reauth_error_codes)}")
    return recognised


# Providers whose (observed, unverified) dead-grant answer the catalog deliberately does not take for
# "reconnect" (X's invalid_request also means a malformed request; Twitch's has no error code at all).
UNRECOGNISED_DEAD_GRANTS = sorted(
    name for name, p in PROFILES.items() if p.issues_refresh_token and "dead_grant" in p.unverified
    and dead_grant_code(catalog_spec(p), p) not in catalog_spec(p).reauth_error_codes)


# -- the stages (each test below runs one on SQLite; the last runs them all on PostgreSQL) -------
def connect_stage(flow: Lifecycle, sim: Simulator, profile: Profile) -> None:
    flow.connected()
    (authorize,) = sim.of("authorize")
    (token,) = sim.of("token")
    assert ("code_challenge" in authorize.query) == flow.spec.pkce, "code_challenge sent iff the entry says pkce"
    check_token_request(token, flow.spec, refresh=False)
    row = flow.row()
    assert row.status == "active"
    assert flow.stored("access_token") == sim.latest_access(), "the stored access token is the user's"
    expected_refresh = sim.latest_refresh() if profile.issues_refresh_token else None
    assert flow.stored("refresh_token") == expected_refresh, "the stored refresh token is the user's"
    if flow.spec.account_id_source != "none" and profile.account_ids:
        assert row.external_account_id in profile.account_ids
    assert (row.params or {}) == expected_params(flow, profile), "the connection keeps its params"
    for param in flow.spec.params:  # a templated token URL was filled with the connection's value
        if "{" + param.name + "}" in (flow.spec.token_url or ""):
            assert f"/{row.params[param.name]}" in token.path or f"/{row.params[param.name]}." in token.path
    check_expiry(row, flow.spec, profile)
    assert not sim.of("unknown"), flow.trace()
    check_scope_request(authorize, flow.spec, profile)


def _seconds_from_now(moment) -> float:
    return (moment - clock.now()).total_seconds()


def check_expiry(row, spec, profile: Profile) -> None:
    """The access token's expiry read from where the provider puts it (Slack: authed_user), or the
    entry's default when the provider sends none; the refresh token's from refresh_token_expires_in."""
    if profile.expires:
        expected = profile.access_ttl
    elif spec.non_expiring_access_tokens:
        assert row.access_token_expires_at is None, "a non-expiring access token got an expiry"
        expected = None
    else:
        expected = spec.default_access_token_ttl
    if expected is not None:
        assert row.access_token_expires_at is not None, "the access token's expiry was not stored"
        assert abs(_seconds_from_now(row.access_token_expires_at) - expected) < 120, (
            f"access token expires in {_seconds_from_now(row.access_token_expires_at):.0f} s, expected {expected}")
    if profile.refresh_token_expires_in and profile.issues_refresh_token:
        lifetimes = [profile.refresh_token_expires_in, spec.refresh_token_absolute_lifetime or math.inf]
        assert row.refresh_token_expires_at is not None, "refresh_token_expires_in was not read"
        assert abs(_seconds_from_now(row.refresh_token_expires_at) - min(lifetimes)) < 120


def expected_params(flow: Lifecycle, profile: Profile) -> dict[str, str]:
    """Each declared param's value, from where the entry says it comes: the connect request, the
    provider's redirect (QuickBooks' realmId) or the token response (Salesforce's instance_url)."""
    found = {}
    sources = {"connect": dict(profile.connect_values), "callback": dict(profile.callback_extras),
               "token_response": dict(profile.token_extras)}
    for param in flow.spec.params:
        value = sources[param.source]
        for part in (param.path or param.name).split(".") if param.source == "token_response" else \
                [param.path or param.name]:
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            found[param.name] = str(value)
    return found


def check_scope_request(authorize, spec, profile: Profile) -> None:
    """The entry asks for its scopes the way the provider reads them (parameter name, separator)."""
    if not spec.scopes:
        return
    asked = authorize.query.get(profile.scope_param)
    assert asked is not None, f"the provider reads scopes from {profile.scope_param!r}; the request has " \
                              f"{sorted(k for k in authorize.query if 'scope' in k)}"
    if len(spec.scopes) > 1:
        assert asked.split(profile.scope_separator) == list(spec.scopes), \
            f"scopes joined with {spec.scope_separator!r}; the provider splits on {profile.scope_separator!r}"


def token_stage(flow: Lifecycle, sim: Simulator) -> None:
    response = flow.token()
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["access_token"] == sim.latest_access()
    assert not sim.of("refresh")


def refresh_stage(flow: Lifecycle, sim: Simulator) -> None:
    for count in (1, 2):  # twice: a provider that rotates "sometimes" does it on the second
        held = flow.stored("refresh_token")
        flow.expire()
        response = flow.token()
        refreshes = sim.of("refresh")
        assert len(refreshes) == count, f"expected refresh #{count}; the simulator saw {flow.trace()}"
        assert response.status_code == 200, (response.get_json(), flow.trace())
        check_token_request(refreshes[-1], flow.spec, refresh=True)
        assert refreshes[-1].body.get("refresh_token") == held, "refreshed with the stored refresh token"
        assert response.get_json()["access_token"] == sim.latest_access()
        newest = sim.latest_refresh()
        what = "the rotated one" if newest != held else "the old one (none new was returned)"
        assert flow.stored("refresh_token") == newest, f"refresh #{count}: the stored refresh token must be {what}"
        assert flow.stored("access_token") == sim.latest_access()


def dead_grant_stage(flow: Lifecycle, sim: Simulator, profile: Profile) -> None:
    sim.kill_grants()  # the user removed the app at the provider
    flow.expire()
    if recognises_dead_grant(flow.spec, profile):
        reconnect_stage(flow, profile)
    else:
        retried_with_backoff_stage(flow, sim, profile)


def retried_with_backoff_stage(flow: Lifecycle, sim: Simulator, profile: Profile) -> None:
    """The documented-safe outcome of a refusal the entry does not recognise: the connection is not
    marked (a malformed-request code must not send users to reconnect), the failure is recorded with
    a stable code, and the cooldown keeps the next ask from reaching the provider."""
    code = dead_grant_code(flow.spec, profile)
    response = flow.token()
    row = flow.row()
    assert response.status_code == 503 and "Retry-After" in response.headers, (response.status_code,
                                                                                 response.get_json())
    assert (row.status, row.last_error_code, row.failure_count) == ("active", code, 1), (
        f"status {row.status}, last error {row.last_error_code}, failures {row.failure_count}")
    assert row.cooldown_until is not None and _seconds_from_now(row.cooldown_until) > 0
    asked = len(sim.of("refresh"))
    again = flow.token()
    assert again.status_code == 503 and len(sim.of("refresh")) == asked, "the cooldown did not hold the refresh back"


def reconnect_stage(flow: Lifecycle, profile: Profile) -> None:
    response = flow.token()
    body = response.get_json() or {}
    row = flow.row()
    assert (response.status_code, body.get("code"), row.status) == (409, "reauthorization_required", "needs_reauth"), (
        f"the provider's dead-grant answer {profile.dead_grant.status} {sorted(profile.dead_grant.body)} ended as "
        f"HTTP {response.status_code} {body.get('code')}, status {row.status}, last error {row.last_error_code}")


def revoke_stage(flow: Lifecycle, sim: Simulator, profile: Profile) -> None:
    access, refresh = flow.stored("access_token"), flow.stored("refresh_token")
    response = flow.revoke()
    assert response.status_code == 200, response.get_json()
    remote = response.get_json()["remote_revocation"]
    rule = profile.revocation
    if rule is None:
        assert not sim.of("revoke") and not sim.of("unknown"), f"no revocation is documented: {flow.trace()}"
        assert remote == "not_supported"
        return
    revocations = sim.of("revoke")
    assert len(revocations) == 1, f"one revocation request expected; the simulator saw {flow.trace()}"
    record = revocations[0]
    assert record.method == rule.method
    if rule.style == "github_grant":  # the style itself is Basic client_id:secret
        check_client_auth(record, "client_secret_basic")
    elif rule.style in ("rfc7009", "json_token") and rule.auth in ("basic", "post"):
        check_client_auth(record, flow.spec.revocation_auth or flow.spec.client_auth)
    sent = record.sent_token(rule.style)
    wanted = {"refresh": (refresh,), "access": (access,), "either": (access, refresh)}[rule.token]
    assert sent in wanted, f"the revocation sent the wrong token (the provider takes: {rule.token})"
    assert record.status == rule.ok_status, f"the simulated revocation answered {record.status}: {flow.trace()}"
    assert remote == "done"
    assert not sim.grant_alive(), "the grant is gone at the provider"


# -- the tests ------------------------------------------------------------------------------
@SQLITE_ONLY
def test_connect_stores_the_grant_from_the_providers_answer(flow, sim, profile):
    connect_stage(flow, sim, profile)


@SQLITE_ONLY
def test_token_is_read_through_the_vault_without_a_refresh(flow, sim, profile):
    flow.connected()
    token_stage(flow, sim)


@SQLITE_ONLY
@WITH_REFRESH_TOKENS
def test_refresh_stores_what_the_provider_rotates(flow, sim, profile):
    flow.connected()
    refresh_stage(flow, sim)


@SQLITE_ONLY
@pytest.mark.parametrize("profile", sorted(n for n, p in PROFILES.items() if p.issues_refresh_token
                                           and n not in UNRECOGNISED_DEAD_GRANTS), indirect=True)
def test_dead_grant_marks_the_connection_for_reconnect(flow, sim, profile):
    flow.connected()
    sim.kill_grants()  # the user removed the app at the provider
    flow.expire()
    assert recognises_dead_grant(flow.spec, profile)
    reconnect_stage(flow, profile)


@SQLITE_ONLY
@pytest.mark.parametrize("profile", UNRECOGNISED_DEAD_GRANTS, indirect=True)
def test_an_unrecognised_dead_grant_is_retried_with_backoff_not_marked(flow, sim, profile):
    flow.connected()
    sim.kill_grants()
    flow.expire()
    retried_with_backoff_stage(flow, sim, profile)


def _operator_reauth_override(name: str) -> dict:
    """The operator's providers-file line that makes the observed answer mean "reconnect": its code
    added to reauth_error_codes. Twitch's answer has no code, only a message ("Invalid refresh token"):
    error_shape.field = "message" cannot help, as a message with spaces is never repeated as a code
    (oauth_client.safe_code), so the only override is the generic "provider_error", which also turns
    every other code-less refusal (a wrong client secret) into "reconnect"."""
    spec = catalog_spec(PROFILES[name])
    return {"reauth_error_codes": [*spec.reauth_error_codes, dead_grant_code(spec, PROFILES[name])]}


@SQLITE_ONLY
@pytest.mark.parametrize("profile, operator_entry", [(n, _operator_reauth_override(n))
                                                     for n in UNRECOGNISED_DEAD_GRANTS], indirect=["profile"],
                         ids=UNRECOGNISED_DEAD_GRANTS)
def test_an_operator_override_makes_the_observed_dead_grant_mean_reconnect(flow, sim, profile, operator_entry):
    assert set(flow.spec.reauth_error_codes) == set(operator_entry["reauth_error_codes"]), "the override was loaded"
    flow.connected()
    dead_grant_stage(flow, sim, profile)
    assert flow.row().status == "needs_reauth"


@SQLITE_ONLY
def test_revoke_reaches_the_provider_in_its_style(flow, sim, profile):
    flow.connected()
    revoke_stage(flow, sim, profile)


@SQLITE_ONLY
@pytest.mark.parametrize("profile", sorted(n for n, p in PROFILES.items() if p.revocation and p.revocation.refusal),
                         indirect=True)
def test_a_refused_revocation_is_not_counted_done(flow, sim, profile):
    """The provider's "no" in its own shape (Slack: HTTP 200 {"ok": false}) leaves the revocation
    pending with the provider's code, to be retried; the grant is still alive at the provider."""
    flow.connected()
    sim.refuse_revocations = True
    response = flow.revoke()
    assert response.status_code == 200 and response.get_json()["remote_revocation"] == "pending", (
        response.get_json(), flow.trace())
    assert len(sim.of("revoke")) == 1 and sim.grant_alive()
    refusal = profile.revocation.refusal
    with flow.app.app_context():
        tasks = db.session.scalars(select(RevocationTask)).all()
        assert [t.last_error for t in tasks] == [error_code(flow.spec.error_shape, refusal.body, refusal.status)]


@POSTGRESQL_ONLY
def test_whole_lifecycle_on_postgresql(flow, sim, profile):
    """connect → token → refresh ×2 → dead grant → revoke (of what is still stored), on PostgreSQL."""
    connect_stage(flow, sim, profile)
    token_stage(flow, sim)
    if has_refresh_token(profile):
        refresh_stage(flow, sim)
        dead_grant_stage(flow, sim, profile)
    revoke_stage(flow, sim, profile)


@SQLITE_ONLY
@pytest.mark.parametrize("profile", sorted(n for n, p in PROFILES.items() if p.connect_values), indirect=True)
@pytest.mark.parametrize("hostile", ["evil.example/", "..", "a@evil.example#"])
def test_hostile_connect_param_is_refused_before_anything_leaves(flow, sim, profile, hostile):
    declared = [p.name for p in flow.spec.params if p.source == "connect"]
    assert declared, "the profile has connect values, the entry declares no connect param"
    outcome = flow.connect(**{declared[0]: hostile})
    assert outcome.get("connector_status") == "error", outcome
    assert not sim.records, f"the simulator was reached: {flow.trace()}"
    assert flow.row() is None


@SQLITE_ONLY
@pytest.mark.parametrize("profile", sorted(n for n, p in PROFILES.items() if p.sends_iss), indirect=True)
def test_foreign_iss_on_the_redirect_is_refused_before_the_code_is_used(flow, sim, profile):
    """RFC 9207: a provider that sends iss is checked against the entry's issuer (a mix-up defence)."""
    if flow.spec.issuer is None:
        pytest.fail(f"catalog fact: {profile.entry_name} sends iss but the entry names no issuer to check it against")
    sim.foreign_iss = True
    outcome = flow.connect()
    assert (outcome.get("connector_status"), outcome.get("error")) == ("error", "invalid_callback"), outcome
    assert not sim.of("token"), "the code went to the token endpoint"
    assert flow.row() is None
