"""The service's Flask class: hooks and views pass through ensure_sync once, with Flask's answer."""
from __future__ import annotations

import asyncio

import pytest

from app.application import SYNC_CACHE_SIZE, ConnectorFlask


def test_a_plain_function_is_returned_as_is_and_remembered():
    app = ConnectorFlask(__name__)

    def hook():
        return "x"

    assert app.ensure_sync(hook) is hook
    assert app._sync == {hook: hook}


def test_a_coroutine_function_gets_flasks_answer_every_time():
    """Without asgiref Flask refuses async views; the cache must not turn that refusal into a pass."""
    app = ConnectorFlask(__name__)

    async def view():
        await asyncio.sleep(0)

    for _ in range(2):
        with pytest.raises(RuntimeError, match="async"):
            app.ensure_sync(view)
    assert view not in app._sync


def test_the_cache_is_bounded():
    app = ConnectorFlask(__name__)
    funcs = [lambda: None for _ in range(SYNC_CACHE_SIZE + 10)]
    for func in funcs:
        assert app.ensure_sync(func) is func
    assert len(app._sync) == SYNC_CACHE_SIZE


def test_every_request_hook_of_the_service_is_remembered_after_one_request(client, app):
    client.get("/healthz")
    hooks = [*app.before_request_funcs[None], *app.after_request_funcs[None]]
    assert all(hook in app._sync for hook in hooks)
