"""The service's Flask class: Flask, with the per-request cost of its hooks paid once per hook.

Flask passes every hook and view through ``ensure_sync`` on every request (eleven or more calls per
request here), and each call asks ``inspect.iscoroutinefunction``, which unwraps decorators and
reads code flags. The answer cannot change for a given function, so it is kept: a hook or view
that is a coroutine function is still wrapped by Flask's ``async_to_sync``, once.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

SYNC_CACHE_SIZE = 4096


class ConnectorFlask(Flask):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # function -> what Flask's ensure_sync answers for it. Only the app's registered hooks, views
        # and error handlers pass through it; the bound is a guard against a caller that makes a new
        # callable per request.
        self._sync: dict[Callable, Callable] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        try:
            return self._sync[func]
        except KeyError:
            sync = super().ensure_sync(func)
            if len(self._sync) < SYNC_CACHE_SIZE:
                self._sync[func] = sync
            return sync
        except TypeError:  # an unhashable callable: answer as Flask does, uncached
            return super().ensure_sync(func)
