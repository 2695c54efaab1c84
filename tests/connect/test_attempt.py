"""The sealed connect attempt (app/connect/attempt.py): what ``state`` and the binding cookie carry,
and that neither opens for anything but the attempt it was sealed for."""
from datetime import datetime, timedelta

import pytest

from app.connect.attempt import MAX_COOKIE_LENGTH, ConnectAttempt, open_cookie, open_state, seal
from app.crypto import Keyring
from app.errors import InvalidRequest
from app.links.tokens import seal_link

OLD, NEW = Keyring([("k1", b"1" * 32)]), Keyring([("k2", b"2" * 32), ("k1", b"1" * 32)])


def _attempt(**changes) -> ConnectAttempt:
    fields = {"id": "a" * 32, "user_id": "auth0|alice", "provider": "spotify",
              "return_to": "https://app.test/settings?tab=1", "expires_at": datetime(2030, 1, 1, 12, 0, 0),
              "code_verifier": "v" * 86, "nonce": "n" * 32, "scopes": ("read", "write"), "params": {"prompt": "x"}}
    return ConnectAttempt(**{**fields, **changes})


def test_state_and_cookie_open_to_the_same_attempt():
    attempt = _attempt()
    state, cookie = seal(OLD, attempt)
    ref = open_state(OLD, state)
    assert ref == attempt.ref
    assert open_cookie(OLD, ref, cookie) == attempt


def test_an_attempt_without_pkce_or_nonce_round_trips():
    attempt = _attempt(code_verifier=None, nonce=None, scopes=(), params={})
    state, cookie = seal(OLD, attempt)
    assert open_cookie(OLD, open_state(OLD, state), cookie) == attempt


def test_an_altered_state_opens_to_nothing():
    state, _ = seal(OLD, _attempt())
    body = state.partition(".")[2]
    for forged in ("", "k1.", "k1." + body[:-4] + "AAAA", "k9." + body, state + "x", "garbage"):
        assert open_state(OLD, forged) is None


def test_other_ciphertexts_of_the_service_are_no_state():
    token, _ = seal_link(OLD, "auth0|alice", "spotify", "https://app.test/", timedelta(days=1))
    _, cookie = seal(OLD, _attempt())
    assert open_state(OLD, token) is None and open_state(OLD, cookie) is None


def test_a_cookie_opens_only_for_its_own_attempt():
    """Another tab's (or another user's) cookie under this attempt's name is no binding."""
    mine, theirs = _attempt(), _attempt(id="b" * 32)
    _, their_cookie = seal(OLD, theirs)
    state, my_cookie = seal(OLD, mine)
    ref = open_state(OLD, state)
    assert open_cookie(OLD, ref, their_cookie) is None
    for other in (_attempt(user_id="auth0|mallory"), _attempt(provider="google")):
        _, cookie = seal(OLD, other)
        assert open_cookie(OLD, ref, cookie) is None
    assert open_cookie(OLD, ref, state) is None  # the state is not a cookie either
    assert open_cookie(OLD, ref, None) is None and open_cookie(OLD, ref, "") is None
    assert open_cookie(OLD, ref, my_cookie) == mine


def test_an_attempt_sealed_before_a_key_rotation_opens_while_the_old_key_is_kept():
    attempt = _attempt()
    state, cookie = seal(OLD, attempt)
    assert open_cookie(NEW, open_state(NEW, state), cookie) == attempt
    only_new = Keyring([("k2", b"2" * 32)])
    assert open_state(only_new, state) is None
    assert open_cookie(only_new, attempt.ref, cookie) is None
    assert seal(NEW, attempt)[0].startswith("k2.")  # new attempts use the first key


def test_an_attempt_too_large_for_a_cookie_is_refused():
    with pytest.raises(InvalidRequest):
        seal(OLD, _attempt(params={f"p{n}": "x" * 100 for n in range(40)}))
    state, cookie = seal(OLD, _attempt(params={"p": "x" * 2000}))
    assert len(cookie) <= MAX_COOKIE_LENGTH


def test_neither_ciphertext_shows_what_it_seals():
    attempt = _attempt()
    for sealed in seal(OLD, attempt):
        for value in (attempt.user_id, "alice", "app.test", attempt.code_verifier, attempt.nonce, "prompt"):
            assert value not in sealed
