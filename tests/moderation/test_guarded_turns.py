"""Guardrails through the real chat socket: blocked input, redacted input, a reply stopped mid-stream."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from chatproject.llm.config import configured_models
from conversations.models import Message
from moderation.models import Flag, Suspension
from tests.conftest import Socket

pytestmark = pytest.mark.django_db(transaction=True)

KEYWORD = "tests.moderation.test_pipeline.KeywordDetector"


def is_done(frame: dict[str, Any]) -> bool:
    return frame["type"] == "done"


@sync_to_async
def flags() -> list[Flag]:
    return list(Flag.objects.order_by("id"))


@sync_to_async
def message(pk: int) -> Message:
    return Message.objects.get(pk=pk)


async def test_a_blocked_message_never_reaches_the_model(
    socket: Socket, settings: Any, upstream_model: Any, user: User
) -> None:
    settings.MODERATION_DETECTORS = [
        {
            "name": "kw",
            "path": KEYWORD,
            "options": {"word": "forbidden", "category": "prompt_injection"},
            "actions": {"input": "block"},
        }
    ]
    await socket.send({"type": "send", "content": "a forbidden request", "client_id": "c-7"})
    # The error goes to this socket directly, the new message to every socket of the conversation:
    # the two may arrive in either order.
    frames = {f["type"]: f for f in [await socket.receive(), await socket.receive()]}
    created, error = frames["message.created"], frames["error"]

    assert created["type"] == "message.created" and created["message"]["status"] == "blocked"
    assert (error["type"], error["code"], error["client_id"]) == ("error", "blocked", "c-7")
    assert "not sent to the assistant" in error["message"]
    assert upstream_model.stats()["requests"] == 0, "the model never saw it"
    stored = await message(created["message"]["id"])
    assert (stored.status, stored.content) == ("blocked", "a forbidden request")
    assert await sync_to_async(Message.objects.filter(role="assistant").count)() == 0
    [flag] = await flags()
    assert (flag.direction, flag.action, flag.category, flag.message_id) == (
        "input",
        "blocked",
        "prompt_injection",
        stored.pk,
    )
    assert await socket.nothing_pending()


async def test_a_redacted_message_reaches_the_model_redacted(
    socket: Socket, settings: Any, upstream_model: Any, user: User
) -> None:
    from memory.services import memory_set_enabled

    # Memory off, so the last request the fake server saw is the chat turn, not fact extraction.
    await sync_to_async(memory_set_enabled)(user=user, enabled=False)
    settings.MODERATION_DETECTORS = [
        {
            "name": "kw",
            "path": KEYWORD,
            "options": {"word": "4242-SECRET", "category": "pii.secret"},
            "actions": {"input": "redact"},
        }
    ]
    await socket.send({"type": "send", "content": "my code is 4242-SECRET, keep it safe"})
    frames = await socket.receive_until(is_done)
    assert frames[-1]["status"] == "complete"
    sent = upstream_model.last_request()
    assert sent["messages"][-1]["content"] == "my code is [WORD], keep it safe"
    assert "4242-SECRET" not in str(sent)
    user_message = next(f for f in frames if f["type"] == "message.created" and f["message"]["role"] == "user")
    stored = await message(user_message["message"]["id"])
    assert stored.content == "my code is 4242-SECRET, keep it safe", "stored as written unless configured otherwise"
    assert stored.redacted_content == "my code is [WORD], keep it safe", "what every later model call sees"
    [flag] = await flags()
    assert (flag.action, flag.direction) == ("redacted", "input")


async def test_redaction_of_stored_messages_is_a_setting(
    socket: Socket, settings: Any, upstream_model: Any, user: User
) -> None:
    settings.MODERATION_REDACT_STORED_INPUT = True
    settings.MODERATION_DETECTORS = [
        {"name": "kw", "path": KEYWORD, "options": {"word": "4242-SECRET"}, "actions": {"input": "redact"}}
    ]
    await socket.send({"type": "send", "content": "code 4242-SECRET"})
    frames = await socket.receive_until(is_done)
    user_message = next(f for f in frames if f["type"] == "message.created" and f["message"]["role"] == "user")
    assert (await message(user_message["message"]["id"])).content == "code [WORD]"


async def test_a_reply_stopped_mid_stream_keeps_what_the_user_saw(
    socket: Socket, settings: Any, upstream_model: Any, user: User
) -> None:
    settings.MODERATION_DETECTORS = [
        {
            "name": "kw",
            "path": KEYWORD,
            "options": {"word": "tok7 ", "category": "toxicity.test"},
            "actions": {"output_inline": "block"},
        }
    ]
    settings.LLM_MODELS[0]["extra_headers"] = {"x-fake-tokens": "40", "x-fake-token-delay-ms": "5"}
    configured_models.cache_clear()
    await socket.send({"type": "send", "content": "say something"})
    frames = await socket.receive_until(is_done)
    done = frames[-1]
    seen = "".join(f["text"] for f in frames if f["type"] == "delta")

    assert done["status"] == "blocked"
    assert done["error"]["code"] == "blocked_output" and "stopped" in done["error"]["message"]
    assert "tok7" not in seen and seen.startswith("tok0 ")
    assert done["content"] == seen, "the stored reply is exactly what was shown"
    stored = await message(done["message_id"])
    assert (stored.status, stored.content) == ("blocked", seen)
    [flag] = await flags()
    assert (flag.direction, flag.action, flag.message_id) == ("output", "blocked", stored.pk)
    assert await upstream_model.wait_for_async(lambda s: s["client_disconnects"] >= 1, timeout=10)


async def test_a_reply_repeating_the_canary_is_stopped(socket: Socket, settings: Any, user: User) -> None:
    settings.MODERATION_DETECTORS = [
        {
            "name": "leakage",
            "path": "moderation.detectors.leakage.LeakageDetector",
            "actions": {"output_inline": "block"},
        }
    ]
    # The offline model quotes the user's message back, canary included.
    await socket.send({"type": "send", "content": f"repeat {settings.MODERATION_CANARY} please"})
    done = (await socket.receive_until(is_done))[-1]
    assert done["status"] == "blocked"
    assert settings.MODERATION_CANARY not in done["content"]
    assert "private instructions" in done["error"]["message"]


async def test_after_completion_mode_flags_without_stopping(socket: Socket, settings: Any, user: User) -> None:
    settings.MODERATION_OUTPUT_MODE = "after"
    settings.MODERATION_DETECTORS = [
        {"name": "kw", "path": KEYWORD, "options": {"word": "Offline model", "category": "policy.test"},
         "actions": {"output_inline": "block", "output_after": "flag"}}
    ]  # fmt: skip
    await socket.send({"type": "send", "content": "hello"})
    done = (await socket.receive_until(is_done))[-1]
    assert done["status"] == "complete"
    [flag] = await flags()
    assert (flag.direction, flag.action, flag.message_id) == ("output", "flagged", done["message_id"])


async def test_a_suspended_user_cannot_send(socket: Socket, user: User) -> None:
    await sync_to_async(Suspension.objects.create)(user=user, reason="spam")
    await socket.send({"type": "send", "content": "hello", "client_id": "c-1"})
    error = await socket.receive()
    assert (error["type"], error["code"], error["client_id"]) == ("error", "suspended", "c-1")
    assert await sync_to_async(Message.objects.count)() == 0
