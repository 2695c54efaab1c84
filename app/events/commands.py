"""``flask connector worker | generate-webhook-secret | redeliver-event``."""
from __future__ import annotations

import base64
import logging
import os
import secrets
import signal
import threading

import click
from flask import current_app

from ..cli import connector
from ..errors import NotFound
from ..extensions import db


@connector.command("generate-webhook-secret")
def generate_webhook_secret() -> None:
    """Print a new WEBHOOK_SECRET (whsec_ + base64 of 32 random bytes); give it to the receiver too."""
    click.echo("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())


@connector.command("redeliver-event")
@click.argument("event_id")
def redeliver_event(event_id: str) -> None:
    """Queue an event (its id, evt_…) for webhook delivery again; the worker sends it."""
    from .webhooks import redeliver

    try:
        event = redeliver(event_id)
    except NotFound as exc:
        raise click.ClickException(exc.description) from None
    db.session.commit()
    if not current_app.config.get("WEBHOOK_URL"):
        click.echo("warning: WEBHOOK_URL is not set; the worker will not send it until it is", err=True)
    click.echo(f"queued {event.public_id} ({event.type})")


@connector.command("worker")
@click.option("--once", is_flag=True, help="Run every job once and exit.")
def worker_command(once: bool) -> None:
    """Run every periodic job (webhooks, refresh-due, retry-revocations, purges) until SIGTERM."""
    from ..worker import run_worker

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def request_stop(signum, _frame) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    click.echo(f"worker started (pid {os.getpid()}, every {current_app.config['WORKER_INTERVAL']:g}s)")
    run_worker(current_app._get_current_object(), stop, once=once)
    click.echo("worker stopped")
