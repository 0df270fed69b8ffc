"""Reads: what pages, sockets and tasks need to know about conversations and messages."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.db.models import QuerySet

from conversations.events import DoneEvent, MessagePayload, SnapshotEvent
from conversations.models import Conversation, Message
from conversations.rendering import render_markdown

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


def conversations_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Conversation]:
    return Conversation.objects.filter(owner_id=user.pk, deleted_at__isnull=True)


def conversation_get_for_user(
    *, user: AbstractBaseUser | AnonymousUser, conversation_id: str | uuid.UUID
) -> Conversation | None:
    """The conversation if it exists and is the user's; None otherwise (never say which)."""
    try:
        key = uuid.UUID(str(conversation_id))
    except ValueError:
        return None
    return conversations_for_user(user=user).filter(pk=key).first()


def branch_messages(*, conversation: Conversation, leaf_id: int | None = None) -> list[Message]:
    """The messages from the root to a leaf (the active one by default), oldest first.

    One query for the conversation's rows, then a walk up `parent` in memory: a tree of a few
    thousand rows is cheaper to walk than a recursive CTE per page view.
    """
    leaf = leaf_id if leaf_id is not None else conversation.active_leaf_id
    if leaf is None:
        return []
    rows = {
        m.pk: m
        for m in Message.objects.filter(conversation=conversation).defer("embedding").order_by("created_at", "id")
    }
    path: list[Message] = []
    cursor = rows.get(leaf)
    while cursor is not None:
        path.append(cursor)
        cursor = rows.get(cursor.parent_id) if cursor.parent_id is not None else None
    path.reverse()
    return path


_BRANCH_TAIL_SQL = """
WITH RECURSIVE path(id, parent_id, depth) AS (
    SELECT id, parent_id, 0 FROM conversations_message WHERE id = %(leaf)s
    UNION ALL
    SELECT m.id, m.parent_id, p.depth + 1
    FROM conversations_message m JOIN path p ON m.id = p.parent_id
    WHERE p.depth + 1 < %(limit)s AND m.id <> %(boundary)s
)
SELECT m.id, m.conversation_id, m.parent_id, m.role, m.content, m.redacted_content, m.status, m.created_at
FROM path JOIN conversations_message m ON m.id = path.id
ORDER BY path.depth DESC
"""


def branch_tail(*, leaf_id: int, limit: int, after_id: int | None = None) -> list[Message]:
    """The last `limit` messages of the branch ending at leaf_id, oldest first, stopping after
    `after_id` (exclusive) when given. A walk up primary keys: cost grows with `limit`, not with
    the conversation's length."""
    if limit <= 0:
        return []
    params = {"leaf": leaf_id, "limit": limit, "boundary": after_id or 0}
    return list(Message.objects.raw(_BRANCH_TAIL_SQL, params))


def streaming_message(*, conversation_id: str | uuid.UUID) -> Message | None:
    return (
        Message.objects.filter(conversation_id=conversation_id, status=Message.Status.STREAMING)
        .defer("embedding")
        .first()
    )


def message_get(*, message_id: int) -> Message | None:
    return Message.objects.filter(pk=message_id).defer("embedding").first()


def message_payload(message: Message) -> MessagePayload:
    final = message.status != Message.Status.STREAMING
    return {
        "id": message.pk,
        "conversation_id": str(message.conversation_id),
        "parent_id": message.parent_id,
        "role": message.role,
        "content": message.content,
        # Only finished text is rendered: half a Markdown construct renders wrong and re-rendering
        # per delta is what makes long replies stutter in other products.
        "html": render_markdown(message.content) if final and message.role == Message.Role.ASSISTANT else "",
        "status": message.status,
        "seq": message.seq,
        "model": message.model,
        "created_at": message.created_at.isoformat(),
        "context": message.context_report,
        "prompt_tokens": message.prompt_tokens,
        "completion_tokens": message.completion_tokens,
        "error": {"code": message.error_code, "message": message.error_message} if message.error_code else None,
    }


def snapshot_frame(message: Message) -> SnapshotEvent:
    return {
        "type": "snapshot",
        "conversation_id": str(message.conversation_id),
        "message_id": message.pk,
        "seq": message.seq,
        "content": message.content,
        "status": message.status,
    }


def done_frame(message: Message) -> DoneEvent:
    done: DoneEvent = {
        "type": "done",
        "conversation_id": str(message.conversation_id),
        "message_id": message.pk,
        "status": message.status,
        "seq": message.seq,
        "content": message.content,
        "html": render_markdown(message.content),
        "usage": (
            {"prompt_tokens": message.prompt_tokens or 0, "completion_tokens": message.completion_tokens or 0}
            if message.completion_tokens is not None
            else None
        ),
        "context": message.context_report,
    }
    if message.error_code:
        done["error"] = {"code": message.error_code, "message": message.error_message, "retryable": True}
    return done
