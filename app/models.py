"""Storage: connections, the ids of used connect attempts, and the audit trail.

Token columns hold ciphertexts only (see ``app.crypto``); ``*_aad`` methods give
the associated data that binds each ciphertext to its row and field.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.functions import FunctionElement

from . import clock
from .crypto import associated_data
from .extensions import db

ACTIVE, NEEDS_REAUTH, REVOKED = "active", "needs_reauth", "revoked"


def new_id() -> str:
    return uuid.uuid4().hex


class search_key(FunctionElement):  # noqa: N801  (used like SQL's own functions)
    """``lower(x)``, compared and sorted by code point on every database (the admin console's user search).

    PostgreSQL: ``lower(x COLLATE "C")``, whose result has collation "C" (byte order, which for UTF-8 is
    code-point order), so a prefix is one index range whatever the database's collation. (Collated
    inside, not ``lower(x) COLLATE "C"``: reflection drops an index column's own collation, and Alembic
    would then see the index as changed.) SQLite compares text by code point already.
    """

    type = String()
    name = "search_key"
    inherit_cache = True


@compiles(search_key)
def _search_key(element, compiler, **kw) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(search_key, "postgresql")
def _search_key_postgresql(element, compiler, **kw) -> str:
    return f'lower({compiler.process(element.clauses, **kw)} COLLATE "C")'


def _now() -> datetime:
    """``clock.now`` looked up at each insert, not bound at import: a test that replaces
    ``clock.now`` moves ``created_at``, ``at`` and ``next_attempt_at`` too."""
    return clock.now()


class Connection(db.Model):
    __tablename__ = "connections"
    __table_args__ = (
        UniqueConstraint("user_id", "provider", name="uq_connections_user_provider"),
        Index("ix_connections_refresh_due", "status", "access_token_expires_at"),
        # Keyset pagination for the admin console: newest first, optionally within a provider or status.
        Index("ix_connections_created", "created_at", "id"),
        Index("ix_connections_provider_created", "provider", "created_at", "id"),
        Index("ix_connections_status_created", "status", "created_at", "id"),
        Index("ix_connections_provider_status", "provider", "status"),  # /metrics: one GROUP BY, index-only
        # The console's user search: a case-insensitive prefix of the user id, listed by user id.
        # One index range in order, so every page costs the same however many users match.
        Index("ix_connections_user_id_lower", search_key(text("user_id")), "id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    provider: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE, index=True)
    external_account_id: Mapped[str | None] = mapped_column(String(255))
    scopes: Mapped[str] = mapped_column(Text, default="")
    token_type: Mapped[str | None] = mapped_column(String(32))
    access_token_enc: Mapped[str | None] = mapped_column(Text)
    refresh_token_enc: Mapped[str | None] = mapped_column(Text)
    key_id: Mapped[str | None] = mapped_column(String(32), index=True)
    access_token_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    connected_at: Mapped[datetime] = mapped_column(DateTime, default=_now)
    last_refreshed_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_error_code: Mapped[str | None] = mapped_column(String(64))
    # Refresh single-flight: a short lease (owner + expiry) instead of a lock held across the provider call.
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Back-off after transient provider failures: at most one attempt per window.
    failure_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cooldown_until: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    # done | pending | failed | not_supported (the access token stays valid until it expires)
    remote_revocation: Mapped[str | None] = mapped_column(String(16))
    # Bumped by every write of token material (app.token_store): a writer that read an older
    # version fails instead of overwriting what was written since.
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When the refresh token dies whatever we do (provider's refresh_token_expires_in, or the spec's
    # absolute lifetime) and, separately, if unused (the spec's idle lifetime); see app/refresh_expiry.py.
    refresh_token_expires_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    refresh_token_idle_expires_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    refresh_token_expiry_warned_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=_now, onupdate=_now)

    def aad(self, field: str) -> bytes:
        return associated_data("connection", self.id, self.user_id, self.provider, field)

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split() if self.scopes else []


class UsedConnectAttempt(db.Model):
    """A connect attempt whose callback was accepted: its id, kept until the attempt has expired.

    The attempt itself lives sealed in the browser (``app.connect.attempt``); the unique insert of its
    id here is what makes a callback single-use, even for two callbacks at the same moment."""

    __tablename__ = "connect_attempts_used"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class AdminSignInState(db.Model):
    """An admin sign-in in progress: what Authlib keeps between the redirect to Auth0 and the
    callback (state, nonce, PKCE verifier, redirect URI), encrypted here rather than readable in the
    browser's session cookie, which only records that this sign-in exists."""

    __tablename__ = "admin_sign_in_states"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    value_enc: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)

    def aad(self) -> bytes:
        return associated_data("admin_sign_in_state", self.key_hash, "value")


class RevocationTask(db.Model):
    """A remote revocation still to do. Holds the one token needed for it, encrypted, and is
    deleted (token and all) when the provider confirms or the attempts run out."""

    __tablename__ = "revocation_tasks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    connection_id: Mapped[str] = mapped_column(String(32), index=True)
    user_id: Mapped[str] = mapped_column(String(255))
    provider: Mapped[str] = mapped_column(String(64))
    token_enc: Mapped[str] = mapped_column(Text)
    token_type_hint: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=_now, index=True)
    last_error: Mapped[str | None] = mapped_column(String(64))
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)

    def aad(self) -> bytes:
        return associated_data("revocation_task", self.id, self.user_id, self.provider, "token")


class AuditEvent(db.Model):
    """Who did what to which connection, and how it ended. Never token material."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_user_provider", "user_id", "provider"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=_now, index=True)
    actor_type: Mapped[str] = mapped_column(String(16))  # user | m2m | admin | system
    actor_id: Mapped[str | None] = mapped_column(String(255), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str | None] = mapped_column(String(255))
    provider: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict | None] = mapped_column(JSON)
    request_id: Mapped[str | None] = mapped_column(String(128))  # the X-Request-ID of the request


class AdminSession(db.Model):
    """A signed-in operator. The cookie carries a random id whose hash is the key here, so
    logging out (deleting the row) kills the cookie everywhere, stolen copies included."""

    __tablename__ = "admin_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    sub: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class AdminLoginAttempt(db.Model):
    """One admin sign-in step from a client address, for throttling (old rows are purged)."""

    __tablename__ = "admin_login_attempts"
    __table_args__ = (Index("ix_admin_login_attempts_client_at", "client", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime, default=_now)
    outcome: Mapped[str] = mapped_column(String(16))  # started | succeeded | failed


AUDIT_HOOKS: list = []  # called with each new AuditEvent (app.observability: metrics, log line, request id)


def record_audit(action: str, outcome: str, *, actor_type: str, actor_id: str | None = None,
                 user_id: str | None = None, provider: str | None = None, **detail: str) -> AuditEvent:
    """Add an audit event to the current session; the caller commits."""
    event = AuditEvent(action=action, outcome=outcome, actor_type=actor_type, actor_id=actor_id,
                       user_id=user_id, provider=provider, detail=detail or None)
    for hook in AUDIT_HOOKS:
        hook(event)
    db.session.add(event)
    return event


class RefreshObservation(db.Model):
    """One refresh's outcome and duration, written in the refresh's own transaction (append-only, no
    hot row); ``app.refresh_stats.rollup_refresh_stats`` folds them into ``RefreshRollup`` and deletes them."""

    __tablename__ = "refresh_observations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=clock.now)
    provider: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    duration_ms: Mapped[int | None] = mapped_column(Integer)


class RefreshRollup(db.Model):
    """Refreshes per hour, provider, outcome and duration bucket (``le_ms``: the bucket's upper bound
    in milliseconds; see ``app.refresh_stats``). A few thousand rows a week, whatever the traffic."""

    __tablename__ = "refresh_rollups"

    hour: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(32), primary_key=True)
    le_ms: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(Integer, default=0)


class ConnectionCount(db.Model):
    """Connections per provider and status, counted by the worker (``app.refresh_stats``) every few
    minutes, so the dashboard reads a handful of rows instead of counting a million."""

    __tablename__ = "connection_counts"

    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    counted_at: Mapped[datetime] = mapped_column(DateTime)


from .events.model import Event  # noqa: E402,F401  (the events outbox; registers its table)
