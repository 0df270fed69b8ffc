"""Background work queued when a reply is stored: embed it, extend the summary, extract facts.

Tasks are addressed by name through the Celery app, not imported: services sit below tasks in the
import chain (DESIGN.md §1). They are queued on commit, so a worker never sees a row that a rolled
back transaction never wrote, and a broker outage never fails the turn itself.
"""

from __future__ import annotations

import logging
import uuid

from celery import Task
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from chatproject.celery import app
from moderation.pipeline import after_output_enabled

logger = logging.getLogger(__name__)


def facts_debounce_key(user_id: int) -> str:
    return f"memory:facts-debounce:{user_id}"


def _task(name: str) -> Task:
    if name not in app.tasks:
        # Web processes never import tasks modules themselves; load every app's, as a worker does.
        app.loader.import_default_modules()
    return app.tasks[name]


def _enqueue(name: str, *args: object, countdown: float | None = None) -> None:
    try:
        _task(name).apply_async(args=args, countdown=countdown)
    except Exception:  # the reply is stored; follow-up work can be redone by a later turn
        logger.exception("could not queue %s", name)


def reply_followups(
    *, message_id: int, conversation_id: str, user_id: int, temporary: bool, hidden: bool = False
) -> None:
    """`hidden`: a conversation nobody will see again (a stateless API exchange, a deleted chat):
    moderation still reviews the reply, but there is nothing to recall or summarise later."""
    check_after = after_output_enabled()

    def enqueue() -> None:
        if check_after:
            _enqueue("moderation.tasks.check_reply", message_id)
        if hidden:
            return
        _enqueue("memory.tasks.embed_message", message_id)
        _enqueue("memory.tasks.refresh_summary", conversation_id)
        if temporary:
            return
        token = uuid.uuid4().hex
        delay = float(settings.FACTS_DEBOUNCE_SECONDS)
        cache.set(facts_debounce_key(user_id), token, timeout=int(delay * 10) + 60)
        _enqueue("memory.tasks.extract_facts", user_id, token, countdown=delay)

    transaction.on_commit(enqueue)


def conversations_arrived(*, conversation_ids: list[str]) -> None:
    """Conversations that arrived whole (an import, a shared conversation continued as a copy):
    embed their messages in the background so recall and semantic search find them."""

    def enqueue() -> None:
        for conversation_id in conversation_ids:
            _enqueue("memory.tasks.embed_conversation", conversation_id)

    transaction.on_commit(enqueue)
