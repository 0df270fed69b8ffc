"""Bad input, other people's conversations and dead processes: a clear error, nothing changed."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from conversations.models import Conversation, Message
from conversations.tasks import reap_interrupted
from tests.conftest import Socket

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def row_counts() -> tuple[int, int]:
    return Conversation.objects.count(), Message.objects.count()


@sync_to_async
def conversation_of(owner: Any, title: str = "Private") -> Conversation:
    conversation = Conversation.objects.create(owner=owner, title=title)
    question = Message.objects.create(conversation=conversation, role="user", content="secret question")
    answer = Message.objects.create(
        conversation=conversation, parent=question, role="assistant", content="secret answer"
    )
    conversation.active_leaf = answer
    conversation.save()
    return conversation


async def expect_error(sock: Socket, frame: dict[str, Any] | str, code: str) -> dict[str, Any]:
    before = await row_counts()
    await sock.send(frame)
    reply = await sock.receive()
    assert reply["type"] == "error", reply
    assert reply["code"] == code
    assert reply["message"], "errors carry words a person can read"
    assert await row_counts() == before, "a refused frame changes nothing"
    await sock.send({"type": "ping"})
    assert (await sock.receive())["type"] == "pong", "the socket stays usable"
    return reply


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_event"),
        (json.dumps({"type": "launch_missiles"}), "unknown_type"),
        (json.dumps({"type": "send", "content": ""}), "empty_message"),
        (json.dumps({"type": "send", "content": "   \n "}), "empty_message"),
        (json.dumps({"type": "send", "content": 42}), "empty_message"),
        (json.dumps({"type": "send", "content": "x" * 101}), "message_too_long"),
        (json.dumps({"type": "send", "content": "hi", "conversation_id": 7}), "invalid_event"),
        (json.dumps({"type": "resume", "conversation_id": "nope", "message_id": 1}), "not_found"),
        (json.dumps({"type": "stop"}), "invalid_event"),
    ],
)
async def test_bad_frames_get_a_clear_error(socket: Socket, settings: Any, frame: str, code: str) -> None:
    settings.CHAT_MAX_MESSAGE_CHARS = 100
    await expect_error(socket, frame, code)


async def test_an_oversized_frame_is_refused(socket: Socket, settings: Any) -> None:
    settings.CHAT_MAX_FRAME_BYTES = 1000
    await expect_error(socket, {"type": "send", "content": "y" * 2000}, "frame_too_large")


async def test_a_missing_conversation_is_refused(socket: Socket) -> None:
    missing = "0b7a4f9e-8a6e-4c43-9f0a-8d3c2f4b1a11"
    reply = await expect_error(
        socket, {"type": "send", "conversation_id": missing, "content": "hi", "client_id": "k-9"}, "not_found"
    )
    assert (reply["conversation_id"], reply["client_id"]) == (missing, "k-9"), "the client can tell what failed"


async def test_another_users_conversation_is_refused_everywhere(socket: Socket, other_user: Any) -> None:
    theirs = await conversation_of(other_user)
    their_answer = await sync_to_async(lambda: theirs.active_leaf_id)()
    cid = str(theirs.pk)
    await expect_error(socket, {"type": "send", "conversation_id": cid, "content": "let me in"}, "not_found")
    await expect_error(socket, {"type": "subscribe", "conversation_id": cid}, "not_found")
    await expect_error(
        socket, {"type": "resume", "conversation_id": cid, "message_id": their_answer, "last_seq": 0}, "not_found"
    )
    await expect_error(socket, {"type": "stop", "conversation_id": cid, "message_id": their_answer}, "not_found")


async def test_a_message_from_another_conversation_is_refused(socket: Socket, user: Any, other_user: Any) -> None:
    mine = await conversation_of(user, "Mine")
    theirs = await conversation_of(other_user)
    their_answer = await sync_to_async(lambda: theirs.active_leaf_id)()
    await expect_error(
        socket,
        {"type": "resume", "conversation_id": str(mine.pk), "message_id": their_answer, "last_seq": 0},
        "message_not_found",
    )


async def test_a_send_while_a_reply_streams_is_refused(socket: Socket, long_replies: None) -> None:
    await socket.send({"type": "send", "content": "first"})
    created = await socket.receive_until(
        lambda f: f["type"] == "message.created" and f["message"]["role"] == "assistant"
    )
    conversation_id = created[-1]["conversation_id"]
    before = await row_counts()
    await socket.send({"type": "send", "conversation_id": conversation_id, "content": "second"})
    frames = await socket.receive_until(lambda f: f["type"] == "error")
    assert frames[-1]["code"] == "busy"
    assert frames[-1]["conversation_id"] == conversation_id
    assert await row_counts() == before
    await socket.send({"type": "stop", "conversation_id": conversation_id, "message_id": created[-1]["message"]["id"]})
    done = (await socket.receive_until(lambda f: f["type"] == "done"))[-1]
    assert done["status"] == "stopped"


async def test_an_anonymous_socket_is_closed() -> None:
    from chatproject.asgi import application

    communicator = WebsocketCommunicator(application, "/ws/chat/", headers=[(b"origin", b"http://testserver")])
    await communicator.connect()
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4401}, "4401 tells the page to sign in again"


async def test_a_socket_from_a_foreign_origin_is_refused(user: Any) -> None:
    from chatproject.asgi import application

    communicator = WebsocketCommunicator(application, "/ws/chat/", headers=[(b"origin", b"http://evil.example")])
    connected, _ = await communicator.connect()
    assert not connected


@sync_to_async
def orphaned_reply(owner: Any, *, heartbeat_age: timedelta) -> Message:
    conversation = Conversation.objects.create(owner=owner, title="Orphan")
    question = Message.objects.create(conversation=conversation, role="user", content="q")
    reply = Message.objects.create(
        conversation=conversation, parent=question, role="assistant", status="streaming", content="half an ans", seq=4
    )
    Message.objects.filter(pk=reply.pk).update(updated_at=timezone.now() - heartbeat_age)
    return reply


async def test_the_reaper_marks_orphaned_replies_interrupted_and_tells_watchers(socket: Socket, user: Any) -> None:
    orphan = await orphaned_reply(user, heartbeat_age=timedelta(minutes=5))
    alive = await orphaned_reply(user, heartbeat_age=timedelta(seconds=0))
    await socket.send({"type": "subscribe", "conversation_id": str(orphan.conversation_id)})
    assert (await socket.receive())["type"] == "subscribed"

    assert await sync_to_async(reap_interrupted)() == 1

    done = await socket.receive()
    assert (done["type"], done["message_id"], done["status"]) == ("done", orphan.pk, "interrupted")
    assert done["content"] == "half an ans"
    stored = await sync_to_async(Message.objects.get)(pk=orphan.pk)
    assert (stored.status, stored.content, stored.seq) == ("interrupted", "half an ans", 4)
    untouched = await sync_to_async(Message.objects.get)(pk=alive.pk)
    assert untouched.status == "streaming"
    assert await sync_to_async(reap_interrupted)() == 0, "reaping twice changes nothing"


async def test_an_interrupted_reply_frees_the_conversation_for_a_new_turn(socket: Socket, user: Any) -> None:
    orphan = await orphaned_reply(user, heartbeat_age=timedelta(minutes=5))
    await sync_to_async(reap_interrupted)()
    await socket.send({"type": "send", "conversation_id": str(orphan.conversation_id), "content": "try again"})
    frames = await socket.receive_until(lambda f: f["type"] in {"done", "error"})
    assert frames[-1]["type"] == "done" and frames[-1]["status"] == "complete"


async def test_a_send_behind_a_dead_reply_reaps_it_and_goes_ahead(socket: Socket, user: Any) -> None:
    orphan = await orphaned_reply(user, heartbeat_age=timedelta(minutes=5))
    await socket.send({"type": "send", "conversation_id": str(orphan.conversation_id), "content": "hello?"})
    frames = await socket.receive_until(lambda f: f["type"] == "done" and f["message_id"] != orphan.pk)
    told = next(f for f in frames if f["type"] == "done" and f["message_id"] == orphan.pk)
    assert told["status"] == "interrupted" and told["content"] == "half an ans"
    assert frames[-1]["status"] == "complete"


async def test_stop_of_a_dead_reply_marks_it_interrupted(socket: Socket, user: Any) -> None:
    orphan = await orphaned_reply(user, heartbeat_age=timedelta(minutes=5))
    await socket.send({"type": "subscribe", "conversation_id": str(orphan.conversation_id)})
    await socket.receive()
    await socket.send({"type": "stop", "conversation_id": str(orphan.conversation_id), "message_id": orphan.pk})
    done = await socket.receive()
    assert (done["type"], done["message_id"], done["status"]) == ("done", orphan.pk, "interrupted")


async def test_a_live_reply_of_another_process_is_not_reaped_by_a_send(socket: Socket, user: Any) -> None:
    alive = await orphaned_reply(user, heartbeat_age=timedelta(seconds=1))
    reply = await expect_error(
        socket, {"type": "send", "conversation_id": str(alive.conversation_id), "content": "hi"}, "busy"
    )
    assert reply["conversation_id"] == str(alive.conversation_id)
