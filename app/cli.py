"""``flask connector ...`` operator commands.

When the configuration is broken, the flask CLI still gets an app (``unconfigured_app``) so that
``--help`` and ``connector generate-key`` work on an empty environment; every other command lists the
configuration's problems and exits with ``EXIT_CONFIGURATION_ERROR``.
"""
from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable
from datetime import timedelta

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup
from sqlalchemy import func, or_, select

from config import ConfigError

from . import clock
from .crypto import Keyring, generate_key
from .errors import DecryptionError
from .extensions import db
from .models import Connection, RevocationTask
from .runtime import runtime
from .token_store import TokenStore

# Gunicorn's arbiter halts ("App failed to load") when a worker exits with 4, instead of restarting it forever.
EXIT_CONFIGURATION_ERROR = 4
CONFIGURATION_ERROR = "connector.configuration_error"  # app.extensions key of an unconfigured app


def report_configuration_error(error: ConfigError) -> None:
    """One stderr line per problem (the lines never carry a secret)."""
    for line in error.problems:
        print(f"configuration error: {line}", file=sys.stderr, flush=True)


def _stop(error: ConfigError) -> None:
    report_configuration_error(error)
    raise click.exceptions.Exit(EXIT_CONFIGURATION_ERROR)


def _refuse_unconfigured() -> None:
    error = current_app.extensions.get(CONFIGURATION_ERROR)
    if error is not None:
        _stop(error)


class ConnectorGroup(AppGroup):
    """Commands need a valid configuration unless declared with ``needs_configuration=False``."""

    def command(self, *args, needs_configuration: bool = True, **kwargs):
        register = super().command(*args, **kwargs)

        def decorator(f: Callable) -> click.Command:
            if needs_configuration:
                @functools.wraps(f)
                def configured(*f_args, **f_kwargs):
                    _refuse_unconfigured()
                    return f(*f_args, **f_kwargs)

                return register(configured)
            return register(f)

        return decorator


class _UnconfiguredCli(AppGroup):
    """The CLI of an unconfigured app: any command it does not know (``db``, ...) reports the problems."""

    def __init__(self, name: str, error: ConfigError) -> None:
        super().__init__(name)
        self.error = error

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        return click.Command(name, callback=functools.partial(_stop, self.error), add_help_option=False,
                             hidden=True, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})


def loaded_by_flask_cli() -> bool:
    """True while the ``flask`` command loads the app to find or list its commands (not under ``flask run``,
    ``flask shell``, gunicorn or a plain import: those must stop on a configuration error)."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and isinstance(ctx.command, FlaskGroup)


def unconfigured_app(error: ConfigError) -> Flask:
    """An app that only carries the CLI, for a flask command run while the configuration is broken."""
    app = Flask(__name__)
    app.extensions[CONFIGURATION_ERROR] = error
    app.cli = _UnconfiguredCli(app.name, error)
    app.cli.add_command(connector)
    return app


connector = ConnectorGroup("connector", help="OAuth connector operations.")


@connector.command("generate-key", needs_configuration=False, with_appcontext=False)
@click.option("--key-id", default=None, help="Key id (default: k<yyyymmdd>).")
def generate_key_command(key_id: str | None) -> None:
    """Print a new TOKEN_ENCRYPTION_KEYS entry; put it first to start encrypting with it."""
    click.echo(generate_key(key_id or clock.now().strftime("k%Y%m%d")))


@connector.command("rotate-keys")
@click.option("--batch-size", default=200, show_default=True)
def rotate_keys(batch_size: int) -> None:
    """Re-encrypt every stored token with the first key. Safe to interrupt and re-run.

    Connections' tokens and the tokens pending remote revocations hold. Connects in progress are sealed
    in their browsers (app/connect/attempt.py), not stored: keep a retired key configured for at least
    10 minutes after every instance uses the new one, so they can finish.
    """
    keyring = runtime().keyring
    total, undecryptable, busy = _rotate_connections(TokenStore(keyring), batch_size)
    click.echo(f"done: {total} connection(s) now use key {keyring.primary_id!r}")
    if undecryptable:
        click.echo(f"warning: {len(undecryptable)} connection(s) could not be decrypted with the configured keys; "
                   f"left as they are: {', '.join(undecryptable)}", err=True)
    if busy:
        click.echo(f"warning: {busy} connection(s) were being refreshed or kept changing; run rotate-keys again",
                   err=True)
    # The token a pending remote revocation still needs.
    _rotate_column(keyring, batch_size, RevocationTask, "token_enc", RevocationTask.aad, "revocation task(s)")
    click.echo("connects in progress are sealed with the key they started with: keep retired keys configured "
               "for 10 more minutes")


REKEY_ATTEMPTS = 3


def _rotate_connections(store: TokenStore, batch_size: int) -> tuple[int, list[str], int]:
    """Re-key connections batch by batch in id order, each row through the token store: a row a
    revoke, a reconnect or a refresh wrote since it was read is read again (what they wrote is
    kept), a row under a refresh lease is left to that refresh. Returns (re-keyed, ids that
    cannot be decrypted, rows left busy)."""
    primary = store.keyring.primary_id
    total, busy, undecryptable = 0, 0, []
    last_id = ""
    while True:
        rows = db.session.scalars(
            select(Connection)
            .where(or_(Connection.key_id != primary, Connection.key_id.is_(None)))
            .where(or_(Connection.access_token_enc.is_not(None), Connection.refresh_token_enc.is_not(None)))
            .where(Connection.id > last_id)
            .order_by(Connection.id).limit(batch_size)
        ).all()
        if not rows:
            break
        last_id = rows[-1].id
        for row in rows:
            outcome = _rekey(store, row)
            total += outcome == "rekeyed"
            busy += outcome == "busy"
            if outcome == "undecryptable":
                undecryptable.append(row.id)
        db.session.commit()  # each batch is durable on its own
        click.echo(f"re-encrypted {total} connection(s)")
    return total, undecryptable, busy


def _rekey(store: TokenStore, row: Connection) -> str:
    for _ in range(REKEY_ATTEMPTS):
        if row.key_id == store.keyring.primary_id or (row.access_token_enc is None and row.refresh_token_enc is None):
            return "current"  # rewritten meanwhile, with the current key or without tokens
        try:
            if store.rekey(row):
                return "rekeyed"
        except DecryptionError:
            return "undecryptable"
        if row.lease_owner is not None:
            return "busy"
        db.session.refresh(row)  # written since we read it: read it again
        if row.lease_owner is not None:
            return "busy"
    return "busy"


def _rotate_column(keyring: Keyring, batch_size: int, model, column: str, aad: Callable[[object], bytes],
                   label: str) -> None:
    """Re-encrypt ``model.column`` with the first key, batch by batch in id order (each batch committed).

    Rows already on the first key are not selected, so a re-run picks up where an interrupted one
    stopped. A row that cannot be decrypted (its key is gone) is left as it is and counted.
    """
    sealed_column = getattr(model, column)
    prefix = keyring.primary_id + "."  # a ciphertext starts with the id of the key that sealed it
    total = skipped = 0
    last_id = ""
    while True:
        rows = db.session.scalars(
            select(model)
            .where(sealed_column.is_not(None), func.substr(sealed_column, 1, len(prefix)) != prefix)
            .where(model.id > last_id)
            .order_by(model.id).limit(batch_size)
        ).all()
        if not rows:
            break
        for row in rows:
            try:
                plain = keyring.decrypt(getattr(row, column), aad(row))
            except DecryptionError:
                skipped += 1
                continue
            setattr(row, column, keyring.encrypt(plain, aad(row)))
            total += 1
        last_id = rows[-1].id
        db.session.commit()  # each batch is durable on its own
        click.echo(f"re-encrypted {total} {label}")
    click.echo(f"done: {total} {label} now use key {keyring.primary_id!r}")
    if skipped:
        click.echo(f"warning: {skipped} {label} could not be decrypted with the configured keys; left as they are",
                   err=True)


@connector.command("end-admin-sessions")
@click.option("--sub", default=None, help="Only this administrator's sessions (an Auth0 sub).")
def end_admin_sessions_command(sub: str | None) -> None:
    """Sign administrators out everywhere at once (e.g. after taking away someone's admin role)."""
    from .admin.sessions import end_sessions

    click.echo(f"ended {end_sessions(sub)} admin session(s)")


@connector.command("purge-requests")
def purge_requests() -> None:
    """Forget the ids of used connect attempts that expired (the worker's purge job does this too)."""
    from .connect.flow import purge_used_attempts_statement

    result = db.session.execute(purge_used_attempts_statement(clock.now()))
    db.session.commit()
    click.echo(f"deleted {result.rowcount} expired used connect attempt id(s)")


def parse_duration(value: str) -> timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = value[:-1], value[-1:]
    # ASCII digits only: str.isdigit() also accepts "²" (which int() refuses) and other scripts' digits.
    if unit not in units or not re.fullmatch(r"[0-9]+", number):
        raise click.BadParameter("use a number with s, m, h or d, like 10m")
    try:
        return timedelta(seconds=int(number) * units[unit])
    except OverflowError:
        raise click.BadParameter("that duration is too long") from None


@connector.command("refresh-due")
@click.option("--within", default="10m", show_default=True, help="Refresh tokens expiring within this (30s, 10m, 1h).",
              callback=lambda _ctx, _param, value: parse_duration(value))
@click.option("--workers", default=4, show_default=True, type=click.IntRange(1, 64))
@click.option("--limit", default=None, type=click.IntRange(1), help="Stop after this many connections.")
def refresh_due_command(within: timedelta, workers: int, limit: int | None) -> None:
    """Refresh connections whose access token expires soon. Several copies may run at once."""
    from .refresh_due import refresh_due

    def progress(counts) -> None:
        click.echo(f"... {sum(counts.values())} processed: " + _summary(counts), err=True)

    counts = refresh_due(current_app._get_current_object(), within, workers, limit, progress)
    click.echo(f"done: {_summary(counts)}")


REFRESH_OUTCOMES = ("refreshed", "needs_reauth", "unavailable", "failed", "skipped")


def _summary(counts) -> str:
    return ", ".join(f"{key} {counts.get(key, 0)}" for key in REFRESH_OUTCOMES)


@connector.command("token")
@click.argument("user_id")
@click.argument("provider")
@click.option("--show", is_flag=True, help="Also print the access token itself.")
@click.option("--min-ttl", default=None, type=click.IntRange(0), help="Refresh if it expires within this many seconds.")
def token_command(user_id: str, provider: str, show: bool, min_ttl: int | None) -> None:
    """Check that a user's connection yields an access token (prints expiry and scopes)."""
    from .errors import ConnectorError
    from .vault import get_access_token

    try:
        token = get_access_token(user_id, provider, min_ttl=min_ttl)
    except ConnectorError as exc:
        raise click.ClickException(f"{exc.code}: {exc.description}") from None
    expires = token.expires_at.isoformat() + "Z" if token.expires_at else "never"
    click.echo(f"provider: {provider}\ntoken type: {token.token_type}\nexpires at: {expires}\n"
               f"scopes: {' '.join(token.scopes) or '-'}")
    if show:
        click.echo(f"access token: {token.token}")


@connector.command("retry-revocations")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
def retry_revocations_command(limit: int) -> None:
    """Retry remote revocations that failed earlier (bounded attempts with backoff)."""
    from .revocation import OUTCOMES, retry_revocations

    counts = retry_revocations(limit)
    click.echo("done: " + ", ".join(f"{key} {counts.get(key, 0)}" for key in OUTCOMES))


@connector.command("rollup-stats")
def rollup_stats_command() -> None:
    """Fold recent refresh observations into the dashboard's hourly rollup (the worker does this too)."""
    from .refresh_stats import rollup_refresh_stats

    click.echo(f"rolled up {rollup_refresh_stats()} refresh observations")


def init_app(app: Flask) -> None:
    from .events import commands  # noqa: F401  (worker, generate-webhook-secret, redeliver-event)

    app.cli.add_command(connector)
