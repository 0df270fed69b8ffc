"""ORM work from async code, on a pool of threads instead of channels' one shared thread.

`database_sync_to_async` defaults to `thread_sensitive=True`: every call from every socket and
request of the process runs on one thread, one after another. A turn's preparation (its queries,
the embedder, the guardrails, the budget reservation) takes tens of milliseconds, so turns started
together waited for each other before their first token: measured, time to first token grew with
the turns started at once (1 s for ten, 15–25 s for fifty) while the process used under half a
core. None of the product's synchronous work keeps thread-local state from one call to the next
(each call opens and ends its own transactions), so it runs on a pool; each thread holds its own
database connection (DB_THREADS threads, so at most that many connections per process).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from channels.db import database_sync_to_async
from django.conf import settings

P = ParamSpec("P")
R = TypeVar("R")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=int(settings.DB_THREADS), thread_name_prefix="db")
    return _pool


def on_db_thread(func: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """`func` as a coroutine function that runs on the pool, with Django's connection hygiene
    (stale connections closed before and after, as for a request)."""
    return database_sync_to_async(func, thread_sensitive=False, executor=_executor())
