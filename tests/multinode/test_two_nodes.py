"""Two daphne processes and a Celery worker on one Redis and one PostgreSQL act as one service."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from conversations.models import Conversation, Message
from tests.conftest import session_cookie_for, wait_for_message
from tests.multinode.conftest import Client, Cluster

pytestmark = pytest.mark.django_db(transaction=True)

Frame = dict[str, Any]


def is_done(frame: Frame) -> bool:
    return frame["type"] == "done"


def deltas_of(frames: list[Frame], message_id: int) -> list[Frame]:
    return [f for f in frames if f["type"] == "delta" and f["message_id"] == message_id]


def assert_in_order(deltas: list[Frame], after: int = 0) -> None:
    """Numbered from after+1 with no gap and no repeat."""
    assert [d["seq"] for d in deltas] == list(range(after + 1, after + 1 + len(deltas)))


@sync_to_async
def new_conversation(user: User) -> str:
    return str(Conversation.objects.create(owner=user, title="Shared").pk)


@sync_to_async
def stored(message_id: int) -> Message:
    return Message.objects.get(pk=message_id)


@sync_to_async
def cookie_of(user: User) -> str:
    return session_cookie_for(user)


async def start_reply(client: Client, content: str, conversation_id: str | None = None) -> Frame:
    """Send a message; the assistant's message.created frame."""
    frame: Frame = {"type": "send", "content": content}
    if conversation_id is not None:
        frame["conversation_id"] = conversation_id
    await client.send(frame)
    created = await client.receive_until(
        lambda f: f["type"] == "message.created" and f["message"]["role"] == "assistant"
    )
    return created[-1]


async def test_a_reply_started_on_one_node_streams_to_a_socket_on_the_other(
    cluster: Cluster, connect: Any, user: User
) -> None:
    cookie = await cookie_of(user)
    conversation_id = await new_conversation(user)
    on_b = await connect(cluster.b, cookie)
    await on_b.send({"type": "subscribe", "conversation_id": conversation_id})
    assert (await on_b.receive())["type"] == "subscribed"
    on_a = await connect(cluster.a, cookie)

    created = await start_reply(on_a, "Tell me about several nodes", conversation_id)
    message_id = created["message"]["id"]
    frames_a = await on_a.receive_until(is_done)
    frames_b = await on_b.receive_until(is_done)

    seen_on_b = deltas_of(frames_b, message_id)
    assert len(seen_on_b) >= 10, "node B must see the reply in pieces"
    assert_in_order(seen_on_b)
    assert seen_on_b == deltas_of(frames_a, message_id)
    done = frames_b[-1]
    assert done["status"] == "complete"
    assert "".join(d["text"] for d in seen_on_b) == done["content"] == (await stored(message_id)).content


async def test_a_client_that_reconnects_to_the_other_node_resumes(cluster: Cluster, connect: Any, user: User) -> None:
    cookie = await cookie_of(user)
    on_a = await connect(cluster.a, cookie)
    created = await start_reply(on_a, "A long answer, please")
    conversation_id, message_id = created["conversation_id"], created["message"]["id"]
    before = deltas_of(await on_a.receive_until(lambda f: f["type"] == "delta" and f["seq"] >= 5), message_id)
    await on_a.close()  # the network drops; the reply goes on being written on node A
    held = "".join(d["text"] for d in before)

    on_b = await connect(cluster.b, cookie)
    await on_b.send({"type": "resume", "conversation_id": conversation_id, "message_id": message_id, "last_seq": 5})
    frames = await on_b.receive_until(is_done)

    snapshot = next(f for f in frames if f["type"] == "snapshot")
    assert snapshot["seq"] >= 5 and snapshot["content"].startswith(held)
    after = deltas_of(frames, message_id)
    assert_in_order(after, after=snapshot["seq"])
    assert all(frames.index(snapshot) < frames.index(d) for d in after), "the snapshot comes first"
    done = frames[-1]
    assert done["status"] == "complete"
    assert snapshot["content"] + "".join(d["text"] for d in after) == done["content"]
    assert (await stored(message_id)).content == done["content"]


async def test_killing_a_node_mid_reply_leaves_it_interrupted_and_another_node_regenerates_it(
    cluster: Cluster, connect: Any, user: User
) -> None:
    cookie = await cookie_of(user)
    on_a = await connect(cluster.a, cookie)
    created = await start_reply(on_a, "Write at length")
    conversation_id, message_id = created["conversation_id"], created["message"]["id"]
    question_id = created["message"]["parent_id"]
    on_b = await connect(cluster.b, cookie)
    await on_b.send({"type": "subscribe", "conversation_id": conversation_id})
    await on_b.receive_until(lambda f: f["type"] == "subscribed")
    # Some text is checkpointed.
    await sync_to_async(wait_for_message, thread_sensitive=False)(message_id, lambda m: m.seq >= 3)

    cluster.a.kill()

    # The reaper (Celery beat in the worker) marks the reply interrupted and tells the watchers.
    frames = await on_b.receive_until(lambda f: is_done(f) and f["message_id"] == message_id)
    done = frames[-1]
    assert done["status"] == "interrupted"
    assert done["error"]["code"] == "interrupted"
    row = await stored(message_id)
    assert (row.status, row.content, row.seq) == ("interrupted", done["content"], done["seq"])
    assert row.seq >= 3 and row.content, "the checkpointed text is kept"
    streamed_to_b = deltas_of(frames, message_id)
    if streamed_to_b:  # what node B saw before the kill agrees with what was kept
        kept = [d for d in streamed_to_b if d["seq"] <= row.seq]
        assert row.content.endswith("".join(d["text"] for d in kept))

    await on_b.send({"type": "regenerate", "conversation_id": conversation_id, "message_id": message_id})
    created = (await on_b.receive_until(lambda f: f["type"] == "message.created"))[-1]
    again = created["message"]
    assert (again["role"], again["parent_id"], again["status"]) == ("assistant", question_id, "streaming")
    frames = await on_b.receive_until(lambda f: is_done(f) and f["message_id"] == again["id"])
    assert_in_order(deltas_of(frames, again["id"]))
    assert frames[-1]["status"] == "complete"

    new_row = await stored(again["id"])
    conversation = await sync_to_async(Conversation.objects.get)(pk=conversation_id)
    assert new_row.parent_id == question_id and new_row.content == frames[-1]["content"]
    assert conversation.active_leaf_id == new_row.pk, "the new reply is the branch the user sees"
    assert (await stored(message_id)).status == "interrupted", "the old reply stays, as a sibling"
