"""Share links: a read-only snapshot of a conversation's active branch behind an unguessable URL,
revocable by its owner, and continued by a signed-in viewer as a copy of their own (docs/data.md).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from conversations.models import Conversation, Message, SharedConversation
from conversations.selectors import branch_messages
from conversations.services.exports import ConversationSpec, NodeSpec, conversation_tree_create
from conversations.services.followups import conversations_arrived

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User

TOKEN_BYTES = 32
# Replies still being written and messages the guardrails stopped are not the owner's to publish.
UNSHAREABLE = {Message.Status.STREAMING, Message.Status.BLOCKED}


class ShareError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


NOT_FOUND = ("not_found", "That shared link does not exist or is not yours.")


def _snapshot(conversation: Conversation) -> list[dict[str, Any]]:
    return [
        {
            "role": m.role,
            "content": m.content,
            "status": m.status,
            "model": m.model,
            "created_at": m.created_at.isoformat(),
        }
        for m in branch_messages(conversation=conversation)
        if m.role != Message.Role.SYSTEM and m.status not in UNSHAREABLE and m.content.strip()
    ]


def share_create(*, conversation: Conversation, owner: User) -> SharedConversation:
    """A new share link of the conversation's active branch as it is now; later messages, edits
    and branches are never part of it. Each call makes a new link, revocable on its own."""
    if conversation.owner_id != owner.pk:
        raise ShareError(*NOT_FOUND)
    snapshot = _snapshot(conversation)
    if not snapshot:
        raise ShareError("empty", "There is nothing to share yet: send a message first.")
    return SharedConversation.objects.create(
        conversation=conversation,
        owner=owner,
        token=secrets.token_urlsafe(TOKEN_BYTES),
        title=conversation.title,
        snapshot=snapshot,
    )


def share_for_token(*, token: str) -> SharedConversation | None:
    """The live share behind a link: None once revoked or when its conversation was deleted."""
    if not token or len(token) > 64:
        return None
    return (
        SharedConversation.objects.filter(token=token, revoked_at__isnull=True, conversation__deleted_at__isnull=True)
        .select_related("owner")
        .first()
    )


def shares_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[SharedConversation]:
    return SharedConversation.objects.filter(owner_id=user.pk, conversation__deleted_at__isnull=True)


def share_revoke(*, owner: User, share_id: int) -> SharedConversation:
    """Revoke one of the owner's links: from now on it answers 404. Revoking twice is harmless;
    someone else's link (or none) raises ShareError."""
    with transaction.atomic():
        share = SharedConversation.objects.select_for_update().filter(pk=share_id, owner=owner).first()
        if share is None:
            raise ShareError(*NOT_FOUND)
        if share.revoked_at is None:
            share.revoked_at = timezone.now()
            share.save(update_fields=["revoked_at"])
    return share


def share_continue(*, share: SharedConversation, user: User) -> Conversation:
    """Copy a share's snapshot into a new conversation of the viewer, whose newest message is the
    branch they continue from. The copy owes nothing to the original: revoking the link later
    leaves it alone."""
    nodes: list[NodeSpec] = []
    now = timezone.now()
    for index, entry in enumerate(share.snapshot):
        nodes.append(
            NodeSpec(
                key=str(index),
                parent_key=str(index - 1) if index else None,
                role=entry["role"],
                content=entry["content"],
                status=entry.get("status", Message.Status.COMPLETE),
                model=entry.get("model", ""),
                created_at=parse_datetime(entry.get("created_at") or "") or now,
            )
        )
    spec = ConversationSpec(title=share.title, nodes=nodes, active_key=nodes[-1].key if nodes else None)
    with transaction.atomic():
        conversation, _ = conversation_tree_create(owner=user, spec=spec)
        conversations_arrived(conversation_ids=[str(conversation.pk)])
    return conversation
