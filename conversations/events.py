"""The one definition of what travels over the channel layer and the WebSocket.

Client → server frames: `send`, `edit`, `regenerate`, `switch`, `stop`, `resume`, `subscribe`, `ping`.
Server → client frames: `message.created`, `queue`, `delta`, `snapshot`, `done`, `branch`, `error`,
`subscribed`, `pong`.
Channel-layer events carry the same payloads under a `type` that names the consumer handler
(`chat.delta` → `chat_delta`). docs/protocol.md describes the exchange for client authors.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict


def conversation_group(conversation_id: str) -> str:
    """Every socket watching a conversation, on any node."""
    return f"conv.{conversation_id}"


def generation_group(message_id: int) -> str:
    """The one task generating a message, wherever it runs: where stop and snapshot requests go."""
    return f"gen.{message_id}"


class UsagePayload(TypedDict):
    prompt_tokens: int
    completion_tokens: int


class AttachmentPayload(TypedDict):
    """An image on a message; `url` is served to its owner only."""

    id: str
    url: str
    content_type: str
    width: int
    height: int


class MessagePayload(TypedDict):
    id: int
    conversation_id: str
    parent_id: int | None
    role: str
    content: str
    html: str
    status: str
    seq: int
    model: str
    created_at: str
    context: dict[str, object] | None
    prompt_tokens: int | None
    completion_tokens: int | None
    error: dict[str, str] | None
    attachments: NotRequired[list[AttachmentPayload]]
    # The message and its siblings (same parent), oldest first: present when the message starts a
    # branch (an edit, a regenerated reply) and on pages; the client draws "‹ 2 / 3 ›" from it.
    siblings: NotRequired[list[int]]


# --- server → client (and the channel-layer events that carry them) ----------------------------


class MessageCreatedEvent(TypedDict):
    type: Literal["message.created"]
    conversation_id: str
    message: MessagePayload
    client_id: NotRequired[str]


class DeltaEvent(TypedDict):
    type: Literal["delta"]
    conversation_id: str
    message_id: int
    seq: int
    text: str


class QueueEvent(TypedDict):
    """A reply waits for a free slot of its model: `position` 1 is next; 0 means it got one."""

    type: Literal["queue"]
    conversation_id: str
    message_id: int
    position: int


class SnapshotEvent(TypedDict):
    """The text of a message up to `seq`; deltas with a higher seq follow."""

    type: Literal["snapshot"]
    conversation_id: str
    message_id: int
    seq: int
    content: str
    status: str


class DoneEvent(TypedDict):
    type: Literal["done"]
    conversation_id: str
    message_id: int
    status: str
    seq: int
    content: str
    html: str
    usage: UsagePayload | None
    context: NotRequired[dict[str, object] | None]
    error: NotRequired[ErrorPayload]


class ErrorPayload(TypedDict):
    code: str
    message: str
    retryable: bool


class ErrorEvent(TypedDict):
    type: Literal["error"]
    code: str
    message: str
    retryable: bool
    conversation_id: NotRequired[str]
    message_id: NotRequired[int]
    client_id: NotRequired[str]
    retry_after: NotRequired[int]  # seconds, with `rate_limited`


class BranchEvent(TypedDict):
    """The conversation now shows another branch (a `switch` from any tab): redraw it."""

    type: Literal["branch"]
    conversation_id: str
    active_leaf_id: int


class SubscribedEvent(TypedDict):
    type: Literal["subscribed"]
    conversation_id: str
    title: str


# --- channel-layer only ---------------------------------------------------------------------------


class GroupEnvelope(TypedDict):
    """A server frame wrapped for group_send: `type` routes it, `frame` is sent as is."""

    type: Literal["chat.frame"]
    frame: MessageCreatedEvent | QueueEvent | DeltaEvent | DoneEvent | BranchEvent


class StopRequest(TypedDict):
    type: Literal["gen.stop"]


class SnapshotRequest(TypedDict):
    type: Literal["gen.snapshot"]
    reply_channel: str


class SnapshotReply(TypedDict):
    type: Literal["chat.snapshot"]
    frame: SnapshotEvent


# --- client → server --------------------------------------------------------------------------

CLIENT_EVENT_TYPES = frozenset({"send", "edit", "regenerate", "switch", "stop", "resume", "subscribe", "ping"})


def error_event(
    code: str,
    message: str,
    *,
    retryable: bool = False,
    conversation_id: str | None = None,
    message_id: int | None = None,
    client_id: str | None = None,
) -> ErrorEvent:
    event: ErrorEvent = {"type": "error", "code": code, "message": message, "retryable": retryable}
    if conversation_id:
        event["conversation_id"] = conversation_id
    if message_id is not None:
        event["message_id"] = message_id
    if client_id:
        event["client_id"] = client_id
    return event
