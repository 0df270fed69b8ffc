"""Memory's background work. Each task takes ids, returns quietly when its row is gone, and is
safe to run twice (the services commit results with the marker that says the work is done)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.cache import cache

from conversations.services.followups import facts_debounce_key
from memory import services

logger = logging.getLogger(__name__)
# Enough refreshes to catch up an imported conversation without one task running for minutes.
MAX_SUMMARY_ROUNDS = 8


@shared_task(name="memory.tasks.embed_message", ignore_result=True, acks_late=True, max_retries=3)
def embed_message(message_id: int) -> bool:
    return services.message_embed(message_id=message_id)


@shared_task(name="memory.tasks.embed_conversation", ignore_result=True, acks_late=True, max_retries=3)
def embed_conversation(conversation_id: str) -> int:
    """Embed an imported or copied conversation's messages, so recall and search find them."""
    return services.conversation_embed(conversation_id=conversation_id)


@shared_task(name="memory.tasks.refresh_summary", ignore_result=True, acks_late=True)
def refresh_summary(conversation_id: str) -> int:
    """Extend the rolling summary while turns outside the recent window pass the threshold."""
    rounds = 0
    while rounds < MAX_SUMMARY_ROUNDS and services.summary_refresh(conversation_id=conversation_id) is not None:
        rounds += 1
    return rounds


@shared_task(name="memory.tasks.extract_facts", ignore_result=True, acks_late=True)
def extract_facts(user_id: int, debounce_token: str | None = None) -> int:
    """Debounced per user: only the newest queued run does the work, covering every turn since
    the last extraction, so a burst of messages costs one model call instead of one each."""
    if debounce_token is not None and cache.get(facts_debounce_key(user_id)) not in (None, debounce_token):
        return 0
    return len(services.facts_extract(user_id=user_id))
