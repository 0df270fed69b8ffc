"""Redis clients for the product's own keys (rate limits, the LLM queue), one per process and loop.

The channel layer and the cache bring their own connections; these are for the atomic scripts
that limits and the queue run. Every key goes through `key()`, so several deployments (or test
runs) can share one Redis without reading each other's counters.
"""

from __future__ import annotations

import asyncio
from functools import cache
from weakref import WeakKeyDictionary

import redis
import redis.asyncio as aioredis
from django.conf import settings

_async_clients: WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = WeakKeyDictionary()


def key(*parts: object) -> str:
    return ":".join([str(settings.REDIS_KEY_PREFIX), *(str(part) for part in parts)])


# A flood must wait for a connection, not fail: with a plain pool the 101st concurrent caller gets
# MaxConnectionsError, and a limiter that fails open would then let everything through.
MAX_CONNECTIONS = 64
POOL_TIMEOUT_SECONDS = 5


@cache
def sync_client() -> redis.Redis:
    pool = redis.BlockingConnectionPool.from_url(
        settings.REDIS_URL, decode_responses=True, max_connections=MAX_CONNECTIONS, timeout=POOL_TIMEOUT_SECONDS
    )
    return redis.Redis(connection_pool=pool)


def async_client() -> aioredis.Redis:
    """A client bound to the running event loop: redis.asyncio connections cannot cross loops."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL, decode_responses=True, max_connections=MAX_CONNECTIONS, timeout=POOL_TIMEOUT_SECONDS
        )
        client = aioredis.Redis(connection_pool=pool)
        _async_clients[loop] = client
    return client
