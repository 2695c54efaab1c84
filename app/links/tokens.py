"""Reconnect links: a sealed token naming a user, a provider and a return URL, with an expiry.

The token is the keyring's AES-GCM ciphertext of a small JSON document (no database row), bound
by its associated data to this use only, so no other ciphertext of the service can pass as a link
and the user id inside is not readable in the URL.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from flask import current_app

from .. import clock
from ..crypto import Keyring, associated_data
from ..errors import DecryptionError, InvalidRequest

LINK_AAD = associated_data("connect_link", "v1")
MAX_TOKEN_LENGTH = 4096
EPOCH = datetime(1970, 1, 1)
INVALID_LINK, LINK_EXPIRED = "invalid_link", "link_expired"  # problem codes (400)


def link_invalid(description: str) -> InvalidRequest:
    return InvalidRequest(description, code=INVALID_LINK)


@dataclass(frozen=True)
class ConnectLink:
    user_id: str
    provider: str
    return_to: str
    expires_at: datetime  # naive UTC, like every stored time
    scopes: tuple[str, ...] = ()  # to ask for on top of what the connection has (insufficient_scope)

    @property
    def expires_at_iso(self) -> str:
        return self.expires_at.replace(microsecond=0).isoformat() + "Z"


def seal_link(keyring: Keyring, user_id: str, provider: str, return_to: str, ttl: timedelta,
              scopes: tuple[str, ...] = ()) -> tuple[str, ConnectLink]:
    expires_at = (clock.now() + ttl).replace(microsecond=0)
    link = ConnectLink(user_id, provider, return_to, expires_at, tuple(scopes))
    document = {"u": user_id, "p": provider, "r": return_to, "e": int((expires_at - EPOCH).total_seconds())}
    if scopes:
        document["s"] = " ".join(scopes)
    return keyring.encrypt(json.dumps(document, separators=(",", ":")), LINK_AAD), link


def open_link(keyring: Keyring, token: str) -> ConnectLink:
    """The link a token names; a 400 ``invalid_link`` for anything not sealed by us, ``link_expired`` after its time."""
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise link_invalid("this link is not valid: it is malformed; ask for a new one")
    try:
        document = json.loads(keyring.decrypt(token, LINK_AAD))
        link = ConnectLink(document["u"], document["p"], document["r"],
                           EPOCH + timedelta(seconds=int(document["e"])), tuple(document.get("s", "").split()))
    except (DecryptionError, ValueError, KeyError, TypeError, OverflowError, AttributeError):
        raise link_invalid("this link is not valid: it is malformed or was not made by this service; "
                           "ask for a new one") from None
    if not all(isinstance(v, str) for v in (link.user_id, link.provider, link.return_to)):
        raise link_invalid("this link is not valid: it is malformed; ask for a new one")
    if link.expires_at <= clock.now():
        raise InvalidRequest("this link has expired; ask for a new one", code=LINK_EXPIRED)
    return link


def links_enabled(config) -> bool:
    return bool(config.get("ADMIN_CLIENT_ID") and config.get("CONNECT_LINK_DEFAULT_RETURN_URL"))


def link_url(base_url: str, token: str) -> str:
    return f"{base_url}/link/{quote(token, safe='')}"


def create_link(user_id: str, provider: str, return_to: str,
                scopes: tuple[str, ...] = ()) -> tuple[str, ConnectLink]:
    """A link URL for (user, provider) ending at ``return_to`` (already checked), asking for
    ``scopes`` on top of what the connection has; needs an app context."""
    from ..runtime import runtime

    cfg = current_app.config
    token, link = seal_link(runtime().keyring, user_id, provider, return_to,
                            timedelta(seconds=cfg["CONNECT_LINK_TTL"]), scopes)
    return link_url(cfg["PUBLIC_BASE_URL"], token), link


def reconnect_url_for(user_id: str, provider: str, scopes: tuple[str, ...] = ()) -> str | None:
    """A reconnect link for (user, provider) to CONNECT_LINK_DEFAULT_RETURN_URL, or None when links
    are not configured. For the 409 answers, the connections list and the needs_reauth event;
    ``scopes``: the ones a 409 insufficient_scope found missing, asked for when the link is used."""
    if not links_enabled(current_app.config):
        return None
    url, _ = create_link(user_id, provider, current_app.config["CONNECT_LINK_DEFAULT_RETURN_URL"], scopes)
    return url
