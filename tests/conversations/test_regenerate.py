"""Writing a reply again: a sibling of the old reply under the same question, on the real socket."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async

from conversations.models import Conversation, Message, UsageRecord
from tests.conftest import Socket, open_socket

pytestmark = pytest.mark.django_db(transaction=True)


def is_done(frame: dict[str, Any]) -> bool:
    return frame["type"] == "done"


async def finished_turn(sock: Socket, content: str) -> dict[str, Any]:
    """Send a message and wait for its reply to finish; the done frame."""
    await sock.send({"type": "send", "content": content})
    return (await sock.receive_until(is_done))[-1]


@sync_to_async
def tree_of(conversation_id: str) -> tuple[list[tuple[int, int | None, str, str]], int | None]:
    rows = Message.objects.filter(conversation_id=conversation_id).order_by("id")
    leaf = Conversation.objects.get(pk=conversation_id).active_leaf_id
    return [(m.pk, m.parent_id, m.role, m.status) for m in rows], leaf


async def test_a_reply_is_written_again_beside_the_old_one(socket: Socket) -> None:
    first = await finished_turn(socket, "Name three rivers")
    conversation_id, old_reply = first["conversation_id"], first["message_id"]
    question = (await tree_of(conversation_id))[0][0][0]

    await socket.send({"type": "regenerate", "conversation_id": conversation_id, "message_id": old_reply})
    frames = await socket.receive_until(is_done)

    created = [f for f in frames if f["type"] == "message.created"]
    assert len(created) == 1, "only the new reply is announced; the question is already on screen"
    new_reply = created[0]["message"]
    assert (new_reply["role"], new_reply["parent_id"], new_reply["status"]) == ("assistant", question, "streaming")
    deltas = [f for f in frames if f["type"] == "delta"]
    assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
    assert frames[-1]["status"] == "complete" and frames[-1]["content"] == first["content"]

    rows, leaf = await tree_of(conversation_id)
    assert rows == [
        (question, None, "user", "complete"),
        (old_reply, question, "assistant", "complete"),
        (new_reply["id"], question, "assistant", "complete"),
    ]
    assert leaf == new_reply["id"]
    assert await sync_to_async(UsageRecord.objects.filter(message_id=new_reply["id"]).count)() == 1


@sync_to_async
def snapshot_of_rows() -> tuple[int, list[tuple[str, int | None]]]:
    return Message.objects.count(), list(Conversation.objects.order_by("pk").values_list("title", "active_leaf_id"))


async def expect_refusal(sock: Socket, frame: dict[str, Any], code: str) -> None:
    before = await snapshot_of_rows()
    await sock.send(frame)
    reply = await sock.receive()
    assert (reply["type"], reply["code"]) == ("error", code), reply
    assert reply["message"]
    assert await snapshot_of_rows() == before, "a refused regenerate changes nothing"


async def test_a_bad_regenerate_is_refused_and_changes_nothing(socket: Socket, other_user: Any) -> None:
    done = await finished_turn(socket, "Tell me a fact")
    conversation_id, reply = done["conversation_id"], done["message_id"]
    question = (await tree_of(conversation_id))[0][0][0]
    theirs = await open_socket(other_user)
    elsewhere = await finished_turn(theirs, "Their own chat")

    regenerate = {"type": "regenerate", "conversation_id": conversation_id}
    await expect_refusal(socket, {**regenerate, "message_id": question}, "not_regenerable")
    await expect_refusal(socket, {**regenerate, "message_id": elsewhere["message_id"]}, "message_not_found")
    await expect_refusal(socket, {**regenerate, "message_id": "7"}, "invalid_event")
    await expect_refusal(socket, {**regenerate, "message_id": True}, "invalid_event")
    await expect_refusal(
        socket, {**regenerate, "conversation_id": elsewhere["conversation_id"], "message_id": reply}, "not_found"
    )
    await theirs.close()


async def test_regenerate_waits_for_the_reply_being_written(socket: Socket, long_replies: None) -> None:
    done = await finished_turn(socket, "First")
    conversation_id = done["conversation_id"]
    await socket.send({"type": "send", "conversation_id": conversation_id, "content": "Second"})
    streaming = (await socket.receive_until(lambda f: f["type"] == "delta"))[-1]

    await socket.send({"type": "regenerate", "conversation_id": conversation_id, "message_id": done["message_id"]})
    refusal = await socket.receive_until(lambda f: f["type"] == "error")

    assert refusal[-1]["code"] == "busy"
    await socket.send({"type": "stop", "conversation_id": conversation_id, "message_id": streaming["message_id"]})
    await socket.receive_until(is_done)
    rows, _ = await tree_of(conversation_id)
    assert len(rows) == 4, "no reply was added beside the first"
