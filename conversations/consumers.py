"""The chat WebSocket: thin. It parses frames, checks ownership and delegates to services.

One socket serves every conversation of its user (frames name the conversation). It joins the
channel-layer group of each conversation it sends to or resumes, so replies started from another
tab or another node reach it too. Bad frames get an error frame and leave the socket usable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from chatproject.db_threads import on_db_thread
from chatproject.llm.types import LLMError
from conversations.events import (
    CLIENT_EVENT_TYPES,
    DoneEvent,
    ErrorEvent,
    SnapshotEvent,
    conversation_group,
    error_event,
    generation_group,
)
from conversations.limits.ratelimit import RateLimited, client_ip_from_scope, send_admit_async
from conversations.models import Message
from conversations.selectors import conversation_get_for_user, done_frame, message_get, snapshot_frame
from conversations.services.messages import NOT_FOUND, TurnRejected, branch_select, messages_reap_interrupted
from conversations.services.turns import (
    PreparedTurn,
    generation_stop,
    local_generation,
    publish,
    turn_launch,
    turn_prepare,
    turn_prepare_regenerate,
)

logger = logging.getLogger(__name__)

UNAUTHENTICATED_CLOSE_CODE = 4401


class ClientError(Exception):
    def __init__(self, code: str, message: str, **context: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.context = context


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Accept first: a refused handshake reaches the browser as 1006 with no reason, while
            # a close frame with 4401 tells the page to send the person to the log-in page.
            await self.accept()
            await self.close(code=UNAUTHENTICATED_CLOSE_CODE)
            return
        self.user = user
        self.watching: set[str] = set()
        # Highest delta seq sent per message: deltas can arrive twice (a snapshot overlaps them).
        self.delivered: dict[int, int] = {}
        # Frames held back per message while its snapshot is on the way, released after it.
        self.held: dict[int, list[dict[str, Any]]] = {}
        self.snapshot_timeouts: dict[int, asyncio.Task[None]] = {}
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for task in getattr(self, "snapshot_timeouts", {}).values():
            task.cancel()
        for conversation_id in getattr(self, "watching", set()):
            await self.channel_layer.group_discard(conversation_group(conversation_id), self.channel_name)

    # --- inbound frames -------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            event = self._parse(text_data, bytes_data)
            await getattr(self, f"on_{event['type']}")(event)
        except ClientError as exc:
            await self.send_json(error_event(exc.code, exc.message, **{**self._context_of(text_data), **exc.context}))
        except TurnRejected as exc:
            await self.send_json(
                error_event(exc.code, exc.message, retryable=exc.retryable, **self._context_of(text_data))
            )
        except RateLimited as exc:
            frame = error_event("rate_limited", exc.message, retryable=True, **self._context_of(text_data))
            await self.send_json({**frame, "retry_after": exc.retry_after})
        except LLMError as exc:
            await self.send_json(error_event(exc.code, exc.message, retryable=exc.retryable))
        except Exception:
            logger.exception("chat socket frame failed")
            await self.send_json(
                error_event("internal", "Something went wrong on the server. Try again.", retryable=True)
            )

    def _parse(self, text_data: str | None, bytes_data: bytes | None) -> dict[str, Any]:
        if text_data is None:
            raise ClientError("invalid_frame", "Frames must be JSON text.")
        if len(text_data.encode()) > int(settings.CHAT_MAX_FRAME_BYTES):
            raise ClientError("frame_too_large", "That frame is too large.")
        try:
            event = json.loads(text_data)
        except ValueError:
            raise ClientError("invalid_json", "That frame is not valid JSON.") from None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise ClientError("invalid_event", 'Frames are JSON objects with a string "type".')
        if event["type"] not in CLIENT_EVENT_TYPES:
            raise ClientError("unknown_type", f"Unknown event type {event['type'][:40]!r}.")
        return event

    @staticmethod
    def _context_of(text_data: str | None) -> dict[str, Any]:
        """The ids a client sent, echoed in errors so it can tell which action failed."""
        try:
            event = json.loads(text_data or "")
        except ValueError:
            return {}
        context: dict[str, Any] = {}
        if isinstance(event, dict):
            if isinstance(event.get("conversation_id"), str):
                context["conversation_id"] = event["conversation_id"]
            if isinstance(event.get("client_id"), str):
                context["client_id"] = event["client_id"][:100]
            if isinstance(event.get("message_id"), int) and not isinstance(event.get("message_id"), bool):
                context["message_id"] = event["message_id"]
        return context

    async def on_ping(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "pong"})

    async def on_subscribe(self, event: dict[str, Any]) -> None:
        conversation = await self._authorized(event.get("conversation_id"))
        await self._watch(str(conversation.pk))
        await self.send_json(
            {"type": "subscribed", "conversation_id": str(conversation.pk), "title": conversation.title}
        )

    async def on_send(self, event: dict[str, Any]) -> None:
        conversation_id = event.get("conversation_id")
        if conversation_id is not None and not isinstance(conversation_id, str):
            raise ClientError("invalid_event", "conversation_id must be a string.")
        client_id = event.get("client_id") if isinstance(event.get("client_id"), str) else None
        # Before any database work: a flood is refused for the price of one Redis call.
        await send_admit_async(user_id=self.user.pk, ip=client_ip_from_scope(self.scope))
        if conversation_id is not None:
            await self._authorized(conversation_id)
        prepared = await on_db_thread(turn_prepare)(
            user=self.user,
            conversation_id=conversation_id,
            content=event.get("content"),
            attachments=event.get("attachments"),
        )
        # Join before the first delta is published, or this socket would miss the start.
        await self._watch(str(prepared.start.conversation.pk))
        await self._launch(prepared, client_id)

    async def on_edit(self, event: dict[str, Any]) -> None:
        """Send an earlier message again, changed: a new branch beside the old one. Every check of
        a send applies (rate, guardrails, budget)."""
        conversation = await self._authorized(event.get("conversation_id"))
        client_id = event.get("client_id") if isinstance(event.get("client_id"), str) else None
        await send_admit_async(user_id=self.user.pk, ip=client_ip_from_scope(self.scope))
        prepared = await on_db_thread(turn_prepare)(
            user=self.user,
            conversation_id=str(conversation.pk),
            content=event.get("content"),
            edit_of=event.get("message_id"),
        )
        await self._watch(str(conversation.pk))
        await self._launch(prepared, client_id)

    async def on_switch(self, event: dict[str, Any]) -> None:
        """Show another branch: every socket of the conversation is told to redraw it."""
        conversation = await self._authorized(event.get("conversation_id"))
        leaf = await on_db_thread(branch_select)(
            user=self.user, conversation_id=str(conversation.pk), message_id=event.get("message_id")
        )
        await self._watch(str(conversation.pk))
        await publish(
            str(conversation.pk),
            {"type": "branch", "conversation_id": str(conversation.pk), "active_leaf_id": leaf.pk},
        )

    async def on_regenerate(self, event: dict[str, Any]) -> None:
        """Write a reply again, beside the old one; any node can, whichever wrote the first."""
        conversation = await self._authorized(event.get("conversation_id"))
        # Another reply costs what a send costs, so it counts against the same limits.
        await send_admit_async(user_id=self.user.pk, ip=client_ip_from_scope(self.scope))
        prepared = await on_db_thread(turn_prepare_regenerate)(
            user=self.user, conversation_id=str(conversation.pk), message_id=event.get("message_id")
        )
        await self._watch(str(conversation.pk))
        await turn_launch(prepared)

    async def _launch(self, prepared: PreparedTurn, client_id: str | None) -> None:
        """Start the reply of a stored message; a message the guardrails blocked is told here."""
        generation = await turn_launch(prepared, client_id=client_id)
        if generation is None and prepared.input_verdict.blocked:
            await self.send_json(
                error_event(
                    "blocked",
                    prepared.input_verdict.explanation(),
                    conversation_id=str(prepared.start.conversation.pk),
                    message_id=prepared.start.user_message.pk,
                    client_id=client_id,
                )
            )

    async def on_stop(self, event: dict[str, Any]) -> None:
        conversation = await self._authorized(event.get("conversation_id"))
        message = await self._message_in(conversation.pk, event.get("message_id"))
        if message.status != Message.Status.STREAMING:
            await self._send_final(message)
            return
        if not await generation_stop(message_id=message.pk):
            # Not generated here; if no process has written it lately, nobody will stop it.
            await self._reap_if_stale(conversation.pk)

    async def on_resume(self, event: dict[str, Any]) -> None:
        conversation = await self._authorized(event.get("conversation_id"))
        message = await self._message_in(conversation.pk, event.get("message_id"))
        last_seq = event.get("last_seq", 0)
        if not isinstance(last_seq, int) or isinstance(last_seq, bool) or last_seq < 0:
            raise ClientError("invalid_event", "last_seq must be a non-negative integer.")
        await self._watch(str(conversation.pk))
        self.delivered[message.pk] = max(self.delivered.get(message.pk, 0), last_seq)
        local = local_generation(message.pk)
        if local is not None:
            await self._deliver_snapshot(local.snapshot())
            return
        if message.status != Message.Status.STREAMING:
            await self._send_final(message)
            return
        # The reply streams on another node: ask it for its text; hold deltas until it answers.
        self.held[message.pk] = []
        await self.channel_layer.group_send(
            generation_group(message.pk), {"type": "gen.snapshot", "reply_channel": self.channel_name}
        )
        self.snapshot_timeouts[message.pk] = asyncio.create_task(self._snapshot_fallback(message.pk))

    # --- channel-layer events -------------------------------------------------------------------

    async def chat_frame(self, event: dict[str, Any]) -> None:
        frame: dict[str, Any] = event["frame"]
        message_id = frame.get("message_id")
        if isinstance(message_id, int) and message_id in self.held:
            self.held[message_id].append(frame)
            return
        await self._forward(frame)

    async def chat_snapshot(self, event: dict[str, Any]) -> None:
        frame: SnapshotEvent = event["frame"]
        if frame["message_id"] not in self.held:
            return  # answered after the fallback already served this resume
        await self._deliver_snapshot(frame)

    # --- helpers ----------------------------------------------------------------------------------

    async def _forward(self, frame: dict[str, Any]) -> None:
        if frame["type"] == "delta":
            message_id = frame["message_id"]
            if frame["seq"] <= self.delivered.get(message_id, 0):
                return
            self.delivered[message_id] = frame["seq"]
        elif frame["type"] == "done":
            self.delivered.pop(frame["message_id"], None)
        await self.send_json(frame)

    async def _deliver_snapshot(self, snapshot: SnapshotEvent) -> None:
        message_id = snapshot["message_id"]
        timeout = self.snapshot_timeouts.pop(message_id, None)
        if timeout is not None and timeout is not asyncio.current_task():
            timeout.cancel()
        held = self.held.pop(message_id, [])
        if snapshot["seq"] >= self.delivered.get(message_id, 0):
            await self.send_json(snapshot)
            self.delivered[message_id] = snapshot["seq"]
        for frame in held:
            await self._forward(frame)

    async def _snapshot_fallback(self, message_id: int) -> None:
        """No node answered for a streaming reply: serve the checkpoint (or the final row)."""
        await asyncio.sleep(float(settings.CHAT_SNAPSHOT_TIMEOUT))
        if message_id not in self.held:
            return
        message = await on_db_thread(message_get)(message_id=message_id)
        if message is None:
            self.held.pop(message_id, None)
            return
        await self._deliver_snapshot(snapshot_frame(message))
        if message.status != Message.Status.STREAMING:
            await self._forward(dict(done_frame(message)))
        else:
            await self._reap_if_stale(message.conversation_id)

    async def _reap_if_stale(self, conversation_id: str | uuid.UUID) -> None:
        reaped = await on_db_thread(messages_reap_interrupted)(conversation_id=conversation_id)
        for message in reaped:
            await publish(str(message.conversation_id), done_frame(message))

    async def _send_final(self, message: Message) -> None:
        await self.send_json(snapshot_frame(message))
        await self.send_json(done_frame(message))
        self.delivered.pop(message.pk, None)

    async def _authorized(self, conversation_id: object) -> Any:
        if not isinstance(conversation_id, str):
            raise ClientError("invalid_event", "conversation_id is required.")
        conversation = await on_db_thread(conversation_get_for_user)(user=self.user, conversation_id=conversation_id)
        if conversation is None:
            raise ClientError(*NOT_FOUND, conversation_id=conversation_id[:64])
        return conversation

    async def _message_in(self, conversation_id: object, message_id: object) -> Message:
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            raise ClientError("invalid_event", "message_id must be an integer.")
        message = await on_db_thread(message_get)(message_id=message_id)
        if message is None or message.conversation_id != conversation_id:
            raise ClientError("message_not_found", "That message is not in this conversation.", message_id=message_id)
        return message

    async def _watch(self, conversation_id: str) -> None:
        if conversation_id not in self.watching:
            await self.channel_layer.group_add(conversation_group(conversation_id), self.channel_name)
            self.watching.add(conversation_id)

    async def send_json(self, content: dict[str, Any] | ErrorEvent | SnapshotEvent | DoneEvent) -> None:
        await self.send(text_data=json.dumps(content))
