"""Model defaults (issue 11.19)."""
from datetime import datetime

from sqlalchemy import select

from app import clock
from app.extensions import db
from app.models import AuditEvent, Connection, RevocationTask, record_audit


def test_defaults_follow_a_clock_moved_by_the_test(app, monkeypatch):
    """Defaults look ``clock.now`` up at each insert: moving the clock moves created_at, at and
    next_attempt_at (they were bound to the function present at import)."""
    moved = datetime(2031, 5, 17, 12, 0, 0)
    monkeypatch.setattr(clock, "now", lambda: moved)
    with app.app_context():
        record_audit("test", "ok", actor_type="system")
        db.session.add(Connection(user_id="auth0|alice", provider="spotify"))
        db.session.add(RevocationTask(connection_id="c", user_id="u", provider="p", token_enc="x",
                                      token_type_hint="refresh_token", actor_type="system"))
        db.session.commit()
        assert db.session.scalars(select(AuditEvent.at)).one() == moved
        connection = db.session.scalars(select(Connection)).one()
        assert (connection.created_at, connection.connected_at, connection.updated_at) == (moved, moved, moved)
        task = db.session.scalars(select(RevocationTask)).one()
        assert (task.created_at, task.next_attempt_at) == (moved, moved)
