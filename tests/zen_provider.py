"""A Zendesk-like provider entry whose every URL carries the connection's ``{subdomain}`` in its path on
a loopback server (the shape of https://{subdomain}.zendesk.com, testable on 127.0.0.1)."""
from __future__ import annotations

import json

SUBDOMAIN_PATTERN = "[a-z0-9][a-z0-9-]{0,62}"
CREDENTIALS = {"ZEN_CLIENT_ID": "zen-client", "ZEN_CLIENT_SECRET": "zen-secret"}


def zen_toml(base_url: str, **extra: object) -> str:
    entry = {
        "display_name": "Zen Desk",
        "params": {"subdomain": {"pattern": SUBDOMAIN_PATTERN, "source": "connect",
                                 "description": "your Zen Desk subdomain"}},
        "authorize_url": f"{base_url}/{{subdomain}}/oauth/authorizations/new",
        "token_url": f"{base_url}/{{subdomain}}/oauth/tokens",
        "api_base_url": f"{base_url}/{{subdomain}}/api/v2/",
        "revocation_url": f"{base_url}/{{subdomain}}/api/v2/oauth/tokens/current.json",
        "revocation_style": "bearer",
        "revocation_method": "DELETE",
        "revocation_token": "access",
        "client_auth": "client_secret_post",
        "pkce": False,
        **extra,
    }
    return "[zen]\n" + "".join(f"{key} = {_toml(value)}\n" for key, value in entry.items())


def _toml(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)  # strings, booleans, numbers and lists of strings read the same in TOML
