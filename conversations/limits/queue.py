"""The LLM queue: at most N generations of a served model at once, across every node.

A model's limit is the `max_concurrency` of its LLM_MODELS entry, else LLM_QUEUE_MAX_CONCURRENCY;
0 means unbounded, and then nothing here touches Redis. Otherwise a turn takes a slot before it
calls the model and gives it back when the reply ends. Past the limit it waits in line: higher plan
priority first, first come first served within a priority.

Everything lives in Redis, changed only by Lua scripts (atomic, one round trip), timed by Redis's
own clock so nodes with skewed clocks agree:

    <prefix>:llmq:<model>:slots     sorted set  ticket -> lease expiry (ms)
    <prefix>:llmq:<model>:waiting   sorted set  ticket -> place in line (-priority * 1e12 + arrival)
    <prefix>:llmq:<model>:alive     sorted set  ticket -> waiter expiry (ms)
    <prefix>:llmq:<model>:arrivals  counter
    <prefix>:llmq:wake:<model>      pub/sub channel: a slot freed or the line moved

Slots and places in line are leases. A holder renews its slot every third of
LLM_QUEUE_LEASE_SECONDS while its generation runs, and a waiter renews its place each time it
looks; whoever looks next drops what a dead node left behind. Waiters are woken through pub/sub
(one subscription per process, shared) and also look every LLM_QUEUE_POLL_SECONDS, which is how
they notice a dead node's slot expiring.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from weakref import WeakKeyDictionary

from django.conf import settings
from redis.asyncio import Redis

from chatproject.llm.config import resolve_model
from chatproject.llm.types import LLMError
from chatproject.redis_client import async_client, key

logger = logging.getLogger(__name__)

# Priorities are clamped so `-priority * 1e12 + arrival` stays an exact integer in a double.
PRIORITY_BOUND = 1000
# A waiter whose place has not changed says so again this often, for sockets that joined late.
REANNOUNCE_SECONDS = 5.0
# How long a new waiter waits for the shared subscription before relying on polling alone.
SUBSCRIBE_WAIT_SECONDS = 1.0

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: slots, waiting, alive, arrivals, channel. ARGV: ticket, limit, lease ms, priority, place ('' at first).
# Returns {1 if the slot is taken, place in line (1 = next), the ticket's place score}.
ACQUIRE_SCRIPT = (
    _NOW_MS
    + """
local ticket = ARGV[1]
local limit = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local moved = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
for _, other in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)) do
  if other ~= ticket then
    moved = moved + redis.call('ZREM', KEYS[2], other)
    redis.call('ZREM', KEYS[3], other)
  end
end
local place = ARGV[5]
if place == '' then
  if redis.call('ZCARD', KEYS[2]) == 0 then redis.call('SET', KEYS[4], 0) end
  place = string.format('%.0f', -tonumber(ARGV[4]) * 1e12 + redis.call('INCR', KEYS[4]))
end
if not redis.call('ZSCORE', KEYS[2], ticket) then
  redis.call('ZADD', KEYS[2], place, ticket)
  -- Joining ahead of someone (a higher priority) moves them back: tell them.
  if redis.call('ZRANK', KEYS[2], ticket) < redis.call('ZCARD', KEYS[2]) - 1 then moved = moved + 1 end
end
redis.call('ZADD', KEYS[3], now + lease, ticket)
local rank = redis.call('ZRANK', KEYS[2], ticket)
local taken = 0
if rank < limit - redis.call('ZCARD', KEYS[1]) then
  redis.call('ZREM', KEYS[2], ticket)
  redis.call('ZREM', KEYS[3], ticket)
  redis.call('ZADD', KEYS[1], now + lease, ticket)
  taken = 1
  moved = moved + 1
end
if moved > 0 then redis.call('PUBLISH', KEYS[5], 'moved') end
if taken == 1 then return {1, 0, place} end
return {0, rank + 1, place}
"""
)

# KEYS: slots, waiting, alive, channel. ARGV: ticket. Gives back a slot or a place in line.
LEAVE_SCRIPT = """
local gone = redis.call('ZREM', KEYS[1], ARGV[1]) + redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if gone > 0 then redis.call('PUBLISH', KEYS[4], 'freed') end
return gone
"""

# KEYS: slots. ARGV: ticket, lease ms. 1 if the slot was still held (and is renewed), else 0.
RENEW_SCRIPT = (
    _NOW_MS
    + """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  return 1
end
return 0
"""
)


class QueueTimeout(LLMError):
    """A turn waited past LLM_QUEUE_TIMEOUT_SECONDS without getting a slot."""

    def __init__(self, waited: float) -> None:
        super().__init__(
            "queue_timeout",
            f"Too many people are using this model right now: your message waited {waited:.0f} seconds "
            "without getting a turn, so it was not sent. Try again in a moment.",
            retryable=True,
            status=503,
        )


@dataclass(frozen=True)
class QueueKeys:
    slots: str
    waiting: str
    alive: str
    arrivals: str
    channel: str

    @classmethod
    def of(cls, model: str) -> QueueKeys:
        return cls(
            slots=key("llmq", model, "slots"),
            waiting=key("llmq", model, "waiting"),
            alive=key("llmq", model, "alive"),
            arrivals=key("llmq", model, "arrivals"),
            channel=key("llmq", "wake", model),
        )


def model_concurrency(model: str) -> int:
    """Generations of `model` allowed at once across all nodes; 0 is unbounded.

    Read from the model's LLM_MODELS entry (`max_concurrency`), else LLM_QUEUE_MAX_CONCURRENCY."""
    limit = resolve_model(model).max_concurrency
    return int(settings.LLM_QUEUE_MAX_CONCURRENCY) if limit is None else limit


def _lease_ms(lease_seconds: float) -> int:
    return max(1, int(lease_seconds * 1000))


# --- waking waiters ---------------------------------------------------------------------------------


class _Wakeups:
    """One pattern subscription per event loop, shared by every waiter in it: a connection per
    waiter would not survive a long line. It runs only while someone waits."""

    def __init__(self) -> None:
        self.waiters: dict[str, set[asyncio.Event]] = {}
        self.task: asyncio.Task[None] | None = None
        self.ready: asyncio.Future[None] | None = None

    async def add(self, channel: str, event: asyncio.Event) -> None:
        """Register a waiter, and return once the subscription is live so no wake-up is missed."""
        self.waiters.setdefault(channel, set()).add(event)
        if self.task is None or self.task.done():
            self.ready = asyncio.get_running_loop().create_future()
            self.task = asyncio.create_task(self._listen(self.ready), name="llm-queue-wakeups")
        assert self.ready is not None
        # Pub/sub only makes waiting faster; if it is slow to start, polling still finds the slot.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.ready), SUBSCRIBE_WAIT_SECONDS)

    def remove(self, channel: str, event: asyncio.Event) -> None:
        waiting = self.waiters.get(channel)
        if waiting is not None:
            waiting.discard(event)
            if not waiting:
                del self.waiters[channel]
        if not self.waiters and self.task is not None:
            self.task.cancel()
            self.task = None

    async def _listen(self, ready: asyncio.Future[None]) -> None:
        pubsub = async_client().pubsub()
        try:
            await pubsub.psubscribe(key("llmq", "wake", "*"))
            async for message in pubsub.listen():
                if message["type"] == "psubscribe" and not ready.done():
                    ready.set_result(None)
                elif message["type"] == "pmessage":
                    for event in self.waiters.get(message["channel"], ()):
                        event.set()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("LLM queue wake-ups stopped; waiters fall back to polling", exc_info=True)
        finally:
            if not ready.done():
                ready.set_result(None)
            with contextlib.suppress(Exception):
                await pubsub.aclose()


_wakeups_by_loop: WeakKeyDictionary[asyncio.AbstractEventLoop, _Wakeups] = WeakKeyDictionary()


def _wakeups() -> _Wakeups:
    loop = asyncio.get_running_loop()
    wakeups = _wakeups_by_loop.get(loop)
    if wakeups is None:
        wakeups = _wakeups_by_loop[loop] = _Wakeups()
    return wakeups


# --- slots ------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Lease:
    """A held slot, renewed in the background until released."""

    model: str
    ticket: str
    lease_seconds: float
    _renewer: asyncio.Task[None] | None = None
    _released: bool = False
    lost: bool = field(default=False)

    def start_renewing(self) -> None:
        self._renewer = asyncio.create_task(self._renew(), name=f"llm-slot-{self.ticket[:8]}")

    async def _renew(self) -> None:
        keys = QueueKeys.of(self.model)
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                held = await async_client().register_script(RENEW_SCRIPT)(
                    keys=[keys.slots], args=[self.ticket, _lease_ms(self.lease_seconds)]
                )
            except Exception:  # a Redis blip must not end a reply; the next renewal may work
                logger.warning("could not renew an LLM queue slot of %s", self.model, exc_info=True)
                continue
            if not held and not self.lost:
                # This process stalled past its lease and the slot went to someone else; the reply
                # goes on (it cannot be paused), so the model briefly serves one more than its limit.
                self.lost = True
                logger.warning("an LLM queue slot of %s expired while its reply was running", self.model)

    async def release(self) -> None:
        """Give the slot back and wake the next in line. Safe to call twice."""
        if self._released:
            return
        self._released = True
        if self._renewer is not None:
            self._renewer.cancel()
        await _leave(async_client(), QueueKeys.of(self.model), self.ticket)


async def _leave(client: Redis, keys: QueueKeys, ticket: str) -> None:
    try:
        await client.register_script(LEAVE_SCRIPT)(
            keys=[keys.slots, keys.waiting, keys.alive, keys.channel], args=[ticket]
        )
    except Exception:  # the lease expires on its own; that is what leases are for
        logger.warning("could not leave the LLM queue cleanly", exc_info=True)


PositionCallback = Callable[[int], Awaitable[None]]


async def slot_acquire(
    *,
    model: str,
    priority: int = 0,
    on_position: PositionCallback | None = None,
    timeout: float | None = None,
) -> Lease:
    """Wait in line for a slot of `model` and take it; raise QueueTimeout after `timeout` seconds
    (LLM_QUEUE_TIMEOUT_SECONDS by default).

    `on_position` hears the place in line (1 = next) whenever it changes, and 0 once the slot is
    taken after a wait. Cancelling the wait (a stop) leaves the line at once.
    """
    keys = QueueKeys.of(model)
    client = async_client()
    acquire = client.register_script(ACQUIRE_SCRIPT)
    limit = model_concurrency(model)
    lease_seconds = float(settings.LLM_QUEUE_LEASE_SECONDS)
    wait_limit = float(settings.LLM_QUEUE_TIMEOUT_SECONDS if timeout is None else timeout)
    poll = min(float(settings.LLM_QUEUE_POLL_SECONDS), lease_seconds / 3)
    rank = max(-PRIORITY_BOUND, min(PRIORITY_BOUND, int(priority)))
    ticket = uuid.uuid4().hex
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_limit
    wake = asyncio.Event()
    wakeups = _wakeups()
    place = ""
    shown: int | None = None
    shown_at = 0.0
    try:
        await wakeups.add(keys.channel, wake)  # subscribed before the first look: no wake-up missed
        while True:
            wake.clear()
            taken, position, place = await acquire(
                keys=[keys.slots, keys.waiting, keys.alive, keys.arrivals, keys.channel],
                args=[ticket, limit, _lease_ms(lease_seconds), rank, place],
            )
            if taken:
                break
            if on_position is not None and (position != shown or loop.time() - shown_at >= REANNOUNCE_SECONDS):
                shown, shown_at = int(position), loop.time()
                await on_position(shown)
            left = deadline - loop.time()
            if left <= 0:
                raise QueueTimeout(wait_limit)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), min(poll, left))
    except BaseException:
        # Timed out, stopped, or failed: give up the place (or a slot taken as the wait was cancelled).
        await asyncio.shield(_leave(client, keys, ticket))
        raise
    finally:
        wakeups.remove(keys.channel, wake)
    lease = Lease(model=model, ticket=ticket, lease_seconds=lease_seconds)
    lease.start_renewing()
    if shown is not None and on_position is not None:
        try:
            await on_position(0)
        except BaseException:
            await asyncio.shield(lease.release())
            raise
    return lease


@contextlib.asynccontextmanager
async def llm_slot(
    *,
    model: str,
    priority: int = 0,
    on_position: PositionCallback | None = None,
    timeout: float | None = None,
) -> AsyncIterator[Lease | None]:
    """Hold a slot of `model` for the block (None when the model is unbounded), waiting for it in
    line as `slot_acquire` does, and give it back however the block ends."""
    if model_concurrency(model) <= 0:
        yield None
        return
    lease = await slot_acquire(model=model, priority=priority, on_position=on_position, timeout=timeout)
    try:
        yield lease
    finally:
        await asyncio.shield(lease.release())


async def queue_length(*, model: str) -> tuple[int, int]:
    """Slots held and turns waiting for `model` right now (expired leases included until swept)."""
    keys = QueueKeys.of(model)
    client = async_client()
    return int(await client.zcard(keys.slots)), int(await client.zcard(keys.waiting))
