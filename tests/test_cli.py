import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from sqlalchemy import func, select

from app import clock, create_app
from app.connections import upsert_connection
from app.extensions import db
from app.models import Connection, RevocationTask, UsedConnectAttempt, new_id
from app.oauth_client import TokenResponse
from app.revocation import Actor, revoke_connection
from config import parse_encryption_keys
from tests.conftest import KEY_1, KEY_2, base_env, make_connection

GOOGLE_REVOKE = "https://oauth2.googleapis.com/revoke"
ROOT = Path(__file__).resolve().parents[1]


def _token(n: int) -> TokenResponse:
    return TokenResponse(access_token=f"access-{n}", refresh_token=f"refresh-{n}", token_type="Bearer",
                         expires_at=None, scopes=("a",))


def _seed(app, count: int) -> None:
    with app.app_context():
        keyring = app.extensions["connector"].keyring
        for n in range(count):
            upsert_connection(f"user-{n}", "spotify", _token(n), keyring, None)
        db.session.commit()


def _app_with_keys(keys: str, database_url: str):
    return create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url},
                      env=base_env(TOKEN_ENCRYPTION_KEYS=keys))


def test_rotate_keys_reencrypts_every_row_and_keeps_them_readable(app, database_url):
    _seed(app, 5)
    rotated = _app_with_keys(f"{KEY_2},{KEY_1}", database_url)
    result = rotated.test_cli_runner().invoke(args=["connector", "rotate-keys", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert "done: 5 connection(s) now use key 'k2'" in result.output
    only_new = _app_with_keys(KEY_2, database_url)
    with only_new.app_context():
        keyring = only_new.extensions["connector"].keyring
        rows = db.session.scalars(select(Connection).order_by(Connection.user_id)).all()
        assert {row.key_id for row in rows} == {"k2"}
        for n, row in enumerate(rows):
            assert keyring.decrypt(row.refresh_token_enc, row.aad("refresh_token")) == f"refresh-{n}"
            assert keyring.decrypt(row.access_token_enc, row.aad("access_token")) == f"access-{n}"
    again = rotated.test_cli_runner().invoke(args=["connector", "rotate-keys"])
    assert "done: 0 connection(s)" in again.output


def test_rotate_keys_resumes_after_interruption(app, database_url):
    _seed(app, 3)
    rotated = _app_with_keys(f"{KEY_2},{KEY_1}", database_url)
    with rotated.app_context():  # simulate a run that finished only one batch
        keyring = rotated.extensions["connector"].keyring
        row = db.session.scalars(select(Connection).order_by(Connection.id)).first()
        plain = keyring.decrypt(row.refresh_token_enc, row.aad("refresh_token"))
        row.refresh_token_enc = keyring.encrypt(plain, row.aad("refresh_token"))
        row.access_token_enc = keyring.encrypt("access-x", row.aad("access_token"))
        row.key_id = "k2"
        db.session.commit()
    result = rotated.test_cli_runner().invoke(args=["connector", "rotate-keys"])
    assert "done: 2 connection(s)" in result.output


def test_generate_key_prints_a_valid_entry(runner):
    result = runner.invoke(args=["connector", "generate-key", "--key-id", "k7"])
    (key_id, key), = parse_encryption_keys(result.output.strip())
    assert key_id == "k7" and len(key) == 32


def test_purge_requests_forgets_used_attempts_an_hour_after_they_expired(app, runner):
    now = clock.now()
    with app.app_context():
        for delta in (-61, -59, 5):
            db.session.add(UsedConnectAttempt(id=new_id(), expires_at=now + timedelta(minutes=delta)))
        db.session.commit()
    assert "deleted 1" in runner.invoke(args=["connector", "purge-requests"]).output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(UsedConnectAttempt)) == 2


def _pending_revocations(app, mocked_http, count: int) -> None:
    """``count`` remote revocations left pending (provider down)."""
    mocked_http.post(GOOGLE_REVOKE, status=503)
    with app.app_context():
        for n in range(count):
            make_connection(app, f"user-{n}", "google", refresh=f"refresh-{n}")
            row = db.session.scalars(select(Connection).where(Connection.user_id == f"user-{n}")).one()
            assert revoke_connection(row, Actor("admin", "auth0|admin")).remote == "pending"
        db.session.commit()


def test_rotate_keys_reencrypts_revocation_tasks(app, database_url, mocked_http, monkeypatch):
    _pending_revocations(app, mocked_http, 3)
    rotated = _app_with_keys(f"{KEY_2},{KEY_1}", database_url)
    with rotated.app_context():  # simulate an interrupted run that had rotated one task already
        keyring = rotated.extensions["connector"].keyring
        task = db.session.scalars(select(RevocationTask).order_by(RevocationTask.id)).first()
        task.token_enc = keyring.encrypt(keyring.decrypt(task.token_enc, task.aad()), task.aad())
        db.session.commit()
    result = rotated.test_cli_runner().invoke(args=["connector", "rotate-keys", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert "done: 2 revocation task(s) now use key 'k2'" in result.output
    # Connects in progress are sealed in browsers, not stored: the operator is told to keep the old key.
    assert "keep retired keys configured for 10 more minutes" in result.output
    again = rotated.test_cli_runner().invoke(args=["connector", "rotate-keys"])
    assert "done: 0 revocation task(s)" in again.output

    only_new = _app_with_keys(KEY_2, database_url)
    mocked_http.replace("POST", GOOGLE_REVOKE, status=200)
    later = clock.now() + timedelta(minutes=5)
    monkeypatch.setattr(clock, "now", lambda: later)
    retried = only_new.test_cli_runner().invoke(args=["connector", "retry-revocations"])
    assert retried.exit_code == 0, retried.output
    assert "done: done 3, pending 0, failed 0, not_supported 0" in retried.output
    sent = [parse_qs(c.request.body)["token"][0] for c in mocked_http.calls if c.request.url == GOOGLE_REVOKE]
    assert sorted(sent[-3:]) == ["refresh-0", "refresh-1", "refresh-2"]


def test_rotate_keys_leaves_an_undecryptable_task_and_goes_on(app, database_url, mocked_http):
    _pending_revocations(app, mocked_http, 2)
    with app.app_context():
        task = db.session.scalars(select(RevocationTask).order_by(RevocationTask.id)).first()
        task.token_enc = "k1." + task.token_enc.partition(".")[2][::-1]  # altered: fails to decrypt
        db.session.commit()
    rotated = _app_with_keys(f"{KEY_2},{KEY_1}", database_url)
    result = rotated.test_cli_runner().invoke(args=["connector", "rotate-keys"])
    assert result.exit_code == 0, result.output
    assert "done: 1 revocation task(s)" in result.output
    assert "1 revocation task(s) could not be decrypted" in result.output


@pytest.mark.parametrize("within", ["²m", "١٠m", "10", "m", "-5m", "1.5h", " 5m", "10x", "99999999999999999999d"])
def test_refresh_due_rejects_a_malformed_duration_clearly(runner, within):
    result = runner.invoke(args=["connector", "refresh-due", "--within", within])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.exception
    assert "Invalid value for '--within'" in result.output


def _flask_on_empty_environment(*args: str) -> subprocess.CompletedProcess:
    """The real ``flask`` command with nothing configured: only PATH."""
    return subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "wsgi", *args], cwd=ROOT,
                          env={"PATH": os.environ["PATH"]}, capture_output=True, text=True, timeout=120)


def test_help_and_generate_key_work_on_an_empty_environment():
    group = _flask_on_empty_environment("connector", "--help")
    assert group.returncode == 0, group.stderr
    assert all(name in group.stdout for name in ("generate-key", "rotate-keys", "refresh-due", "token"))
    result = _flask_on_empty_environment("connector", "generate-key", "--key-id", "first")
    assert result.returncode == 0, result.stderr
    (key_id, key), = parse_encryption_keys(result.stdout.strip())
    assert key_id == "first" and len(key) == 32


EMPTY_ENVIRONMENT_PROBLEMS = [
    "configuration error: PUBLIC_BASE_URL: required (the service's external URL)",
    "configuration error: SECRET_KEY: required outside demo/testing",
    "configuration error: AUTH0_DOMAIN: required (or AUTH0_ISSUER)",
    "configuration error: AUTH0_AUDIENCE: required",
    "configuration error: TOKEN_ENCRYPTION_KEYS: at least one key is required",
    "configuration error: CONNECT_ALLOWED_RETURN_URLS: required (comma-separated URLs)",
]


def test_db_upgrade_on_an_empty_environment_lists_every_problem_and_fails():
    result = _flask_on_empty_environment("db", "upgrade")
    assert result.returncode == 4
    assert result.stderr.splitlines() == EMPTY_ENVIRONMENT_PROBLEMS


def _unconfigured_runner():
    from app.cli import unconfigured_app
    from config import ConfigError, load_config

    try:
        load_config({})
    except ConfigError as exc:
        return unconfigured_app(exc).test_cli_runner()
    raise AssertionError("an empty environment loaded")


@pytest.mark.parametrize("args", [("connector", "rotate-keys"), ("connector", "token", "u", "github"),
                                  ("connector", "refresh-due"), ("routes",)])
def test_unconfigured_commands_list_every_problem_and_exit_4(args):
    result = _unconfigured_runner().invoke(args=list(args))
    assert result.exit_code == 4
    assert result.stderr.splitlines() == EMPTY_ENVIRONMENT_PROBLEMS


def test_unconfigured_help_and_generate_key_still_work():
    runner = _unconfigured_runner()
    assert runner.invoke(args=["connector", "rotate-keys", "--help"]).exit_code == 0
    result = runner.invoke(args=["connector", "generate-key", "--key-id", "k1"])
    assert result.exit_code == 0 and parse_encryption_keys(result.output.strip())[0][0] == "k1"
