"""Load the catalog and the operator's providers file; resolve OIDC discovery lazily."""
from __future__ import annotations

import dataclasses
import logging
import threading
import tomllib
from collections.abc import Mapping
from importlib import resources

import requests

from ..errors import ProviderUnavailable, UnknownProvider
from ..http import get_json, new_session
from .providers_file import read_providers_file
from .spec import ProviderSpec, SpecError, spec_from_mapping

log = logging.getLogger(__name__)


def read_entries(path: str) -> dict:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) providers file."""
    return read_providers_file(path).entries


def load_specs(providers_file: str | None, extra: Mapping[str, dict] | None = None) -> dict[str, ProviderSpec]:
    """The catalog, overridden key by key by ``extra`` and the providers file, each entry validated."""
    catalog = tomllib.loads(resources.files(__package__).joinpath("catalog.toml").read_text("utf-8"))
    entries = {name: dict(entry) for name, entry in catalog.items()}
    overrides = dict(extra or {})
    file = read_providers_file(providers_file) if providers_file else None
    if file is not None:
        overrides.update(file.entries)
    for name, entry in overrides.items():
        entries[name] = {**entries.get(name, {}), **entry} if isinstance(entry, dict) else entry
    specs, errors = {}, []
    for name, entry in entries.items():
        try:
            specs[name] = spec_from_mapping(name, entry)
        except SpecError as exc:
            errors.append(file.locate(exc) if file is not None and exc.provider in file.entries else exc)
    if errors:  # every broken entry at once, so one edit can fix them all
        more = f" (and {len(errors) - 3} more providers)" if len(errors) > 3 else ""
        raise SpecError("; ".join(str(error) for error in errors[:3]) + more, errors[0].provider, errors[0].problems)
    return specs


class ProviderRegistry:
    def __init__(self, specs: Mapping[str, ProviderSpec], credentials: Mapping[str, str],
                 timeout: tuple[float, float]):
        self._timeout = timeout
        self._lock = threading.Lock()
        self._session = new_session()
        self._specs: dict[str, ProviderSpec] = {}
        for name, spec in specs.items():
            prefix = name.upper()
            self._specs[name] = dataclasses.replace(
                spec,
                client_id=credentials.get(f"{prefix}_CLIENT_ID") or None,
                client_secret=credentials.get(f"{prefix}_CLIENT_SECRET") or None,
            )

    def enabled(self) -> list[ProviderSpec]:
        return [spec for spec in self._specs.values() if spec.enabled]

    def spec(self, name: str) -> ProviderSpec | None:
        """The spec as configured, enabled or not, resolved if discovery works; None if unknown."""
        spec = self._specs.get(name)
        if spec is not None and spec.enabled and spec.needs_discovery:
            try:
                return self._discover(spec)
            except ProviderUnavailable:
                return spec
        return spec

    def get(self, name: str | None) -> ProviderSpec:
        """The enabled, fully resolved spec; ``UnknownProvider`` otherwise."""
        spec = self._specs.get(name or "")
        if spec is None or not spec.enabled:
            raise UnknownProvider(f"provider {str(name)[:64]!r} is unknown or not enabled")
        if spec.needs_discovery:
            spec = self._discover(spec)
        return spec

    def _discover(self, spec: ProviderSpec) -> ProviderSpec:
        with self._lock:
            current = self._specs[spec.name]
            if not current.needs_discovery:
                return current
            url = spec.issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                meta = get_json(self._session, url, self._timeout)
            except (requests.RequestException, ValueError, RecursionError) as exc:
                log.warning("discovery for provider %s failed: %s", spec.name, type(exc).__name__)
                raise ProviderUnavailable(f"discovery for provider {spec.name!r} failed") from None
            resolved = apply_discovery(spec, meta)
            self._specs[spec.name] = resolved
            return resolved


def apply_discovery(spec: ProviderSpec, meta: dict) -> ProviderSpec:
    """Fill what the providers file left out from RFC 8414 / OIDC discovery metadata; the merged entry is
    validated by the same schema as a providers file."""
    if meta.get("issuer") != spec.issuer:
        raise ProviderUnavailable(f"discovery for provider {spec.name!r} names a different issuer")
    if spec.entry is None:  # built in code, not from an entry: nothing to validate discovery against
        raise ProviderUnavailable(f"provider {spec.name!r} has no entry to complete by discovery")
    entry = spec.entry.model_dump(exclude_unset=True)
    found: dict = {
        "authorize_url": spec.authorize_url or meta.get("authorization_endpoint"),
        "token_url": spec.token_url or meta.get("token_endpoint"),
        "sends_iss": spec.sends_iss or meta.get("authorization_response_iss_parameter_supported") is True,
    }
    if spec.revocation_url is None and meta.get("revocation_endpoint"):
        found["revocation_url"] = meta["revocation_endpoint"]
        found["revocation_style"] = "rfc7009"
    if spec.account_id_source == "userinfo" and spec.account_id_url is None:
        found["account_id"] = {**entry.get("account_id", {"source": "userinfo"}), "url": meta.get("userinfo_endpoint")}
    methods = meta.get("token_endpoint_auth_methods_supported")
    if not isinstance(methods, list) or not methods:  # absent, or of the wrong shape: RFC 8414's default
        methods = ["client_secret_basic"]
    if spec.client_auth not in methods and "client_secret_post" in methods:
        found["client_auth"] = "client_secret_post"
    try:
        resolved = spec_from_mapping(spec.name, {**entry, **found})
    except SpecError as exc:
        raise ProviderUnavailable(f"discovery for provider {spec.name!r} is unusable: {exc}") from None
    if resolved.needs_discovery:
        raise ProviderUnavailable(f"discovery for provider {spec.name!r} names no authorization or token endpoint")
    return dataclasses.replace(resolved, client_id=spec.client_id, client_secret=spec.client_secret)
