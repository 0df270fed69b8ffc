"""Moderation's background work: the finished reply checked by every output detector."""

from __future__ import annotations

from celery import shared_task

from conversations.models import Message
from moderation.models import Flag
from moderation.pipeline import Stage, default_context, run
from moderation.services import flags_record


@shared_task(name="moderation.tasks.check_reply", ignore_result=True, acks_late=True)
def check_reply(message_id: int) -> int:
    """Flag a finished reply for review if an output detector objects. Idempotent: a reply that
    already has output flags was checked."""
    message = Message.objects.filter(pk=message_id).select_related("conversation").defer("embedding").first()
    if message is None or not message.content:
        return 0
    if Flag.objects.filter(message_id=message_id, direction=Flag.Direction.OUTPUT).exists():
        return 0
    verdict = run(
        message.content,
        stage=Stage.OUTPUT_AFTER,
        context=default_context(user_id=message.conversation.owner_id, conversation_id=str(message.conversation_id)),
    )
    return len(
        flags_record(
            verdict=verdict,
            user_id=message.conversation.owner_id,
            conversation_id=message.conversation_id,
            message_id=message.pk,
        )
    )
