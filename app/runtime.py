"""The service objects built once per app, reachable from request handlers and CLI."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from flask import Flask, current_app

from config import LOOPBACK_HOSTS, ConfigError

from .connect.flow import ConnectContext
from .connect.return_url import ReturnUrlPolicy
from .crypto import Keyring
from .identity import AccessTokenVerifier, JwksCache
from .providers import ProviderRegistry
from .providers.registry import load_specs
from .providers.spec import SpecError

STORE_MARGIN = 5.0  # seconds: the clock skew between processes, and the last store attempt's overrun


@dataclass(frozen=True)
class VaultSettings:
    min_ttl: timedelta  # default: refresh when the access token expires sooner than this
    lease: timedelta  # how long a refresher may hold a connection before others may take over
    wait: timedelta  # how long a caller waits for another caller's refresh
    backoff_base: float  # seconds after the first transient failure; doubles per failure
    backoff_max: float
    # How long a refresher keeps trying to store a result in hand (the database down or locked);
    # a lease is taken over only once its holder's storing window is over too (``takeover_after``).
    store_deadline: float = 120.0

    @property
    def takeover_after(self) -> timedelta:
        """How long after a lease's expiry another refresher may take it over."""
        return timedelta(seconds=self.store_deadline + STORE_MARGIN)


@dataclass
class Runtime:
    keyring: Keyring
    verifier: AccessTokenVerifier
    registry: ProviderRegistry
    return_urls: ReturnUrlPolicy
    connect: ConnectContext
    vault: VaultSettings

    @property
    def timeout(self) -> tuple[float, float]:
        return self.connect.timeout


def build_runtime(app: Flask, extra_providers: dict | None = None, extra_credentials: dict | None = None) -> Runtime:
    cfg = app.config
    timeout = (cfg["PROVIDER_CONNECT_TIMEOUT"], cfg["PROVIDER_READ_TIMEOUT"])
    keyring = Keyring(cfg["TOKEN_ENCRYPTION_KEYS"])
    jwks = JwksCache(cfg["AUTH0_ISSUER"], cfg["AUTH0_JWKS_URL"], cooldown=cfg["JWKS_REFETCH_COOLDOWN"], timeout=timeout)
    credentials = {**(extra_credentials or {}), **cfg["PROVIDER_CREDENTIALS_ENV"]}
    try:
        specs = load_specs(cfg["CONNECTOR_PROVIDERS_FILE"], extra_providers)
    except SpecError as exc:
        raise ConfigError(f"CONNECTOR_PROVIDERS_FILE: {exc}") from None
    try:
        return_urls = ReturnUrlPolicy(cfg["CONNECT_ALLOWED_RETURN_URLS"])
    except ValueError as exc:
        raise ConfigError(f"CONNECT_ALLOWED_RETURN_URLS: {exc}") from None
    registry = ProviderRegistry(specs, credentials, timeout)
    base_url = cfg["PUBLIC_BASE_URL"]
    # The same test config.py applies to PUBLIC_BASE_URL: parsed, never by substring ("http://[::1]:5000").
    parts = urlsplit(base_url)
    secure = not (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)
    connect = ConnectContext(
        registry=registry, keyring=keyring, redirect_uri=f"{base_url}/connect/callback", timeout=timeout,
        secure_cookies=secure,
    )
    # A lease outlives the slowest provider call, so it is taken over only when its holder died.
    lease = timedelta(seconds=timeout[0] + timeout[1] + 5)
    vault = VaultSettings(min_ttl=timedelta(seconds=cfg["VAULT_MIN_TTL"]), lease=lease,
                          wait=lease + timedelta(seconds=5), backoff_base=cfg["REFRESH_BACKOFF_BASE"],
                          backoff_max=cfg["REFRESH_BACKOFF_MAX"], store_deadline=cfg["VAULT_STORE_DEADLINE"])
    return Runtime(keyring, AccessTokenVerifier(jwks, cfg["AUTH0_AUDIENCE"]), registry, return_urls, connect, vault)


def log_enabled_providers(app: Flask, registry: ProviderRegistry) -> None:
    """Say at start-up which providers can be connected (names only), so a missing pair of credentials shows."""
    if app.logger.level == logging.NOTSET:
        app.logger.setLevel(logging.INFO)  # start-up facts are worth a line; nothing logs at INFO per request
    names = ", ".join(sorted(spec.name for spec in registry.enabled()))
    if names:
        app.logger.info("providers enabled: %s", names)
    else:
        app.logger.warning("no provider is enabled: set <NAME>_CLIENT_ID and <NAME>_CLIENT_SECRET for one")


def runtime() -> Runtime:
    return current_app.extensions["connector"]
