import base64
import json

import pytest
from sqlalchemy import select

from app.events.model import Event
from app.extensions import db
from tests.conftest import stub_env
from tests.events.receiver import Receiver

SECRET_1 = "whsec_" + base64.b64encode(b"a" * 32).decode()
SECRET_2 = "whsec_" + base64.b64encode(b"b" * 24).decode()


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


@pytest.fixture
def env(stub, tmp_path, receiver):
    return stub_env(stub, tmp_path, WEBHOOK_URL=receiver.url, WEBHOOK_SECRET=f"{SECRET_1},{SECRET_2}",
                    WEBHOOK_TIMEOUT="1", REFRESH_FAILING_AFTER="2")


def stored_events(app, **where) -> list[dict]:
    """Every event row (optionally filtered by column values), oldest first, with its payload parsed."""
    with app.app_context():
        db.session.expire_all()
        query = select(Event).order_by(Event.id)
        for column, value in where.items():
            query = query.where(getattr(Event, column) == value)
        return [{"id": e.public_id, "type": e.type, "payload": json.loads(e.body), "status": e.delivery_status,
                 "attempts": e.attempts, "last_error": e.last_error, "next_attempt_at": e.next_attempt_at}
                for e in db.session.scalars(query)]
