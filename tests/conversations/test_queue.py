"""The LLM queue on real Redis: order, places shown to the user, timeout, dead holders, stop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from chatproject.llm.config import configured_models, default_model
from chatproject.redis_client import async_client
from conversations.limits.budgets import budget_status
from conversations.limits.queue import (
    Lease,
    QueueKeys,
    QueueTimeout,
    llm_slot,
    model_concurrency,
    queue_length,
    slot_acquire,
)
from conversations.models import Message, Plan, UsageRecord, UserPlan
from tests.conftest import Socket, open_socket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def one_slot(settings: Any, empty_llm_queue: None) -> None:
    settings.LLM_QUEUE_MAX_CONCURRENCY = 1
    configured_models.cache_clear()


def model() -> str:
    return default_model().name


def is_done(frame: dict[str, Any]) -> bool:
    return frame["type"] == "done"


def is_queue(frame: dict[str, Any]) -> bool:
    return frame["type"] == "queue"


def told(frames: list[dict[str, Any]]) -> list[int]:
    """The places in line the frames announce, repeats dropped."""
    places = [f["position"] for f in frames if is_queue(f)]
    return [p for i, p in enumerate(places) if i == 0 or places[i - 1] != p]


async def start_turn(sock: Socket, content: str) -> dict[str, Any]:
    """Send a message; return the assistant's message.created frame."""
    await sock.send({"type": "send", "content": content})
    frames = await sock.receive_until(lambda f: f["type"] == "message.created" and f["message"]["role"] == "assistant")
    return frames[-1]


def make_premium(user: User) -> None:
    premium, _ = Plan.objects.update_or_create(name="premium", defaults={"label": "Premium", "queue_priority": 10})
    UserPlan.objects.create(user=user, plan=premium)


class Waiter:
    """A turn waiting for a slot from the test, recording the places it is told."""

    def __init__(self, name: str, priority: int, served: list[str]) -> None:
        self.name = name
        self.positions: list[int] = []
        self.in_line = asyncio.Event()
        self.task = asyncio.create_task(self._run(priority, served))

    async def _heard(self, position: int) -> None:
        self.positions.append(position)
        self.in_line.set()

    async def _run(self, priority: int, served: list[str]) -> None:
        lease = await slot_acquire(model=model(), priority=priority, on_position=self._heard)
        served.append(self.name)
        await lease.release()


# --- order --------------------------------------------------------------------------------------


async def test_premium_goes_first_and_each_priority_waits_in_arrival_order(settings: Any) -> None:
    # Waiters look on their own only every 30 s here: every move below is announced through pub/sub.
    settings.LLM_QUEUE_POLL_SECONDS = 30
    settings.LLM_QUEUE_LEASE_SECONDS = 90
    holder = await slot_acquire(model=model())
    served: list[str] = []
    waiters: list[Waiter] = []
    for name, priority in [("free-1", 0), ("free-2", 0), ("premium-1", 10), ("premium-2", 10)]:
        waiter = Waiter(name, priority, served)
        await asyncio.wait_for(waiter.in_line.wait(), 5)  # in line before the next one arrives
        waiters.append(waiter)
    free_1 = waiters[0]
    # Premium arrivals went ahead of free-1, and it was told.
    while free_1.positions[-1] != 3:
        free_1.in_line.clear()
        await asyncio.wait_for(free_1.in_line.wait(), 10)

    await holder.release()
    await asyncio.wait_for(asyncio.gather(*(w.task for w in waiters)), 20)

    assert served == ["premium-1", "premium-2", "free-1", "free-2"]
    # Told each time the line moved (moves close together may be told as one).
    peak = free_1.positions.index(3)
    assert free_1.positions[0] == 1
    assert free_1.positions[peak:] == sorted(set(free_1.positions[peak:]), reverse=True)
    assert free_1.positions[-1] == 0
    assert waiters[2].positions[0] == 1  # premium-1 went straight to the front
    assert await queue_length(model=model()) == (0, 0)


async def test_a_model_allows_as_many_as_its_limit(settings: Any) -> None:
    settings.LLM_MODELS = [{"name": "wide", "model": "offline/parley-wide", "max_concurrency": 2}]
    settings.LLM_MODEL = "wide"
    configured_models.cache_clear()
    assert model_concurrency("wide") == 2
    first = await slot_acquire(model="wide")
    second = await slot_acquire(model="wide")
    with pytest.raises(QueueTimeout):
        await slot_acquire(model="wide", timeout=0.2)
    await first.release()
    third = await slot_acquire(model="wide", timeout=5)
    await second.release()
    await third.release()
    assert await queue_length(model="wide") == (0, 0)


async def test_an_unbounded_model_does_not_queue(settings: Any) -> None:
    settings.LLM_QUEUE_MAX_CONCURRENCY = 0
    async with llm_slot(model=model()) as first, llm_slot(model=model()) as second:
        assert first is None and second is None
    assert await queue_length(model=model()) == (0, 0)


# --- what the user sees -------------------------------------------------------------------------


async def test_users_see_their_place_in_line_and_premium_is_served_first(user: User, other_user: User) -> None:
    await sync_to_async(make_premium)(other_user)
    holder = await slot_acquire(model=model())
    free_socket = await open_socket(user)
    premium_socket = await open_socket(other_user)

    free_created = await start_turn(free_socket, "free user here")
    first_place = (await free_socket.receive_until(is_queue))[-1]
    assert first_place == {
        "type": "queue",
        "conversation_id": free_created["conversation_id"],
        "message_id": free_created["message"]["id"],
        "position": 1,
    }
    premium_created = await start_turn(premium_socket, "premium user here")
    assert (await premium_socket.receive_until(is_queue))[-1]["position"] == 1
    # Moved back, and told.
    await free_socket.receive_until(lambda f: is_queue(f) and f["position"] == 2, timeout=5)

    await holder.release()
    premium_frames = await premium_socket.receive_until(is_done)
    free_frames = await free_socket.receive_until(is_done)

    # A place that has not changed is said again every few seconds (for late joiners): ignore repeats.
    assert told(premium_frames)[-1] == 0
    assert told(free_frames)[-2:] == [1, 0]
    # No text arrives before the slot is taken.
    first_delta = next(i for i, f in enumerate(free_frames) if f["type"] == "delta")
    assert first_delta > next(i for i, f in enumerate(free_frames) if is_queue(f) and f["position"] == 0)
    assert premium_frames[-1]["status"] == free_frames[-1]["status"] == "complete"
    premium_reply = await sync_to_async(Message.objects.get)(pk=premium_created["message"]["id"])
    free_reply = await sync_to_async(Message.objects.get)(pk=free_created["message"]["id"])
    assert premium_reply.finished_at is not None and free_reply.finished_at is not None
    assert premium_reply.finished_at < free_reply.finished_at
    await free_socket.close()
    await premium_socket.close()


async def test_a_wait_past_the_timeout_fails_the_reply_without_charge(
    socket: Socket, user: User, settings: Any
) -> None:
    settings.LLM_QUEUE_TIMEOUT_SECONDS = 0.3
    holder = await slot_acquire(model=model())
    created = await start_turn(socket, "will I get a turn?")
    done = (await socket.receive_until(is_done))[-1]

    assert done["status"] == "failed"
    assert done["content"] == ""
    assert done["error"]["code"] == "queue_timeout"
    assert done["error"]["retryable"] is True
    assert "Too many people are using this model right now" in done["error"]["message"]
    reply = await sync_to_async(Message.objects.get)(pk=created["message"]["id"])
    assert (reply.status, reply.error_code) == ("failed", "queue_timeout")
    record = await sync_to_async(UsageRecord.objects.get)(message=reply)
    assert record.prompt_tokens + record.completion_tokens == 0
    status = await sync_to_async(budget_status)(user_id=user.pk)
    assert (status.day.used, status.day.reserved) == (0, 0)
    assert await queue_length(model=model()) == (1, 0)  # only the holder: the waiter left the line
    await holder.release()


async def test_stop_while_queued_leaves_the_line_without_charge(socket: Socket, user: User) -> None:
    holder = await slot_acquire(model=model())
    created = await start_turn(socket, "never mind")
    await socket.receive_until(is_queue)
    assert await queue_length(model=model()) == (1, 1)

    await socket.send(
        {"type": "stop", "conversation_id": created["conversation_id"], "message_id": created["message"]["id"]}
    )
    done = (await socket.receive_until(is_done))[-1]

    assert (done["status"], done["content"]) == ("stopped", "")
    assert await queue_length(model=model()) == (1, 0)
    status = await sync_to_async(budget_status)(user_id=user.pk)
    assert (status.day.used, status.day.reserved) == (0, 0)
    reply = await sync_to_async(Message.objects.get)(pk=created["message"]["id"])
    assert reply.status == "stopped"
    await holder.release()


# --- leases -------------------------------------------------------------------------------------


async def redis_now_ms() -> int:
    seconds, micros = await async_client().time()
    return int(seconds) * 1000 + int(micros) // 1000


async def test_the_slot_of_a_dead_holder_expires(settings: Any) -> None:
    settings.LLM_QUEUE_POLL_SECONDS = 0.05
    # What a node that died holding a slot leaves behind: a lease nobody renews.
    keys = QueueKeys.of(model())
    await async_client().zadd(keys.slots, {"dead-node": await redis_now_ms() + 300})
    positions: list[int] = []

    async def heard(position: int) -> None:
        positions.append(position)

    lease = await asyncio.wait_for(slot_acquire(model=model(), on_position=heard, timeout=5), 5)

    assert positions == [1, 0]  # it waited, then got the dead holder's slot
    assert await async_client().zscore(keys.slots, "dead-node") is None
    await lease.release()


async def test_a_live_holder_keeps_its_slot_past_the_lease(settings: Any) -> None:
    settings.LLM_QUEUE_LEASE_SECONDS = 0.3
    settings.LLM_QUEUE_POLL_SECONDS = 0.05
    holder: Lease = await slot_acquire(model=model())
    # Renewed every 0.1 s, so a waiter looking for a second (three leases) never gets it.
    with pytest.raises(QueueTimeout):
        await slot_acquire(model=model(), timeout=1.0)
    assert not holder.lost
    await holder.release()


async def test_a_waiter_of_a_dead_node_drops_out_of_line(settings: Any) -> None:
    settings.LLM_QUEUE_POLL_SECONDS = 0.05
    keys = QueueKeys.of(model())
    holder = await slot_acquire(model=model())
    # A dead node's waiter: first in line, but it stopped renewing its place.
    await async_client().zadd(keys.waiting, {"dead-waiter": -(10**12)})
    await async_client().zadd(keys.alive, {"dead-waiter": await redis_now_ms() + 200})
    served: list[str] = []
    waiter = Waiter("alive", 0, served)
    await asyncio.wait_for(waiter.in_line.wait(), 5)
    assert waiter.positions == [2]

    await holder.release()
    await asyncio.wait_for(waiter.task, 5)
    assert served == ["alive"]
    assert waiter.positions[-1] == 0
    assert await async_client().zscore(keys.waiting, "dead-waiter") is None
    assert await queue_length(model=model()) == (0, 0)
