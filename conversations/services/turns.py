"""One chat turn: persist, build the context, stream the reply to every listener, finalize.

A generation is not owned by a socket (DESIGN.md §3). It runs as an asyncio task in the process
that accepted the turn and publishes numbered deltas to the conversation's channel-layer group,
so any socket on any node can watch it, leave and come back. Its text lives in memory while it
streams, is checkpointed to the row about once a second (also the heartbeat the reaper reads), and
written whole at the end. The ORM is never touched per token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from chatproject.llm import embeddings, gateway
from chatproject.llm.config import default_model
from chatproject.llm.types import ChatMessage, LLMError, Usage
from conversations.events import (
    DeltaEvent,
    DoneEvent,
    ErrorPayload,
    MessageCreatedEvent,
    SnapshotEvent,
    conversation_group,
    generation_group,
)
from conversations.models import Message
from conversations.rendering import render_markdown
from conversations.selectors import done_frame, message_payload
from conversations.services.messages import (
    Outcome,
    TurnStart,
    message_checkpoint,
    message_finalize,
    turn_start,
    user_must_be_allowed_to_send,
    validate_content,
)
from memory.context import BuiltContext, build_context
from memory.selectors import context_inputs
from moderation import pipeline as moderation_pipeline
from moderation.detectors.base import Action
from moderation.pipeline import Stage, Verdict
from moderation.services import flags_record

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)
# How much of the already-shown text the inline guardrails see again with each new chunk.
INLINE_GUARD_TAIL_CHARS = 400

# Generations running in this process, by assistant message id: stop and snapshot requests from
# local sockets are served from here without a channel-layer round trip.
_running: dict[int, Generation] = {}


def local_generation(message_id: int) -> Generation | None:
    return _running.get(message_id)


def running_generations() -> list[Generation]:
    return list(_running.values())


@dataclass(frozen=True)
class PreparedTurn:
    start: TurnStart
    model: str
    context: BuiltContext | None  # None when the input guardrails blocked the message
    input_verdict: Verdict
    # The user message's vector, written to its row after the reply has started, off the path
    # to the first token (the write updates a large HNSW graph).
    vector: list[float] | None = None


def _embed(text: str) -> list[float] | None:
    try:
        return embeddings.embed_one(text)
    except Exception:  # retrieval and the learned guardrails improve a turn; they must not fail it
        logger.exception("could not embed a message")
        return None


def _store_embedding(message: Message, vector: list[float] | None) -> None:
    if vector is not None:
        Message.objects.filter(pk=message.pk).update(embedding=vector, embedding_model=embeddings.model_name())


def _context_for(start: TurnStart, model: str, prompt_text: str, query: list[float] | None) -> BuiltContext:
    conversation = start.conversation
    inputs = context_inputs(
        user_id=conversation.owner_id,
        conversation_id=conversation.pk,
        parent_id=start.user_message.parent_id,
        system_prompt=moderation_pipeline.system_prompt(),
        user_message=prompt_text,
        query=query,
        use_memory=not conversation.temporary,
        exclude_ids=[start.user_message.pk],
    )
    return build_context(
        inputs,
        window=gateway.context_window(model),
        reserved_output=int(settings.LLM_MAX_OUTPUT_TOKENS),
        count=lambda messages: gateway.count_tokens(messages, model),
    )


def turn_prepare(*, user: User, conversation_id: str | None, content: object) -> PreparedTurn:
    """Synchronous part of a turn: check, guard, store the messages, build the prompt.

    The message is embedded once: the vector feeds the learned guardrails, is the retrieval
    query, and is stored on the row.
    """
    user_must_be_allowed_to_send(user=user)
    text = validate_content(content)
    model = default_model().name
    vector = _embed(text)
    verdict = moderation_pipeline.run(
        text,
        stage=Stage.INPUT,
        context=moderation_pipeline.default_context(user_id=user.pk, extra={"embedding": vector}),
    )
    redacted = verdict.action is Action.REDACT
    stored = verdict.text if redacted and settings.MODERATION_REDACT_STORED_INPUT else text
    start = turn_start(
        user=user,
        conversation_id=conversation_id,
        content=stored,
        model=model,
        blocked=verdict.blocked,
        redacted_content=verdict.text if redacted else "",
    )
    flags_record(
        verdict=verdict,
        user_id=user.pk,
        conversation_id=start.conversation.pk,
        message_id=start.user_message.pk,
    )
    if verdict.blocked:
        return PreparedTurn(start=start, model=model, context=None, input_verdict=verdict)
    if redacted:
        # The vector of what was stored and sent, never of the personal data it no longer holds.
        vector = _embed(verdict.text)
    context = _context_for(start, model, verdict.text, vector)
    return PreparedTurn(start=start, model=model, context=context, input_verdict=verdict, vector=vector)


def _created(start: TurnStart, message: Message, client_id: str | None = None) -> MessageCreatedEvent:
    event: MessageCreatedEvent = {
        "type": "message.created",
        "conversation_id": str(start.conversation.pk),
        "message": message_payload(message),
    }
    if client_id:
        event["client_id"] = client_id
    return event


async def turn_launch(prepared: PreparedTurn, *, client_id: str | None = None) -> Generation | None:
    """Announce the new messages to the conversation's sockets and start generating."""
    start = prepared.start
    conversation_id = str(start.conversation.pk)
    for reaped in start.reaped:
        await publish(conversation_id, done_frame(reaped))
    await publish(conversation_id, _created(start, start.user_message, client_id))
    if start.assistant_message is None or prepared.context is None:
        return None
    await publish(conversation_id, _created(start, start.assistant_message))
    generation = Generation(
        conversation_id=conversation_id,
        message_id=start.assistant_message.pk,
        user_id=int(start.conversation.owner_id),
        model=prepared.model,
        prompt=prepared.context.messages,
        prompt_tokens=prepared.context.report.tokens_used,
        context_report=prepared.context.report.as_dict(),
    )
    generation.start()
    if prepared.vector is not None:
        _in_background(
            database_sync_to_async(_store_embedding, thread_sensitive=False)(start.user_message, prepared.vector)
        )
    return generation


_background: set[asyncio.Task[None]] = set()


def _in_background(work: Coroutine[Any, Any, None]) -> None:
    """Run work without waiting for it, holding a reference so it is not collected mid-flight."""
    task = asyncio.create_task(work)
    _background.add(task)
    task.add_done_callback(_background.discard)


@dataclass(eq=False)
class Generation:
    conversation_id: str
    message_id: int
    user_id: int
    model: str
    prompt: list[ChatMessage]
    prompt_tokens: int
    context_report: dict[str, object] | None = None
    parts: list[str] = field(default_factory=list)
    seq: int = 0
    ttft_ms: int | None = None
    usage: Usage | None = None
    answered_by: str = ""
    task: asyncio.Task[None] | None = None
    _pending: list[str] = field(default_factory=list)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _upstream_done: bool = False
    _last_flush: float = float("-inf")
    _started: float = field(default_factory=time.monotonic)
    _stop_requested: bool = False
    _reader: asyncio.Task[None] | None = None
    _finished: asyncio.Event = field(default_factory=asyncio.Event)
    # Set when the inline output guardrails stopped the reply; the chunk that tripped them is unseen.
    blocked_by: Verdict | None = None
    _guard_inline: bool = field(default_factory=lambda: moderation_pipeline.inline_output_enabled())

    # --- public ---------------------------------------------------------------------------------

    def start(self) -> None:
        _running[self.message_id] = self
        self.task = asyncio.create_task(self._run(), name=f"generation-{self.message_id}")

    @property
    def content(self) -> str:
        return "".join(self.parts)

    def snapshot(self) -> SnapshotEvent:
        """The text of every delta published so far: consistent with `seq`, never ahead of it."""
        return {
            "type": "snapshot",
            "conversation_id": self.conversation_id,
            "message_id": self.message_id,
            "seq": self.seq,
            "content": self.content,
            "status": Message.Status.STREAMING,
        }

    def request_stop(self) -> None:
        """Stop generating: the upstream request is closed, the text so far is kept."""
        self._stop_requested = True
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()

    async def wait(self) -> None:
        await self._finished.wait()

    # --- the task -------------------------------------------------------------------------------

    async def _run(self) -> None:
        control = asyncio.create_task(self._listen_for_control())
        checkpoints = asyncio.create_task(self._checkpoint_loop())
        self._reader = asyncio.create_task(self._read_upstream())
        status: str = Message.Status.COMPLETE
        error: ErrorPayload | None = None
        try:
            await self._reader
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                status = Message.Status.INTERRUPTED
                raise
            status = Message.Status.STOPPED
        except LLMError as exc:
            status = Message.Status.FAILED
            error = {"code": exc.code, "message": exc.message, "retryable": exc.retryable}
        except Exception:
            logger.exception("generation %s failed", self.message_id)
            status = Message.Status.FAILED
            error = {"code": "internal", "message": "Something went wrong while writing this reply.", "retryable": True}
        finally:
            if self.blocked_by is not None:
                status = Message.Status.BLOCKED
                error = {"code": "blocked_output", "message": self.blocked_by.explanation(), "retryable": False}
            checkpoints.cancel()
            control.cancel()
            try:
                await asyncio.shield(self._finalize(status, error))
            finally:
                _running.pop(self.message_id, None)
                self._finished.set()

    async def _read_upstream(self) -> None:
        flusher = asyncio.create_task(self._flush_loop())
        try:
            async for delta in gateway.stream(self.prompt, model=self.model, user=str(self.user_id)):
                if delta.text:
                    if self.ttft_ms is None:
                        self.ttft_ms = int((time.monotonic() - self._started) * 1000)
                    self._pending.append(delta.text)
                    self._wake.set()
                if delta.usage is not None:
                    self.usage = delta.usage
                    self.answered_by = delta.model or ""
        finally:
            self._upstream_done = True
            self._wake.set()
            await asyncio.shield(flusher)

    async def _flush_loop(self) -> None:
        """Publish pending text at most once per coalescing interval; the first piece at once."""
        interval = settings.CHAT_COALESCE_MS / 1000
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._upstream_done:
                delay = self._last_flush + interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await self._flush()
            if self._upstream_done and not self._pending:
                return

    async def _flush(self) -> None:
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        if self.blocked_by is not None or (self._guard_inline and self._trips_guardrails(text)):
            return
        self.seq += 1
        self.parts.append(text)
        self._last_flush = time.monotonic()
        frame: DeltaEvent = {
            "type": "delta",
            "conversation_id": self.conversation_id,
            "message_id": self.message_id,
            "seq": self.seq,
            "text": text,
        }
        await publish(self.conversation_id, frame)

    def _trips_guardrails(self, text: str) -> bool:
        """Check a chunk before anyone sees it, with the end of the text before it (a phrase can
        straddle two chunks). Only cheap detectors run here; the rest run after the reply."""
        tail = self.parts[-1][-INLINE_GUARD_TAIL_CHARS:] if self.parts else ""
        verdict = moderation_pipeline.run(
            tail + text,
            stage=Stage.OUTPUT_INLINE,
            context=moderation_pipeline.default_context(user_id=self.user_id, conversation_id=self.conversation_id),
        )
        if not verdict.blocked:
            return False
        self.blocked_by = verdict
        self.request_stop()
        return True

    async def _checkpoint_loop(self) -> None:
        saved_seq = 0
        last_write = time.monotonic()
        checkpoint = database_sync_to_async(message_checkpoint, thread_sensitive=False)
        while True:
            await asyncio.sleep(float(settings.CHAT_CHECKPOINT_SECONDS))
            beat_due = time.monotonic() - last_write >= float(settings.CHAT_HEARTBEAT_SECONDS)
            if self.seq == saved_seq and not beat_due:
                continue
            seq, content = self.seq, self.content
            await checkpoint(message_id=self.message_id, content=content, seq=seq)
            saved_seq, last_write = seq, time.monotonic()

    async def _listen_for_control(self) -> None:
        """Serve stop and snapshot requests from sockets on other nodes."""
        layer = get_channel_layer()
        channel = await layer.new_channel()
        group = generation_group(self.message_id)
        await layer.group_add(group, channel)
        try:
            while True:
                event: dict[str, Any] = await layer.receive(channel)
                if event.get("type") == "gen.stop":
                    self.request_stop()
                elif event.get("type") == "gen.snapshot" and event.get("reply_channel"):
                    await layer.send(event["reply_channel"], {"type": "chat.snapshot", "frame": self.snapshot()})
        finally:
            await asyncio.shield(layer.group_discard(group, channel))

    async def _finalize(self, status: str, error: ErrorPayload | None) -> None:
        duration_ms = int((time.monotonic() - self._started) * 1000)
        content = self.content
        outcome_args = {
            "status": status,
            "content": content,
            "seq": self.seq,
            "model": self.answered_by or self.model,
            "ttft_ms": self.ttft_ms,
            "duration_ms": duration_ms,
            "error_code": error["code"] if error else "",
            "error_message": error["message"] if error else "",
            "context_report": self.context_report,
        }
        done = await database_sync_to_async(_finalize_sync, thread_sensitive=False)(self, outcome_args, self.usage)
        if error:
            done["error"] = error
        await publish(self.conversation_id, done)


def _finalize_sync(generation: Generation, args: dict[str, Any], usage: Usage | None) -> DoneEvent:
    content: str = args["content"]
    if usage is None:
        usage = Usage(generation.prompt_tokens, gateway.count_text_tokens(content, generation.model))
    outcome = Outcome(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost=usage.cost,
        **args,
    )
    message_finalize(message_id=generation.message_id, user_id=generation.user_id, outcome=outcome)
    if generation.blocked_by is not None:
        flags_record(
            verdict=generation.blocked_by,
            user_id=generation.user_id,
            conversation_id=generation.conversation_id,
            message_id=generation.message_id,
        )
    return {
        "type": "done",
        "conversation_id": generation.conversation_id,
        "message_id": generation.message_id,
        "status": outcome.status,
        "seq": outcome.seq,
        "content": content,
        "html": render_markdown(content),
        "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens},
        "context": generation.context_report,
    }


async def publish(conversation_id: str, frame: MessageCreatedEvent | DeltaEvent | DoneEvent) -> None:
    await get_channel_layer().group_send(conversation_group(conversation_id), {"type": "chat.frame", "frame": frame})


async def generation_stop(*, message_id: int) -> bool:
    """Ask the generation of a message to stop, wherever it runs. True if it runs here."""
    generation = local_generation(message_id)
    if generation is not None:
        generation.request_stop()
        return True
    await get_channel_layer().group_send(generation_group(message_id), {"type": "gen.stop"})
    return False
