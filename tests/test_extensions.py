"""Ending a request's database session never fails the request (the response is already made)."""
from __future__ import annotations

import sqlite3

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.extensions import db


def test_a_failing_session_cleanup_is_logged_and_the_response_stands(app, client, monkeypatch, caplog):
    @app.get("/_reads")
    def reads():
        db.session.execute(text("SELECT 1"))  # a transaction is open when the teardown runs
        return {"stored": True}

    def broken_close(self):
        raise sa_exc.OperationalError("ROLLBACK", None, sqlite3.OperationalError("disk I/O error"))

    with monkeypatch.context() as patch:
        patch.setattr(Session, "close", broken_close)  # the teardown's rollback fails
        response = client.get("/_reads")
    assert response.status_code == 200 and response.get_json() == {"stored": True}
    assert "database session cleanup failed after the response was made (OperationalError)" in caplog.text
    assert client.get("/_reads").status_code == 200  # the next request gets a fresh session
