"""The JWKS is fetched outside the cache's lock: a slow fetch stalls only the tokens that need it.

A real loopback server plays the tenant's JWKS endpoint and holds its answer until the test lets
it go; every wait below is on an event, bounded only so that a regression fails instead of hanging.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from joserfc.jwk import KeySet, RSAKey

from app.identity import AccessTokenVerifier, JwksCache
from tests.conftest import AUDIENCE, ISSUER, Auth0StandIn

BOUND = 20  # seconds: only reached when the behaviour under test is broken


class SlowJwks:
    """Serves ``keys``; while ``hold`` is set, each request waits for ``release`` before answering."""

    def __init__(self, keys: list):
        self.keys, self.requests = keys, 0
        self.hold, self.release, self.arrived = threading.Event(), threading.Event(), threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                owner.requests += 1
                owner.arrived.set()
                if owner.hold.is_set():
                    owner.release.wait(BOUND)
                body = json.dumps({"keys": [k.as_dict(private=False) for k in owner.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def __enter__(self) -> SlowJwks:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def _in_thread(fn) -> tuple[threading.Event, dict]:
    done, result = threading.Event(), {}

    def run():
        try:
            result["value"] = fn()
        except Exception as exc:  # reported by the test's assertions
            result["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    return done, result


@pytest.fixture
def tenant():
    auth0 = Auth0StandIn()
    rotated = RSAKey.generate_key(2048, parameters={"kid": "kid-2", "alg": "RS256"})
    with SlowJwks([auth0.key]) as jwks:
        cache = JwksCache(ISSUER, jwks.url, cooldown=0, timeout=(2, BOUND))
        yield auth0, rotated, jwks, AccessTokenVerifier(cache, AUDIENCE)


def test_a_slow_jwks_fetch_does_not_stall_tokens_with_a_cached_key(tenant):
    auth0, rotated, jwks, verifier = tenant
    assert verifier.verify(auth0.token()).sub == "auth0|alice"  # kid-1 is cached now
    jwks.keys = KeySet([auth0.key, rotated]).keys
    jwks.hold.set()
    jwks.arrived.clear()
    fetching, fetched = _in_thread(lambda: verifier.verify(auth0.token("auth0|bob", key=rotated,
                                                                       header={"kid": "kid-2"})))
    assert jwks.arrived.wait(BOUND)  # the unknown kid's refetch is now held by the server
    cached, result = _in_thread(lambda: verifier.verify(auth0.token()))
    assert cached.wait(BOUND), "a token with a cached kid waited for someone else's JWKS fetch"
    assert result["value"].sub == "auth0|alice"
    assert not fetching.is_set()  # the slow fetch was still in flight all along
    jwks.release.set()
    assert fetching.wait(BOUND) and fetched["value"].sub == "auth0|bob"


def test_callers_that_need_the_new_keys_share_one_fetch(tenant):
    auth0, rotated, jwks, verifier = tenant
    verifier.verify(auth0.token())
    jwks.keys = KeySet([auth0.key, rotated]).keys
    jwks.hold.set()
    jwks.arrived.clear()
    token = auth0.token("auth0|bob", key=rotated, header={"kid": "kid-2"})
    first, first_result = _in_thread(lambda: verifier.verify(token))
    assert jwks.arrived.wait(BOUND)
    second, second_result = _in_thread(lambda: verifier.verify(token))
    jwks.release.set()
    assert first.wait(BOUND) and second.wait(BOUND)
    assert first_result["value"].sub == second_result["value"].sub == "auth0|bob"
    assert jwks.requests == 2  # the first verification's fetch and the rotated key's, nothing more
