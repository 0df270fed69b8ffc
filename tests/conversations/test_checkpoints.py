"""Checkpoints: every reply streaming in a process is saved by one statement per interval."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from conversations.models import Message
from conversations.services import turns
from conversations.services.messages import messages_checkpoint
from tests.conftest import Socket, make_user, open_socket
from tests.conversations.test_consumer_streaming import fetch, is_done, start_turn

pytestmark = pytest.mark.django_db(transaction=True)


async def test_replies_streaming_together_are_checkpointed_in_one_write(
    settings: Any, long_replies: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CHAT_CHECKPOINT_SECONDS = 0.05
    writes: list[list[tuple[int, str, int]]] = []
    batch_written = asyncio.Event()
    save = turns.messages_checkpoint

    def recording(*, checkpoints: list[tuple[int, str, int]]) -> set[int]:
        written = save(checkpoints=checkpoints)
        writes.append(list(checkpoints))
        if len(checkpoints) == 3:
            turns_loop.call_soon_threadsafe(batch_written.set)
        return written

    turns_loop = asyncio.get_running_loop()
    monkeypatch.setattr(turns, "messages_checkpoint", recording)
    users = await sync_to_async(lambda: [make_user(f"writer{i}") for i in range(3)])()
    sockets: list[Socket] = [await open_socket(user) for user in users]
    replies = [
        (await start_turn(sock, f"tell me a long story {i}"))[1]["message"]["id"] for i, sock in enumerate(sockets)
    ]

    await asyncio.wait_for(batch_written.wait(), timeout=10)
    writer = turns._checkpoint_writers[turns_loop]
    batch = next(b for b in writes if len(b) == 3)
    assert sorted(message_id for message_id, _, _ in batch) == sorted(replies)
    for sock in sockets:
        frames = await sock.receive_until(is_done, timeout=30)
        done = frames[-1]
        stored = await fetch(done["message_id"])
        # The final write wins over every checkpoint: whole text, last seq, complete.
        assert (stored.status, stored.content, stored.seq) == ("complete", done["content"], done["seq"])
        # What a checkpoint saved was a beginning of the reply, numbered as the deltas were.
        saved = [(content, seq) for b in writes for message_id, content, seq in b if message_id == done["message_id"]]
        assert saved and all(done["content"].startswith(content) and 0 < seq <= done["seq"] for content, seq in saved)
        await sock.close()
    # With no reply left the writer ends; the next reply starts another.
    await asyncio.wait_for(writer, timeout=5)
    assert turns_loop not in turns._checkpoint_writers


def test_a_checkpoint_never_overwrites_a_finished_reply(user: User) -> None:
    from conversations.services.messages import conversation_create

    conversation = conversation_create(owner=user)
    streaming = Message.objects.create(conversation=conversation, role="assistant", status="streaming", content="")
    finished = Message.objects.create(
        conversation=conversation, role="assistant", status="complete", content="the whole reply", seq=9
    )
    written = messages_checkpoint(checkpoints=[(streaming.pk, "so far", 2), (finished.pk, "the whole", 4)])
    assert written == {streaming.pk}
    streaming.refresh_from_db()
    finished.refresh_from_db()
    assert (streaming.content, streaming.seq) == ("so far", 2)
    assert (finished.content, finished.seq, finished.status) == ("the whole reply", 9, "complete")
    assert messages_checkpoint(checkpoints=[]) == set()
