"""`flask connector worker` as real processes: SIGTERM, SIGKILL mid-delivery, two copies at once."""
import os
import signal
import subprocess
import sys
import threading

import pytest
from sqlalchemy import select

from app import worker
from app.events import outbox
from app.events.model import Event
from app.extensions import db
from app.models import Connection, UsedConnectAttempt, new_id
from tests.conftest import make_connection, stub_env
from tests.events.conftest import SECRET_1
from tests.events.receiver import Receiver

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


@pytest.fixture
def env(stub, tmp_path, receiver):
    # WEBHOOK_TIMEOUT bounds an attempt, and so the lease a killed worker leaves behind (timeout + 2 s).
    return stub_env(stub, tmp_path, WEBHOOK_URL=receiver.url, WEBHOOK_SECRET=SECRET_1, WEBHOOK_TIMEOUT="4",
                    WORKER_INTERVAL="0.2")


def _emit(app, count: int) -> list[str]:
    connection_id = make_connection(app, "auth0|alice", "spotify")
    with app.app_context():
        row = db.session.get(Connection, connection_id)
        ids = [outbox.emit_event(row, outbox.CREATED).public_id for _ in range(count)]
        db.session.commit()
    return ids


class WorkerProcess:
    def __init__(self, env: dict, database_url: str):
        full = {**os.environ, **env, "DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "connector", "worker"], cwd=ROOT,
                                     env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.started = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("worker started"):
                self.started.set()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


@pytest.fixture
def workers(env, database_url):
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        process = WorkerProcess(env, database_url)
        started.append(process)
        assert process.started.wait(60), "".join(process.lines)
        return process

    yield start
    for process in started:
        process.kill()


def _events(app) -> list[Event]:
    with app.app_context():
        db.session.expire_all()
        rows = db.session.scalars(select(Event).order_by(Event.id)).all()
        db.session.expunge_all()
        return rows


def test_sigterm_stops_the_worker_cleanly(app, workers, receiver):
    [event_id] = _emit(app, 1)
    process = workers()
    assert receiver.wait_for(1)
    assert process.stop() == 0
    assert "worker stopped" in "".join(process.lines)
    assert receiver.ids() == [event_id]
    assert _events(app)[0].delivery_status == "delivered"


def test_nothing_is_lost_when_the_worker_is_killed_mid_delivery(app, workers, receiver):
    [event_id] = _emit(app, 1)
    receiver.script = ["hang"]  # the first attempt never gets an answer
    first = workers()
    assert receiver.wait_for(1)
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(30)
    [event] = _events(app)
    assert (event.delivery_status, event.attempts) == ("pending", 0) and event.lease_owner  # mid-delivery
    second = workers()
    assert receiver.wait_for(2, timeout=60)  # once the dead worker's lease has expired
    assert second.stop() == 0
    assert receiver.ids() == [event_id, event_id]  # at least once, with the same id
    [event] = _events(app)
    assert (event.delivery_status, event.attempts, event.lease_owner) == ("delivered", 1, None)


def test_two_workers_deliver_each_event_once(app, workers, receiver):
    ids = _emit(app, 40)
    both = [workers(), workers()]
    assert receiver.wait_for(40, timeout=90)
    assert [process.stop() for process in both] == [0, 0]
    assert sorted(receiver.ids()) == sorted(ids)
    assert {event.delivery_status for event in _events(app)} == {"delivered"}


def test_one_round_runs_every_job_and_purges(app, runner):
    from datetime import timedelta

    from app import clock

    with app.app_context():
        db.session.add(UsedConnectAttempt(id=new_id(), expires_at=clock.now() - timedelta(hours=2)))
        db.session.commit()
    ran = []
    worker.register_job("test-probe", lambda app, stop: ran.append(True))
    try:
        result = runner.invoke(args=["connector", "worker", "--once"])
    finally:
        worker._JOBS[:] = [job for job in worker.jobs() if job.name != "test-probe"]
    assert result.exit_code == 0, result.output
    assert ran == [True]
    with app.app_context():
        assert db.session.scalars(select(UsedConnectAttempt)).all() == []


def test_a_failing_job_does_not_stop_the_others(app):
    stop = threading.Event()
    ran = []

    def broken(app, stop):
        raise RuntimeError("boom")

    jobs = [worker.Job("broken", broken), worker.Job("after", lambda app, stop: ran.append(True))]
    assert [worker.run_job(app, job, stop) for job in jobs] == [False, True]
    assert ran == [True]
