"""Driving one catalog entry through the connector against the simulator of its provider.

``simulator_entry`` is what an operator's providers file would say to point the catalog entry
at other hosts: only its URLs change (``https://host/path`` → the simulator's
``http://127.0.0.1:<port>/host/path``); every quirk of the entry stays as the catalog has it.
``Lifecycle`` runs the real flow: /connect/start → the simulator's authorize (real HTTP) →
/connect/callback/<name> → the M2M token API → the M2M revoke API.
"""
from __future__ import annotations

import tomllib
from datetime import timedelta
from importlib import resources
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml
from sqlalchemy import select, update

from app import clock
from app.extensions import db
from app.models import Connection
from app.providers import ProviderSpec
from tests.conftest import APP_ORIGIN, BASE_URL, RETURN_URL
from tests.provider_sim.profile import Profile, to_loopback
from tests.provider_sim.server import Simulator
from tests.provider_sim.wire import Recorded

URL_KEYS = ("authorize_url", "token_url", "refresh_url", "revocation_url", "api_base_url", "issuer")
USER = "auth0|conformance"


def client_credentials(name: str) -> tuple[str, str]:
    return f"{name}-client", f"{name}-secret-value"


def catalog_entry(name: str) -> dict:
    catalog = tomllib.loads(resources.files("app.providers").joinpath("catalog.toml").read_text("utf-8"))
    if name not in catalog:
        pytest.fail(f"catalog fact: the catalog has no {name!r} entry")
    return catalog[name]


def simulator_entry(entry: dict, base: str) -> dict:
    """The override entry: the catalog entry's URLs on the simulator, nothing else changed."""
    override = {key: to_loopback(entry[key], base) for key in URL_KEYS if isinstance(entry.get(key), str)}
    account = entry.get("account_id")
    if isinstance(account, dict) and isinstance(account.get("url"), str):
        override["account_id"] = {**account, "url": to_loopback(account["url"], base)}
    return override


def providers_file(tmp_path, profile: Profile, sim: Simulator, operator: dict | None = None) -> str:
    """The operator's providers file for this run: the profile's variant overrides (if any), what
    the ``operator`` adds (``reauth_error_codes`` for a provider whose dead grant is only observed),
    and the entry's URLs on the simulator."""
    variant = {**dict(profile.entry_override), **(operator or {})}
    entry = {**catalog_entry(profile.entry_name), **variant}
    path = tmp_path / "providers.yaml"
    path.write_text(yaml.safe_dump({profile.entry_name: {**variant, **simulator_entry(entry, sim.url)}}))
    return str(path)


class Lifecycle:
    def __init__(self, app, client, auth0, sim: Simulator, spec: ProviderSpec, profile: Profile):
        self.app, self.client, self.auth0, self.sim, self.spec, self.profile = app, client, auth0, sim, spec, profile
        self.name = spec.name

    # -- steps -------------------------------------------------------------------------------
    def connect(self, **values: str) -> dict[str, str]:
        """The whole connect (``values`` replace the profile's connect values); returns the outcome
        the app's return URL gets."""
        form = {"access_token": self.auth0.token(USER), "provider": self.name, "return_to": RETURN_URL,
                **self.connect_values(), **values}
        start = self.client.post("/connect/start", data=form, headers={"Origin": APP_ORIGIN}, base_url=BASE_URL)
        assert start.status_code == 303, start.get_data(as_text=True)[:300]
        authorize = start.headers["Location"]
        if authorize.startswith(RETURN_URL):  # refused at the start
            return {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
        assert authorize.startswith(self.sim.url + "/"), f"connect start went to {authorize.split('?')[0]!r}"
        at_provider = requests.get(authorize, allow_redirects=False, timeout=5)
        assert at_provider.status_code == 302, (
            f"the simulated authorize endpoint answered {at_provider.status_code} at {urlsplit(authorize).path}")
        back = urlsplit(at_provider.headers["Location"])
        callback = self.client.get(f"{back.path}?{back.query}", base_url=BASE_URL)
        assert callback.status_code == 303, callback.get_data(as_text=True)[:300]
        location = callback.headers["Location"]
        assert location.startswith(RETURN_URL), location
        return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}

    def connected(self) -> None:
        outcome = self.connect()
        assert outcome.get("connector_status") == "connected", (
            f"connect ended {outcome}; the simulator saw {self.trace()}")

    def token(self, **query) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.auth0.m2m_token('read:tokens delete:connections')}"}
        return self.client.post(f"/api/users/{USER}/connections/{self.name}/token", headers=headers,
                                query_string=query, base_url=BASE_URL)

    def revoke(self):
        headers = {"Authorization": f"Bearer {self.auth0.m2m_token('read:tokens delete:connections')}"}
        return self.client.delete(f"/api/users/{USER}/connections/{self.name}", headers=headers, base_url=BASE_URL)

    def expire(self) -> None:
        """Make the stored access token look expired, as time passing would."""
        with self.app.app_context():
            db.session.execute(update(Connection).where(Connection.user_id == USER)
                               .values(access_token_expires_at=clock.now() - timedelta(minutes=5)))
            db.session.commit()

    # -- reading -----------------------------------------------------------------------------
    def connect_values(self) -> dict[str, str]:
        values = dict(self.profile.connect_values)
        wanted = [p.name for p in getattr(self.spec, "params", ()) if p.source == "connect"]
        missing = [name for name in wanted if name not in values]
        assert not missing, f"the profile has no value for the entry's connect param(s) {missing}"
        return {name: values[name] for name in wanted}

    def row(self) -> Connection:
        with self.app.app_context():
            row = db.session.scalar(select(Connection).where(Connection.user_id == USER))
            db.session.expunge_all()
            return row

    def stored(self, column: str) -> str | None:
        """A token as stored (``access_token`` or ``refresh_token``), decrypted."""
        with self.app.app_context():
            row = db.session.scalar(select(Connection).where(Connection.user_id == USER))
            sealed = getattr(row, f"{column}_enc")
            return None if sealed is None else self.app.extensions["connector"].keyring.decrypt(sealed, row.aad(column))

    def trace(self) -> list[str]:
        """What the simulator received, without token values: for failure messages."""
        return [f"{r.kind} {r.method} {r.path.split('/', 2)[-1][:60]} -> {r.status}" for r in self.sim.records]


# -- request-shape checks (against the ENTRY: the connector must do what its entry says) -------
def check_client_auth(record: Recorded, method: str) -> None:
    expected = {"client_secret_basic": "basic", "client_secret_post": "post"}[method]
    assert record.client_auth == expected, f"client auth sent as {record.client_auth}, the entry says {method}"


def check_body_format(record: Recorded, spec: ProviderSpec) -> None:
    fmt = getattr(spec, "token_body_format", "form")
    expected = "application/json" if fmt == "json" else "application/x-www-form-urlencoded"
    assert record.content_type == expected, f"token request body {record.content_type!r}, the entry says {fmt}"


def check_token_request(record: Recorded, spec: ProviderSpec, *, refresh: bool) -> None:
    check_client_auth(record, spec.client_auth)
    check_body_format(record, spec)
    for name, value in getattr(spec, "token_request_headers", ()):
        assert record.headers.get(name) == value, f"header {name} missing from the token request"
    extra = getattr(spec, "refresh_params" if refresh else "token_params", ())
    for name, value in extra:
        assert record.body.get(name) == value, f"extra parameter {name} missing from the token request"
    if refresh:
        wants_redirect = getattr(spec, "refresh_sends_redirect_uri", False)
        assert ("redirect_uri" in record.body) == wants_redirect, "redirect_uri on refresh differs from the entry"
    else:
        assert ("code_verifier" in record.body) == spec.pkce, "code_verifier sent iff the entry says pkce"
