"""The one write path for a connection's token material: seal, store a refresh, wipe, re-key.

Every write is one conditional UPDATE that names what the writer last saw: the row's
``version`` (bumped by every write here), or, for a refresh, the refresh token it refreshed
from and its lease. A writer that lost a race gets ``False`` and re-reads or gives up; it
never overwrites what another writer stored since (a revoke, a reconnect, a rotated
refresh token). Nothing else writes the token columns.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from sqlalchemy import bindparam, update

from .crypto import Keyring
from .extensions import db
from .models import ACTIVE, Connection
from .oauth_client import TokenResponse

TOKEN_COLUMNS = ("access_token_enc", "refresh_token_enc", "key_id", "token_type", "access_token_expires_at",
                 "scopes")


@dataclass(frozen=True)
class Opened:
    """A row's tokens in clear, as read at ``version``."""

    version: int
    access: str | None = field(repr=False)
    refresh: str | None = field(repr=False)


class TokenStore:
    def __init__(self, keyring: Keyring):
        self.keyring = keyring

    # -- reading -------------------------------------------------------------------------
    def open(self, row: Connection, column: str) -> str | None:
        """Decrypt one token column (``access_token`` or ``refresh_token``); ``DecryptionError``."""
        sealed = getattr(row, f"{column}_enc")
        return None if sealed is None else self.keyring.decrypt(sealed, row.aad(column))

    def open_all(self, row: Connection) -> Opened:
        return Opened(row.version or 0, self.open(row, "access_token"), self.open(row, "refresh_token"))

    # -- sealing -------------------------------------------------------------------------
    def sealed(self, row, token: TokenResponse, *, keep_refresh: str | None = None) -> dict:
        """Column values for ``token`` on ``row``. ``keep_refresh``: the refresh token to keep (in
        clear) when the response carries none; it is sealed again with the current key."""
        refresh = token.refresh_token if token.refresh_token is not None else keep_refresh
        return {
            "access_token_enc": self.keyring.encrypt(token.access_token, row.aad("access_token")),
            "refresh_token_enc": None if refresh is None else self.keyring.encrypt(refresh, row.aad("refresh_token")),
            "key_id": self.keyring.primary_id,
            "token_type": token.token_type,
            "access_token_expires_at": token.expires_at,
            "scopes": " ".join(token.scopes),
        }

    # -- writing -------------------------------------------------------------------------
    def _write(self, row, values: dict, *conditions) -> bool:
        """One UPDATE of ``row`` under ``conditions``; the loaded object forgets what it wrote."""
        result = db.session.execute(
            update(Connection).where(Connection.id == row.id, *conditions)
            .values(**values, version=Connection.version + 1)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            return False
        if isinstance(row, Connection) and row in db.session:  # not a row read outside the session
            db.session.expire(row, [*values, "version"])
        return True

    def replace(self, row: Connection, seen_version: int, values: dict) -> bool:
        """Write ``values`` (token columns from ``sealed`` and any others) if the row is still at
        ``seen_version``. The caller commits."""
        return self._write(row, values, Connection.version == seen_version)

    def store_refreshed(self, row, refreshed_from: str, owner: str, values: dict) -> bool:
        """A refresh's result, only onto the row it refreshed: still active, still leased by
        ``owner`` and still holding ``refreshed_from`` (the refresh token's ciphertext the refresh
        used). Releases the lease in the same statement. The caller commits.

        The hottest write (every refresh of a sweep): a statement built once per set of columns and
        executed with parameters, so SQLAlchemy neither builds nor compiles it again."""
        values = {**values, "lease_owner": None, "lease_expires_at": None}
        params = {f"set_{name}": value for name, value in values.items()}
        params.update(where_id=row.id, where_owner=owner, where_from=refreshed_from)
        result = db.session.connection().execute(_refreshed_statement(tuple(sorted(values))), params)
        if result.rowcount != 1:
            return False
        if isinstance(row, Connection) and row in db.session:
            db.session.expire(row, [*values, "version"])
        return True

    def wipe(self, row: Connection, seen_version: int, values: dict) -> bool:
        """Remove both tokens (and write ``values``, e.g. the revoked status) if the row is still at
        ``seen_version``. The caller commits."""
        return self._write(row, {**values, "access_token_enc": None, "refresh_token_enc": None},
                           Connection.version == seen_version)

    def rekey(self, row: Connection) -> bool:
        """Seal ``row``'s tokens again with the current key. Not while a refresh holds its lease,
        even an expired one (its holder may still be storing a result conditional on the refresh
        token's ciphertext; it seals with the current key itself), and not over anything written
        since the row was read. ``DecryptionError`` when a token's key is gone. The caller commits."""
        opened = self.open_all(row)
        values = {"key_id": self.keyring.primary_id}
        for column, plain in (("access_token", opened.access), ("refresh_token", opened.refresh)):
            if plain is not None:
                values[f"{column}_enc"] = self.keyring.encrypt(plain, row.aad(column))
        return self._write(row, values, Connection.version == opened.version, Connection.lease_owner.is_(None))


@lru_cache(maxsize=32)
def _refreshed_statement(columns: tuple[str, ...]):
    """``store_refreshed``'s UPDATE for this set of columns, with bound parameters only."""
    table = Connection.__table__
    return (update(table)
            .where(table.c.id == bindparam("where_id"), table.c.status == ACTIVE,
                   table.c.lease_owner == bindparam("where_owner"),
                   table.c.refresh_token_enc == bindparam("where_from"))
            .values({**{name: bindparam(f"set_{name}") for name in columns}, "version": table.c.version + 1}))
