"""``flask connector ...`` operator commands."""
from __future__ import annotations

import click
from flask import Flask
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


def init_app(app: Flask) -> None:
    app.cli.add_command(connector)
