"""``flask connector ...`` operator commands."""
from __future__ import annotations

from datetime import timedelta

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import delete, or_, select

from . import clock
from .crypto import generate_key
from .extensions import db
from .models import AuthorizationRequest, Connection
from .runtime import runtime

connector = AppGroup("connector", help="OAuth connector operations.")


@connector.command("generate-key")
@click.option("--key-id", default=None, help="Key id (default: k<yyyymmdd>).")
def generate_key_command(key_id: str | None) -> None:
    """Print a new TOKEN_ENCRYPTION_KEYS entry; put it first to start encrypting with it."""
    click.echo(generate_key(key_id or clock.now().strftime("k%Y%m%d")))


@connector.command("rotate-keys")
@click.option("--batch-size", default=200, show_default=True)
def rotate_keys(batch_size: int) -> None:
    """Re-encrypt every stored token with the first key. Safe to interrupt and re-run."""
    keyring = runtime().keyring
    total = 0
    while True:
        rows = db.session.scalars(
            select(Connection)
            .where(or_(Connection.key_id != keyring.primary_id, Connection.key_id.is_(None)))
            .where(or_(Connection.access_token_enc.is_not(None), Connection.refresh_token_enc.is_not(None)))
            .order_by(Connection.id).limit(batch_size)
        ).all()
        if not rows:
            break
        for row in rows:
            for column in ("access_token_enc", "refresh_token_enc"):
                sealed = getattr(row, column)
                if sealed:
                    field = column.removesuffix("_enc")
                    setattr(row, column, keyring.encrypt(keyring.decrypt(sealed, row.aad(field)), row.aad(field)))
            row.key_id = keyring.primary_id
        db.session.commit()  # each batch is durable on its own
        total += len(rows)
        click.echo(f"re-encrypted {total} connection(s)")
    click.echo(f"done: {total} connection(s) now use key {keyring.primary_id!r}")


@connector.command("purge-requests")
def purge_requests() -> None:
    """Delete expired pending authorization requests."""
    result = db.session.execute(delete(AuthorizationRequest).where(AuthorizationRequest.expires_at < clock.now()))
    db.session.commit()
    click.echo(f"deleted {result.rowcount} expired authorization request(s)")


def parse_duration(value: str) -> timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = value[:-1], value[-1:]
    if unit not in units or not number.isdigit():
        raise click.BadParameter("use a number with s, m, h or d, like 10m")
    return timedelta(seconds=int(number) * units[unit])


@connector.command("refresh-due")
@click.option("--within", default="10m", show_default=True, help="Refresh tokens expiring within this (30s, 10m, 1h).")
@click.option("--workers", default=4, show_default=True, type=click.IntRange(1, 64))
@click.option("--limit", default=None, type=click.IntRange(1), help="Stop after this many connections.")
def refresh_due_command(within: str, workers: int, limit: int | None) -> None:
    """Refresh connections whose access token expires soon. Several copies may run at once."""
    from .refresh_due import refresh_due

    def progress(counts) -> None:
        click.echo(f"... {sum(counts.values())} processed: " + _summary(counts), err=True)

    counts = refresh_due(current_app._get_current_object(), parse_duration(within), workers, limit, progress)
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
    from .revocation import retry_revocations

    counts = retry_revocations(limit)
    click.echo("done: " + ", ".join(f"{key} {value}" for key, value in counts.items()))


def init_app(app: Flask) -> None:
    app.cli.add_command(connector)
