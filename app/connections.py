"""Storing a connection's tokens, encrypted and bound to their row."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import clock
from .crypto import Keyring
from .extensions import db
from .models import ACTIVE, Connection, new_id
from .oauth_client import TokenResponse


def seal_tokens(connection: Connection, keyring: Keyring, token: TokenResponse, *, keep_refresh: bool) -> None:
    """Encrypt ``token`` into ``connection``; ``keep_refresh`` keeps the old refresh token when none arrived."""
    connection.access_token_enc = keyring.encrypt(token.access_token, connection.aad("access_token"))
    if token.refresh_token is not None:
        connection.refresh_token_enc = keyring.encrypt(token.refresh_token, connection.aad("refresh_token"))
    elif not keep_refresh:
        connection.refresh_token_enc = None
    elif connection.refresh_token_enc and keyring.needs_rotation(connection.refresh_token_enc):
        plain = keyring.decrypt(connection.refresh_token_enc, connection.aad("refresh_token"))
        connection.refresh_token_enc = keyring.encrypt(plain, connection.aad("refresh_token"))
    connection.key_id = keyring.primary_id
    connection.token_type = token.token_type
    connection.access_token_expires_at = token.expires_at
    connection.scopes = " ".join(token.scopes)


def upsert_connection(user_id: str, provider: str, token: TokenResponse, keyring: Keyring,
                      external_account_id: str | None) -> Connection:
    """Create or replace the (user, provider) connection; the caller commits."""
    for attempt in range(2):
        connection = db.session.scalar(
            select(Connection).where(Connection.user_id == user_id, Connection.provider == provider)
        )
        if connection is not None:
            return _connected(connection, token, keyring, external_account_id)
        # Complete before the first flush: on SQLite the savepoint's release can make the row
        # visible (and durable) before the caller commits, so it must never exist half-filled.
        connection = _connected(Connection(id=new_id(), user_id=user_id, provider=provider),
                                token, keyring, external_account_id)
        try:
            with db.session.begin_nested():
                db.session.add(connection)
                db.session.flush()
            return connection
        except IntegrityError:
            if attempt:
                raise
            # a concurrent callback created it: update that row instead
    raise AssertionError("unreachable")


def _connected(connection: Connection, token: TokenResponse, keyring: Keyring,
               external_account_id: str | None) -> Connection:
    seal_tokens(connection, keyring, token, keep_refresh=False)
    connection.status = ACTIVE
    connection.external_account_id = external_account_id
    connection.connected_at = clock.now()
    connection.last_refreshed_at = None
    connection.last_error_code = None
    connection.failure_count = 0
    connection.cooldown_until = None
    connection.revoked_at = None
    connection.remote_revocation = None
    # A refresh still running with the old grant must not store its result over the new one.
    connection.lease_owner = None
    connection.lease_expires_at = None
    return connection
