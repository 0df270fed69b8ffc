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
import math
import time
import weakref
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.db.models import Prefetch, prefetch_related_objects
from django.utils import timezone

from chatproject.db_threads import on_db_thread
from chatproject.llm import embeddings, gateway
from chatproject.llm.config import resolve_model
from chatproject.llm.types import ChatMessage, LLMError, PromptMessage, Usage
from conversations.events import (
    BranchEvent,
    DeltaEvent,
    DoneEvent,
    ErrorPayload,
    MessageCreatedEvent,
    QueueEvent,
    SnapshotEvent,
    conversation_group,
    generation_group,
)
from conversations.limits import queue as llm_queue
from conversations.limits.budgets import (
    BudgetExceeded,
    budget_estimate,
    budget_fallback_model,
    budget_reserve,
    limits_for_user,
)
from conversations.models import Attachment, Message
from conversations.rendering import render_markdown
from conversations.selectors import done_frame, message_payload, sibling_ids
from conversations.services.attachments import (
    AttachmentRejected,
    attachment_data_urls,
    attachment_ids_parse,
    attachments_claim,
    attachments_link,
    image_refs_by_message,
)
from conversations.services.messages import (
    Outcome,
    TurnRejected,
    TurnStart,
    message_finalize,
    messages_checkpoint,
    turn_regenerate_start,
    turn_start,
    user_must_be_allowed_to_send,
    validate_content,
)
from memory.context import BuiltContext, ContextInputs, Turn, build_context, prompt_messages
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


def coalescing_interval() -> float:
    """Seconds between two deltas of a reply: CHAT_COALESCE_MS, widened with the replies streaming
    in this process so that their deltas together stay near CHAT_MAX_FLUSHES_PER_SECOND (each delta
    costs the same whatever its length, so the work per second stays bounded as streams grow)."""
    base = settings.CHAT_COALESCE_MS / 1000
    shared = len(_running) / max(1, int(settings.CHAT_MAX_FLUSHES_PER_SECOND))
    return min(max(base, shared), max(base, settings.CHAT_COALESCE_MAX_MS / 1000))


# The task per event loop that writes the checkpoints of its generations (see _write_checkpoints).
_checkpoint_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = (
    weakref.WeakKeyDictionary()
)


def _ensure_checkpoint_writer(loop: asyncio.AbstractEventLoop) -> None:
    task = _checkpoint_writers.get(loop)
    if task is None or task.done():
        _checkpoint_writers[loop] = loop.create_task(_write_checkpoints(loop), name="checkpoints")


async def _write_checkpoints(loop: asyncio.AbstractEventLoop) -> None:
    """Every CHAT_CHECKPOINT_SECONDS, the text of every reply streaming on this loop that grew (or
    whose heartbeat is due), in one statement: one write a second per process, not one per reply
    (200 replies made 200 round trips a second, each with its thread hop). Ends when no reply is
    left; the next reply starts it again."""
    save = on_db_thread(messages_checkpoint)
    while True:
        await asyncio.sleep(float(settings.CHAT_CHECKPOINT_SECONDS))
        mine = [g for g in _running.values() if g.loop is loop]
        if not mine:
            # No await between the check and leaving: a reply started now finds no writer and starts one.
            _checkpoint_writers.pop(loop, None)
            return
        now = time.monotonic()
        due = [g for g in mine if g.checkpoint_due(now)]
        batch = [(g.message_id, g.content, g.seq) for g in due]
        if not batch:
            continue
        try:
            await save(checkpoints=batch)
        except Exception:  # a failed write must not end the checkpoints of every reply: retried next tick
            logger.exception("could not write %d checkpoints", len(batch))
            continue
        for generation, (_, _, seq) in zip(due, batch, strict=True):
            generation.checkpointed(seq, now)


def local_generation(message_id: int) -> Generation | None:
    return _running.get(message_id)


def running_generations() -> list[Generation]:
    return list(_running.values())


@dataclass(frozen=True)
class TurnOptions:
    """What a turn from the OpenAI-compatible API (conversations/api.py) sets; the defaults are the
    web chat's turn."""

    model: str | None = None  # a served model's name; None: the default model
    # The client's system text: appended under the deployment's system prompt, never replacing it.
    instructions: str = ""
    # Earlier turns the client sent with its request; None: the conversation's stored branch.
    history: tuple[Turn, ...] | None = None
    max_tokens: int | None = None  # the reply's cap, if lower than the model's
    # A conversation the user never sees (the API's stateless default): temporary, so no memory,
    # and closed from the start; its deltas go to local listeners only (no socket can join).
    hidden: bool = False


WEB_TURN = TurnOptions()


@dataclass(frozen=True)
class PreparedTurn:
    start: TurnStart
    model: str
    context: BuiltContext | None  # None when the input guardrails blocked the message
    input_verdict: Verdict
    # The user message's vector, written to its row after the reply has started, off the path
    # to the first token (the write updates a large HNSW graph).
    vector: list[float] | None = None
    # The budget hold the reply settles when it ends (None: not counted, e.g. the fallback model).
    reservation_id: int | None = None
    queue_priority: int = 0
    options: TurnOptions = WEB_TURN
    # Another reply to a user message already on screen: only the new reply is announced.
    regenerated: bool = False
    # The context as sent, with images inline as data URLs; None when no message carries one.
    prompt: list[PromptMessage] | None = None
    # The message that opens a new branch (an edit's user message, a regenerated reply) and its
    # siblings, oldest first; empty for an ordinary send, whose messages have no siblings.
    siblings: tuple[int, ...] = ()


def _embed(text: str) -> list[float] | None:
    try:
        return embeddings.embed_one(text)
    except Exception:  # retrieval and the learned guardrails improve a turn; they must not fail it
        logger.exception("could not embed a message")
        return None


def _store_embedding(message: Message, vector: list[float] | None) -> None:
    if vector is not None:
        Message.objects.filter(pk=message.pk).update(embedding=vector, embedding_model=embeddings.model_name())


def _context_for(
    start: TurnStart,
    model: str,
    prompt_text: str,
    query: list[float] | None,
    options: TurnOptions = WEB_TURN,
    *,
    new_images: bool = True,
) -> BuiltContext:
    """The prompt of a turn. `new_images`: whether the new message may carry images (False when
    the turn knows it claimed none, which spares a query)."""
    conversation = start.conversation
    system_prompt = moderation_pipeline.system_prompt()
    if options.instructions:
        # Below the deployment's prompt: its rules and the leakage canary stay first and whole.
        system_prompt = f"{system_prompt}\n\n{options.instructions}"
    if options.history is not None:
        # The client sent the conversation itself, in a conversation of its own: nothing to read.
        inputs = ContextInputs(
            system_prompt=system_prompt,
            user_message=prompt_text,
            history=options.history,
            recent_turns=int(settings.CONTEXT_RECENT_TURNS),
        )
    else:
        inputs = context_inputs(
            user_id=conversation.owner_id,
            conversation_id=conversation.pk,
            parent_id=start.user_message.parent_id,
            system_prompt=system_prompt,
            user_message=prompt_text,
            query=query,
            use_memory=not conversation.temporary,
            exclude_ids=[start.user_message.pk],
        )
    inputs = _with_images(inputs, start, model, new_images=new_images)
    return build_context(
        inputs,
        window=gateway.context_window(model),
        reserved_output=int(settings.LLM_MAX_OUTPUT_TOKENS),
        count=lambda messages: gateway.count_tokens(messages, model),
    )


def _with_images(inputs: ContextInputs, start: TurnStart, model: str, *, new_images: bool = True) -> ContextInputs:
    """The images of the new message and of the history turns, for the builder to place. A model
    without vision gets none (older images become notes in their turns' text)."""
    ids = [turn.message_id for turn in inputs.history if turn.message_id is not None]
    if new_images:
        ids.append(start.user_message.pk)
    refs = image_refs_by_message(message_ids=ids) if ids else {}
    if not refs:
        return inputs
    user_images = refs.get(start.user_message.pk, ())
    vision = resolve_model(model).vision
    history = tuple(
        replace(turn, images=refs[turn.message_id]) if turn.message_id in refs else turn for turn in inputs.history
    )
    return replace(
        inputs,
        history=history,
        user_images=user_images,
        image_tokens=int(settings.IMAGE_TOKEN_ESTIMATE),
        max_images=max(int(settings.CONTEXT_MAX_IMAGES), len(user_images)) if vision else 0,
    )


def _prompt_with_images(context: BuiltContext) -> list[PromptMessage] | None:
    """The prompt with each image read from storage once and inlined as a data URL."""
    refs = [ref for message_refs in context.images for ref in message_refs]
    if not refs:
        return None
    urls = attachment_data_urls(refs=refs)
    return prompt_messages(context, resolve=lambda ref: urls[ref.ref])


def _refuse_images_without_vision(model: str, attachment_ids: list[object]) -> None:
    if attachment_ids and not resolve_model(model).vision:
        raise AttachmentRejected(
            "model_without_vision",
            f"The model {model} cannot read images. Remove the image, or choose a model that can.",
        )


def turn_prepare(
    *,
    user: User,
    conversation_id: str | None,
    content: object,
    options: TurnOptions = WEB_TURN,
    attachments: object = None,
    edit_of: object = None,
) -> PreparedTurn:
    """Synchronous part of a turn: check, guard, store the messages, build the prompt.

    The message is embedded once: the vector feeds the learned guardrails, is the retrieval
    query, and is stored on the row. `attachments` are ids of the user's unsent image uploads;
    they are refused before anything is stored when the model cannot read images. `edit_of` (an
    earlier user message's id) makes the message an edit of that one, on a branch of its own
    (`turn_start`); it passes the same checks as any send.
    """
    user_must_be_allowed_to_send(user=user)
    text = validate_content(content)
    model = resolve_model(options.model).name
    attachment_ids = attachment_ids_parse(attachments)
    _refuse_images_without_vision(model, list(attachment_ids))
    vector = _embed(text)
    verdict = moderation_pipeline.run(
        text,
        stage=Stage.INPUT,
        context=moderation_pipeline.default_context(user_id=user.pk, extra={"embedding": vector}),
    )
    redacted = verdict.action is Action.REDACT
    stored = verdict.text if redacted and settings.MODERATION_REDACT_STORED_INPUT else text
    if redacted:
        # The vector of what was stored and sent, never of the personal data it no longer holds.
        vector = _embed(verdict.text)
    # One transaction from storing the messages to reserving the budget: a refused turn stores nothing.
    with transaction.atomic():
        claimed = attachments_claim(owner_id=user.pk, ids=attachment_ids)
        start = turn_start(
            user=user,
            conversation_id=conversation_id,
            content=stored,
            model=model,
            blocked=verdict.blocked,
            redacted_content=verdict.text if redacted else "",
            hidden=options.hidden,
            edit_of=edit_of,
        )
        attachments_link(attachments=claimed, message=start.user_message)
        # The announcements are built on the event loop, where no query may run: fetch them now
        # (messages just stored hold only the uploads claimed now: with none, nothing to fetch).
        prefetch_related_objects(
            [m for m in (start.user_message, start.assistant_message) if m],
            "attachments" if claimed else Prefetch("attachments", queryset=Attachment.objects.none()),
        )
        flags_record(
            verdict=verdict,
            user_id=user.pk,
            conversation_id=start.conversation.pk,
            message_id=start.user_message.pk,
        )
        siblings = tuple(sibling_ids(message=start.user_message)) if edit_of is not None else ()
        if verdict.blocked:
            return PreparedTurn(
                start=start, model=model, context=None, input_verdict=verdict, options=options, siblings=siblings
            )
        context = _context_for(start, model, verdict.text, vector, options, new_images=bool(claimed))
        admitted = _admit(
            start,
            model,
            context,
            lambda other: _context_for(start, other, verdict.text, vector, options, new_images=bool(claimed)),
            max_tokens=options.max_tokens,
        )
        prompt = _prompt_with_images(admitted.context)
    return PreparedTurn(
        start=start,
        model=admitted.model,
        context=admitted.context,
        input_verdict=verdict,
        vector=vector,
        reservation_id=admitted.reservation_id,
        queue_priority=admitted.queue_priority,
        options=options,
        prompt=prompt,
        siblings=siblings,
    )


def turn_prepare_regenerate(*, user: User, conversation_id: str, message_id: object) -> PreparedTurn:
    """Synchronous part of writing a reply again: a new reply beside the old one, under the same
    user message (which passed the input guardrails when it was sent), with the prompt rebuilt and
    the budget reserved as for a send."""
    user_must_be_allowed_to_send(user=user)
    model = resolve_model(None).name
    with transaction.atomic():
        start = turn_regenerate_start(user=user, conversation_id=conversation_id, message_id=message_id, model=model)
        question = start.user_message.model_content
        vector = _embed(question)
        context = _context_for(start, model, question, vector)
        admitted = _admit(start, model, context, lambda other: _context_for(start, other, question, vector))
        prompt = _prompt_with_images(admitted.context)
        siblings: tuple[int, ...] = ()
        if start.assistant_message is not None:
            prefetch_related_objects([start.assistant_message], "attachments")
            siblings = tuple(sibling_ids(message=start.assistant_message))
    return PreparedTurn(
        start=start,
        model=admitted.model,
        context=admitted.context,
        input_verdict=Verdict(stage=Stage.INPUT, original=question, text=question),
        reservation_id=admitted.reservation_id,
        queue_priority=admitted.queue_priority,
        regenerated=True,
        prompt=prompt,
        siblings=siblings,
    )


@dataclass(frozen=True)
class _Admission:
    model: str
    context: BuiltContext
    reservation_id: int | None
    queue_priority: int


def _admit(
    start: TurnStart,
    model: str,
    context: BuiltContext,
    rebuild: Callable[[str], BuiltContext],
    *,
    max_tokens: int | None = None,
) -> _Admission:
    """Reserve the turn's most possible cost in the user's budget; when it is spent, move the turn
    to the plan's fallback model (not counted: see conversations/limits/budgets.py) or refuse it."""
    assert start.assistant_message is not None
    user_id = int(start.conversation.owner_id)
    limits = limits_for_user(user_id=user_id)
    plan = limits.plan
    estimate = budget_estimate(model=model, prompt_tokens=context.report.tokens_used, max_tokens=max_tokens)
    try:
        reservation = budget_reserve(
            user_id=user_id, model=model, tokens=estimate, message_id=start.assistant_message.pk, limits=limits
        )
    except BudgetExceeded as exc:
        fallback = budget_fallback_model(plan=plan, model=model)
        if fallback is None:
            wait = max(1, math.ceil((exc.resets_at - timezone.now()).total_seconds()))
            raise TurnRejected(exc.code, exc.message, retry_after=wait) from None
        Message.objects.filter(pk=start.assistant_message.pk).update(model=fallback)
        start.assistant_message.model = fallback
        return _Admission(fallback, rebuild(fallback), None, plan.queue_priority)
    return _Admission(model, context, reservation.pk, plan.queue_priority)


def _created(
    start: TurnStart, message: Message, client_id: str | None = None, *, siblings: tuple[int, ...] = ()
) -> MessageCreatedEvent:
    event: MessageCreatedEvent = {
        "type": "message.created",
        "conversation_id": str(start.conversation.pk),
        "message": message_payload(message, siblings=list(siblings) if siblings else None),
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
    if not prepared.regenerated:
        await publish(conversation_id, _created(start, start.user_message, client_id, siblings=prepared.siblings))
    if start.assistant_message is None or prepared.context is None:
        return None
    reply_siblings = prepared.siblings if prepared.regenerated else ()
    await publish(conversation_id, _created(start, start.assistant_message, siblings=reply_siblings))
    generation = Generation(
        conversation_id=conversation_id,
        message_id=start.assistant_message.pk,
        user_id=int(start.conversation.owner_id),
        model=prepared.model,
        prompt=prepared.prompt if prepared.prompt is not None else prepared.context.messages,
        prompt_tokens=prepared.context.report.tokens_used,
        context_report=prepared.context.report.as_dict(),
        reservation_id=prepared.reservation_id,
        queue_priority=prepared.queue_priority,
        max_tokens=prepared.options.max_tokens,
        broadcast=not prepared.options.hidden,
    )
    generation.start()
    # A hidden conversation (a stateless API exchange) is never searched: its vector is not worth
    # an HNSW insert.
    if prepared.vector is not None and start.conversation.deleted_at is None:
        _in_background(on_db_thread(_store_embedding)(start.user_message, prepared.vector))
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
    prompt: Sequence[ChatMessage | PromptMessage]
    prompt_tokens: int
    context_report: dict[str, object] | None = None
    reservation_id: int | None = None
    queue_priority: int = 0
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
    max_tokens: int | None = None
    finish_reason: str | None = None
    # False where no socket can ever watch (a hidden conversation): frames go to local listeners only.
    broadcast: bool = True
    loop: asyncio.AbstractEventLoop | None = None
    _saved_seq: int = 0
    _last_write: float = field(default_factory=time.monotonic)
    _ending: bool = False
    # Readers in this process (the API's responses) take frames from here, with no channel-layer
    # round trip per delta; None ends each queue. `done` is kept for a reader that comes late.
    _local: list[asyncio.Queue[DeltaEvent | DoneEvent | None]] = field(default_factory=list)
    done: DoneEvent | None = None

    # --- public ---------------------------------------------------------------------------------

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        _running[self.message_id] = self
        self.task = asyncio.create_task(self._run(), name=f"generation-{self.message_id}")
        _ensure_checkpoint_writer(self.loop)

    def checkpoint_due(self, now: float) -> bool:
        """Whether the row lags the text, or the heartbeat is due; never once the reply is ending
        (its final write follows)."""
        if self._ending:
            return False
        return self.seq != self._saved_seq or now - self._last_write >= float(settings.CHAT_HEARTBEAT_SECONDS)

    def checkpointed(self, seq: int, at: float) -> None:
        self._saved_seq, self._last_write = max(self._saved_seq, seq), at

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

    def listen(self) -> asyncio.Queue[DeltaEvent | DoneEvent | None]:
        """The frames this generation publishes from now on, then None. Text published before
        the call is in `snapshot()`; a generation that has ended gives its done frame at once."""
        queue: asyncio.Queue[DeltaEvent | DoneEvent | None] = asyncio.Queue()
        if self._finished.is_set():
            if self.done is not None:
                queue.put_nowait(self.done)
            queue.put_nowait(None)
        else:
            self._local.append(queue)
        return queue

    def _tell_local(self, frame: DeltaEvent | DoneEvent | None) -> None:
        for queue in self._local:
            queue.put_nowait(frame)

    # --- the task -------------------------------------------------------------------------------

    async def _run(self) -> None:
        control = asyncio.create_task(self._listen_for_control())
        self._reader = asyncio.create_task(self._read_when_admitted())
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
            self._ending = True
            control.cancel()
            try:
                await asyncio.shield(self._finalize(status, error))
            finally:
                _running.pop(self.message_id, None)
                self._finished.set()
                self._tell_local(None)

    async def _read_when_admitted(self) -> None:
        """Wait for a slot of the model (the LLM queue), then read the reply while holding it.
        A stop while waiting cancels this task, which leaves the line."""
        async with llm_queue.llm_slot(
            model=self.model, priority=self.queue_priority, on_position=self._announce_position
        ):
            await self._read_upstream()

    async def _announce_position(self, position: int) -> None:
        frame: QueueEvent = {
            "type": "queue",
            "conversation_id": self.conversation_id,
            "message_id": self.message_id,
            "position": position,
        }
        if self.broadcast:
            await publish(self.conversation_id, frame)

    async def _read_upstream(self) -> None:
        flusher = asyncio.create_task(self._flush_loop())
        try:
            async for delta in gateway.stream(
                self.prompt, model=self.model, user=str(self.user_id), max_tokens=self.max_tokens
            ):
                if delta.text:
                    if self.ttft_ms is None:
                        self.ttft_ms = int((time.monotonic() - self._started) * 1000)
                    self._pending.append(delta.text)
                    self._wake.set()
                if delta.usage is not None:
                    self.usage = delta.usage
                    self.answered_by = delta.model or ""
                    self.finish_reason = delta.finish_reason
        finally:
            self._upstream_done = True
            self._wake.set()
            await asyncio.shield(flusher)

    async def _flush_loop(self) -> None:
        """Publish pending text at most once per coalescing interval; the first piece at once."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._upstream_done:
                delay = self._last_flush + coalescing_interval() - time.monotonic()
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
        self._tell_local(frame)
        if self.broadcast:
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
        done = await on_db_thread(_finalize_sync)(self, outcome_args, self.usage)
        if error:
            done["error"] = error
        self.done = done
        self._tell_local(done)
        if self.broadcast:
            await publish(self.conversation_id, done)


def _finalize_sync(generation: Generation, args: dict[str, Any], usage: Usage | None) -> DoneEvent:
    content: str = args["content"]
    if usage is None:
        # No usage from the provider: count what was shown. A reply that produced nothing (it failed
        # before its first token, or never left the queue) is recorded, and charged, as nothing.
        produced = gateway.count_text_tokens(content, generation.model)
        usage = Usage(generation.prompt_tokens, produced) if content else Usage()
    outcome = Outcome(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost=usage.cost,
        **args,
    )
    message_finalize(
        message_id=generation.message_id,
        user_id=generation.user_id,
        outcome=outcome,
        reservation_id=generation.reservation_id,
    )
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


async def publish(
    conversation_id: str, frame: MessageCreatedEvent | QueueEvent | DeltaEvent | DoneEvent | BranchEvent
) -> None:
    await get_channel_layer().group_send(conversation_group(conversation_id), {"type": "chat.frame", "frame": frame})


async def generation_stop(*, message_id: int) -> bool:
    """Ask the generation of a message to stop, wherever it runs. True if it runs here."""
    generation = local_generation(message_id)
    if generation is not None:
        generation.request_stop()
        return True
    await get_channel_layer().group_send(generation_group(message_id), {"type": "gen.stop"})
    return False
