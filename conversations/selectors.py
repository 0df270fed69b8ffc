"""Reads: what pages, sockets and tasks need to know about conversations and messages."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.db import connection
from django.db.models import QuerySet
from django.urls import reverse

from conversations.events import AttachmentPayload, DoneEvent, MessagePayload, SnapshotEvent
from conversations.models import Attachment, Conversation, Message
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


_FORKS_SQL = """
SELECT parent_id, array_agg(id ORDER BY id) FROM conversations_message
WHERE conversation_id = %s GROUP BY parent_id HAVING count(*) > 1
"""


def conversation_forks(*, conversation_id: str | uuid.UUID) -> dict[int | None, list[int]]:
    """Every set of siblings in a conversation, by parent id (None: several first messages), oldest
    first: what the "‹ 2 / 3 ›" controls of a page are drawn from. Few rows: only forks."""
    with connection.cursor() as cursor:
        cursor.execute(_FORKS_SQL, [str(conversation_id)])
        return {parent_id: list(ids) for parent_id, ids in cursor.fetchall()}


def sibling_ids(*, message: Message) -> list[int]:
    """The message and its siblings (same parent), oldest first."""
    siblings = Message.objects.filter(conversation_id=message.conversation_id, parent_id=message.parent_id)
    if message.parent_id is None:
        siblings = Message.objects.filter(conversation_id=message.conversation_id, parent__isnull=True)
    return list(siblings.order_by("id").values_list("id", flat=True))


_NEWEST_DESCENDANT_SQL = """
WITH RECURSIVE below(id) AS (
    SELECT %s::bigint
    UNION ALL
    SELECT m.id FROM conversations_message m JOIN below ON m.parent_id = below.id
)
SELECT max(id) FROM below
"""


def newest_descendant_id(*, message_id: int) -> int:
    """The newest message under a message (itself when it has none). It is a leaf: a child is
    always newer than its parent."""
    with connection.cursor() as cursor:
        cursor.execute(_NEWEST_DESCENDANT_SQL, [message_id])
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else message_id


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


def message_payload(message: Message, *, siblings: list[int] | None = None) -> MessagePayload:
    """A message as pages and frames carry it; `siblings` (the message and its siblings, oldest
    first) where it is known, for the controls that move between branches."""
    final = message.status != Message.Status.STREAMING
    payload: MessagePayload = {
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
        # Prefetch `attachments` where many messages are shown, and in sync code before an async send.
        "attachments": [attachment_payload(a) for a in message.attachments.all()],
    }
    if siblings is not None:
        payload["siblings"] = siblings
    return payload


def attachment_payload(attachment: Attachment) -> AttachmentPayload:
    return {
        "id": str(attachment.pk),
        "url": reverse("attachment-file", args=[attachment.pk]),
        "content_type": attachment.content_type,
        "width": attachment.width,
        "height": attachment.height,
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
