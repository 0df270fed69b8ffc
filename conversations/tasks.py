"""Background work for conversations."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from celery import shared_task

from conversations.selectors import done_frame
from conversations.services.messages import hidden_conversations_purge, messages_reap_interrupted
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
