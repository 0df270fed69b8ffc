"""Retention: what the product deletes for good, when, and what a moderation hold keeps.

Three kinds of conversation expire (docs/operations.md, Retention):

- any conversation not updated for CHAT_RETENTION_DAYS (0, the default, keeps them forever);
- a temporary chat, TEMPORARY_CHAT_RETENTION_HOURS after its last activity;
- a conversation its owner deleted (a soft delete until now), at the next run.

A conversation under a moderation hold is kept whatever its age: one with an open flag, on the
conversation or on any of its messages, waits until a moderator reviews the flag
(docs/moderation.md). The API's stateless exchanges have their own, shorter clock
(`hidden_conversations_purge`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from conversations.models import Conversation
from moderation.models import Flag

logger = logging.getLogger(__name__)

RETENTION_BATCH = 200


def hold_condition() -> Q:
    """True for conversations under a moderation hold: an open flag on them or on a message of
    theirs. Flags name the conversation when they are written, but a flag raised on a message
    alone still counts."""
    open_flags = Flag.objects.filter(review_status=Flag.Review.OPEN)
    on_conversation = open_flags.filter(conversation_id=OuterRef("pk"))
    on_message = open_flags.filter(message__conversation_id=OuterRef("pk"))
    return Q(Exists(on_conversation)) | Q(Exists(on_message))


def conversation_is_held(*, conversation_id: UUID | str) -> bool:
    """Whether retention must keep this conversation for moderation."""
    return Conversation.objects.filter(hold_condition(), pk=conversation_id).exists()


def expiry_condition(*, now: datetime) -> Q:
    """The conversations retention deletes at `now`, held or not."""
    temporary_age = timedelta(hours=float(settings.TEMPORARY_CHAT_RETENTION_HOURS))
    expired = Q(temporary=True, deleted_at__isnull=True, updated_at__lt=now - temporary_age)
    # The API's stateless exchanges (temporary and closed from birth) are not "deleted by their
    # owner": they keep their own clock in hidden_conversations_purge.
    expired |= Q(temporary=False, deleted_at__isnull=False)
    days = float(settings.CHAT_RETENTION_DAYS)
    if days > 0:
        expired |= Q(updated_at__lt=now - timedelta(days=days))
    return expired


def conversations_expired(*, now: datetime | None = None) -> QuerySet[Conversation]:
    """Conversations past their retention and not held: what the next run deletes."""
    return Conversation.objects.filter(expiry_condition(now=now or timezone.now())).exclude(hold_condition())


@dataclass(frozen=True)
class RetentionResult:
    purged: int  # conversations deleted for good, with everything that hangs off them
    held: int  # past their retention but kept for moderation


def retention_apply(*, now: datetime | None = None) -> RetentionResult:
    """Delete, for good, every conversation past its retention that no moderation hold keeps.

    In batches, each its own transaction, so no transaction grows large and a crash loses only
    the batch at hand. Each batch deletes through the full condition again, so a conversation
    that gained an open flag (or new activity) since it was listed is spared. Deleting a
    conversation removes its messages, embeddings and summaries; the ledger rows, budget holds
    and moderation flags that point at them stay, unlinked (SET_NULL), as the operator's record.
    """
    at = now or timezone.now()
    expired = conversations_expired(now=at)
    purged = 0
    spared: set[UUID] = set()  # listed, then found held or active again: never listed twice
    while batch := list(expired.exclude(pk__in=spared).values_list("pk", flat=True)[:RETENTION_BATCH]):
        with transaction.atomic():
            # Locked like a turn locks it, so a send racing the purge waits, then finds it gone.
            doomed = list(
                conversations_expired(now=at).filter(pk__in=batch).select_for_update().values_list("pk", flat=True)
            )
            Conversation.objects.filter(pk__in=doomed).delete()
        purged += len(doomed)
        spared.update(set(batch) - set(doomed))
    held = Conversation.objects.filter(expiry_condition(now=at)).filter(hold_condition()).count()
    if purged or held:
        logger.info("retention: %d conversations deleted, %d kept under a moderation hold", purged, held)
    return RetentionResult(purged=purged, held=held)
