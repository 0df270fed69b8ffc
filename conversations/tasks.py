"""Background work for conversations."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from celery import shared_task

from conversations.selectors import done_frame
from conversations.services.messages import hidden_conversations_purge, messages_reap_interrupted
from conversations.services.retention import retention_apply
from conversations.services.turns import publish


@shared_task(name="conversations.tasks.reap_interrupted", ignore_result=True)
def reap_interrupted() -> int:
    """Mark replies left streaming by a dead process as interrupted and tell their watchers."""
    reaped = messages_reap_interrupted()
    for message in reaped:
        async_to_sync(publish)(str(message.conversation_id), done_frame(message))
    return len(reaped)


@shared_task(name="conversations.tasks.purge_hidden_conversations", ignore_result=True)
def purge_hidden_conversations() -> int:
    """Delete the API's stateless exchanges (and deleted temporary chats) past their retention."""
    return hidden_conversations_purge()


@shared_task(name="conversations.tasks.apply_retention", ignore_result=True)
def apply_retention() -> int:
    """Delete conversations past the operator's retention, temporary chats past theirs and chats
    their owners deleted, except those under a moderation hold. Idempotent: a second run finds
    nothing more to delete."""
    return retention_apply().purged
