"""The chat socket end to end: real ASGI app, Redis channel layer, PostgreSQL, the offline model."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async

from chatproject.llm.offline import compose_reply
from conversations.models import Message, UsageRecord
from conversations.services.turns import local_generation
from tests.conftest import Socket, open_socket

pytestmark = pytest.mark.django_db(transaction=True)


def is_done(frame: dict[str, Any]) -> bool:
    return frame["type"] == "done"


def deltas_of(frames: list[dict[str, Any]], message_id: int) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] == "delta" and f["message_id"] == message_id]


async def start_turn(sock: Socket, content: str, conversation_id: str | None = None) -> tuple[dict, dict]:
    """Send a message; return the user's and the assistant's message.created frames."""
    frame: dict[str, Any] = {"type": "send", "content": content, "client_id": "c-1"}
    if conversation_id:
        frame["conversation_id"] = conversation_id
    await sock.send(frame)
    created = await sock.receive_until(lambda f: f["type"] == "message.created" and f["message"]["role"] == "assistant")
    user_created = next(f for f in created if f["type"] == "message.created" and f["message"]["role"] == "user")
    return user_created, created[-1]


@sync_to_async
def fetch(message_id: int) -> Message:
    return Message.objects.get(pk=message_id)


async def test_it_streams_a_reply_and_stores_it(socket: Socket) -> None:
    user_created, assistant_created = await start_turn(socket, "Explain monads briefly")
    assert user_created["client_id"] == "c-1"
    assert user_created["message"]["content"] == "Explain monads briefly"
    message_id = assistant_created["message"]["id"]
    assert assistant_created["message"]["status"] == "streaming"

    frames = await socket.receive_until(is_done)
    deltas = deltas_of(frames, message_id)
    done = frames[-1]

    assert len(deltas) >= 2, "the reply must arrive in pieces, not at once"
    assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
    streamed = "".join(d["text"] for d in deltas)
    expected = compose_reply([{"role": "user", "content": "Explain monads briefly"}])
    assert streamed == expected
    assert done["status"] == "complete"
    assert done["content"] == expected
    assert done["seq"] == len(deltas)
    assert "<strong>Offline model.</strong>" in done["html"]
    assert done["usage"]["completion_tokens"] > 0

    stored = await fetch(message_id)
    assert stored.status == "complete"
    assert stored.content == expected
    assert stored.seq == len(deltas)
    assert stored.ttft_ms is not None and stored.duration_ms is not None
    assert stored.finished_at is not None
    usage = await sync_to_async(UsageRecord.objects.get)(message_id=message_id)
    assert usage.completion_tokens == done["usage"]["completion_tokens"]
    assert usage.purpose == "chat"


async def test_a_second_turn_continues_the_same_conversation(socket: Socket) -> None:
    _, first = await start_turn(socket, "first question")
    await socket.receive_until(is_done)
    conversation_id = first["conversation_id"]
    user_created, second = await start_turn(socket, "second question", conversation_id)
    await socket.receive_until(is_done)
    assert second["conversation_id"] == conversation_id
    assert user_created["message"]["parent_id"] == first["message"]["id"]
    reply = await fetch(second["message"]["id"])
    assert "it has 2 messages from you" in reply.content


async def test_stop_keeps_the_partial_text(socket: Socket, long_replies: None) -> None:
    _, created = await start_turn(socket, "tell me a long story")
    message_id = created["message"]["id"]
    first = await socket.receive_until(lambda f: f["type"] == "delta")
    await socket.send({"type": "stop", "conversation_id": created["conversation_id"], "message_id": message_id})
    frames = first + await socket.receive_until(is_done)
    done = frames[-1]
    streamed = "".join(d["text"] for d in deltas_of(frames, message_id))

    assert done["status"] == "stopped"
    full = compose_reply([{"role": "user", "content": "tell me a long story"}])
    assert 0 < len(done["content"]) < len(full)
    assert full.startswith(done["content"])
    assert streamed == done["content"]
    stored = await fetch(message_id)
    assert (stored.status, stored.content) == ("stopped", done["content"])
    assert local_generation(message_id) is None


async def test_the_reply_keeps_going_when_its_socket_closes_and_resume_has_no_gap(
    user: Any, long_replies: None
) -> None:
    first_socket = await open_socket(user)
    _, created = await start_turn(first_socket, "a long answer please")
    message_id, conversation_id = created["message"]["id"], created["conversation_id"]
    seen = await first_socket.receive_until(lambda f: f["type"] == "delta" and f["seq"] >= 3)
    held = "".join(d["text"] for d in deltas_of(seen, message_id))
    last_seq = deltas_of(seen, message_id)[-1]["seq"]
    await first_socket.close()

    second_socket = await open_socket(user)
    await second_socket.send(
        {"type": "resume", "conversation_id": conversation_id, "message_id": message_id, "last_seq": last_seq}
    )
    frames = await second_socket.receive_until(is_done)
    snapshot = next(f for f in frames if f["type"] == "snapshot")
    assert snapshot["seq"] >= last_seq
    assert snapshot["content"].startswith(held)
    after = [d for d in deltas_of(frames, message_id)]
    assert [d["seq"] for d in after] == list(range(snapshot["seq"] + 1, snapshot["seq"] + 1 + len(after)))
    rebuilt = snapshot["content"] + "".join(d["text"] for d in after)
    done = frames[-1]
    assert done["status"] == "complete"
    assert rebuilt == done["content"] == compose_reply([{"role": "user", "content": "a long answer please"}])
    assert (await fetch(message_id)).content == rebuilt
    await second_socket.close()


async def test_resume_of_a_finished_reply_sends_its_final_state(socket: Socket) -> None:
    _, created = await start_turn(socket, "short")
    done = (await socket.receive_until(is_done))[-1]
    await socket.send(
        {
            "type": "resume",
            "conversation_id": created["conversation_id"],
            "message_id": done["message_id"],
            "last_seq": 0,
        }
    )
    snapshot = await socket.receive()
    final = await socket.receive()
    assert (snapshot["type"], snapshot["content"]) == ("snapshot", done["content"])
    assert (final["type"], final["status"], final["content"]) == ("done", "complete", done["content"])


async def test_two_sockets_on_one_conversation_see_the_same_stream(user: Any) -> None:
    tab_a = await open_socket(user)
    tab_b = await open_socket(user)
    _, first = await start_turn(tab_a, "hello")
    await tab_a.receive_until(is_done)
    conversation_id = first["conversation_id"]
    await tab_b.send({"type": "subscribe", "conversation_id": conversation_id})
    assert (await tab_b.receive())["type"] == "subscribed"

    _, created = await start_turn(tab_a, "again", conversation_id)
    message_id = created["message"]["id"]
    frames_a = await tab_a.receive_until(is_done)
    frames_b = await tab_b.receive_until(is_done)
    assert [f["type"] for f in frames_b[:2]] == ["message.created", "message.created"]
    assert deltas_of(frames_a, message_id) == deltas_of(frames_b, message_id)
    assert frames_a[-1] == frames_b[-1]
    await tab_a.close()
    await tab_b.close()


async def test_a_mid_stream_upstream_failure_keeps_the_text_and_tells_the_client(
    socket: Socket, settings: Any, upstream_model: Any
) -> None:
    settings.LLM_MODELS[0]["extra_headers"] = {"x-fake-fail-after": "5", "x-fake-tokens": "50"}
    from chatproject.llm.config import configured_models

    configured_models.cache_clear()
    _, created = await start_turn(socket, "this will break")
    frames = await socket.receive_until(is_done)
    done = frames[-1]
    assert done["status"] == "failed"
    assert done["error"]["code"] in {"upstream_cut", "upstream_error"}
    assert done["error"]["retryable"] is True
    assert done["content"] == "tok0 tok1 tok2 tok3 tok4 "
    stored = await fetch(created["message"]["id"])
    assert (stored.status, stored.content) == ("failed", "tok0 tok1 tok2 tok3 tok4 ")
    assert stored.error_code == done["error"]["code"]


async def test_a_reply_streams_from_an_openai_compatible_server(
    socket: Socket, upstream_model: Any, user: Any
) -> None:
    from memory.services import memory_set_enabled

    # Memory off: fact extraction would otherwise be the fake server's last request.
    await sync_to_async(memory_set_enabled)(user=user, enabled=False)
    _, created = await start_turn(socket, "over http")
    frames = await socket.receive_until(is_done)
    done = frames[-1]
    assert done["status"] == "complete"
    assert done["content"] == "".join(f"tok{i} " for i in range(20))
    stored = await fetch(created["message"]["id"])
    assert stored.model == "openai/fake-model"
    assert stored.completion_tokens == 20
    sent = upstream_model.last_request()
    assert sent["messages"][-1] == {"role": "user", "content": "over http"}
    assert sent["messages"][0]["role"] == "system"


async def test_stop_closes_the_upstream_request(socket: Socket, settings: Any, upstream_model: Any) -> None:
    settings.LLM_MODELS[0]["extra_headers"] = {"x-fake-tokens": "2000", "x-fake-token-delay-ms": "5"}
    from chatproject.llm.config import configured_models

    configured_models.cache_clear()
    _, created = await start_turn(socket, "go on forever")
    await socket.receive_until(lambda f: f["type"] == "delta")
    await socket.send(
        {"type": "stop", "conversation_id": created["conversation_id"], "message_id": created["message"]["id"]}
    )
    done = (await socket.receive_until(is_done))[-1]
    assert done["status"] == "stopped"
    stats = await upstream_model.wait_for_async(lambda s: s["client_disconnects"] >= 1, timeout=10)
    assert stats["streams_completed"] == 0
    assert done["content"].startswith("tok0 ") and len(done["content"].split()) < 2000
