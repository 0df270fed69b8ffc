"""Organising conversations: pin, archive, and temporary chats (docs/operations.md, Retention)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conversations.models import Conversation
from conversations.services.messages import DEFAULT_TITLE, TurnRejected

if TYPE_CHECKING:
    from django.contrib.auth.models import User

_TRUE = frozenset({"true", "1", "on", "yes"})
_FALSE = frozenset({"false", "0", "off", "no"})


def flag_value_parse(*, name: str, raw: object) -> bool:
    """A boolean form field, or a clear refusal: a typo must not silently mean "false"."""
    text = str(raw).strip().lower() if isinstance(raw, str) else ""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise TurnRejected(f"invalid_{name}", f"{name} must be true or false.")


def conversation_pin(*, conversation: Conversation, pinned: bool) -> Conversation:
    """Pin a conversation to the top of the list, or unpin it.

    Organising is not activity: `updated_at` is left alone, so pinning neither moves a chat in
    "recent" order nor restarts its retention period."""
    conversation.pinned = pinned
    conversation.save(update_fields=["pinned"])
    return conversation


def conversation_archive(*, conversation: Conversation, archived: bool) -> Conversation:
    """Move a conversation out of the sidebar into the archive, or back. An archived chat can
    still be opened and continued; it is kept (and expires) like any other. Archiving unpins,
    since a pinned chat nobody sees in the sidebar would pin nothing."""
    conversation.archived = archived
    fields = ["archived"]
    if archived and conversation.pinned:
        conversation.pinned = False
        fields.append("pinned")
    conversation.save(update_fields=fields)
    return conversation


def temporary_chat_create(*, owner: User) -> Conversation:
    """An empty temporary chat: memory never reads it or learns from it, the sidebar does not list
    it, and retention deletes it TEMPORARY_CHAT_RETENTION_HOURS after its last activity."""
    return Conversation.objects.create(owner=owner, title=DEFAULT_TITLE, temporary=True)
