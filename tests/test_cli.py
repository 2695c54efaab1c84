from datetime import timedelta

from sqlalchemy import func, select

from app import clock, create_app
from app.connections import upsert_connection
from app.extensions import db
from app.models import AuthorizationRequest, Connection
from app.oauth_client import TokenResponse
from config import parse_encryption_keys
from tests.conftest import KEY_1, KEY_2, base_env


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


def test_purge_requests_deletes_only_expired(app, runner):
    now = clock.now()
    with app.app_context():
        for n, delta in enumerate((-1, 5)):
            db.session.add(AuthorizationRequest(state_hash=f"s{n}", browser_hash="b", user_id="u", provider="p",
                                                return_to="r", expires_at=now + timedelta(minutes=delta)))
        db.session.commit()
    assert "deleted 1" in runner.invoke(args=["connector", "purge-requests"]).output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuthorizationRequest)) == 1
