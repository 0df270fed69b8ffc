"""Writes to conversations and messages. Synchronous: callers in async code wrap them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from conversations.models import Conversation, Message, UsageRecord
from conversations.services.followups import reply_followups
from moderation.services import user_is_suspended

if TYPE_CHECKING:
    from django.contrib.auth.models import User

DEFAULT_TITLE = "New chat"
TITLE_LENGTH = 60


class TurnRejected(Exception):
    """A turn the product refuses, with a code clients can act on and words a person can read."""

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


NOT_FOUND = ("not_found", "That conversation does not exist or is not yours.")


@dataclass(frozen=True)
class TurnStart:
    conversation: Conversation
    user_message: Message
    assistant_message: Message | None  # None when the user's message was blocked
    created_conversation: bool
    # Replies of dead processes found (and marked interrupted) on the way: their watchers are told.
    reaped: list[Message]


def user_must_be_allowed_to_send(*, user: User) -> None:
    if user_is_suspended(user_id=user.pk):
        raise TurnRejected("suspended", "Your account is suspended, so you cannot send messages. Contact the operator.")


def conversation_create(*, owner: User, title: str = DEFAULT_TITLE, model: str = "") -> Conversation:
    return Conversation.objects.create(owner=owner, title=title[:200] or DEFAULT_TITLE, model=model)


def conversation_rename(*, conversation: Conversation, title: str) -> Conversation:
    cleaned = " ".join(title.split())[:200]
    if not cleaned:
        raise TurnRejected("invalid_title", "A title cannot be empty.")
    conversation.title = cleaned
    conversation.save(update_fields=["title", "updated_at"])
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    """Soft delete: the rows stay for moderation holds and retention to decide on."""
    conversation.deleted_at = timezone.now()
    conversation.save(update_fields=["deleted_at", "updated_at"])


def title_from(content: str) -> str:
    flat = " ".join(content.split())
    return flat if len(flat) <= TITLE_LENGTH else flat[: TITLE_LENGTH - 1].rstrip() + "…"


def validate_content(content: object) -> str:
    if not isinstance(content, str) or not content.strip():
        raise TurnRejected("empty_message", "Type a message before sending.")
    limit = int(settings.CHAT_MAX_MESSAGE_CHARS)
    if len(content) > limit:
        raise TurnRejected("message_too_long", f"That message is {len(content):,} characters; the limit is {limit:,}.")
    return content


def _locked_conversation(
    user: User, conversation_id: str | None, content: str, *, blocked: bool
) -> tuple[Conversation, bool]:
    if conversation_id is None:
        # A blocked message must not name the conversation in the sidebar.
        return conversation_create(owner=user, title=DEFAULT_TITLE if blocked else title_from(content)), True
    try:
        key = uuid.UUID(str(conversation_id))
    except ValueError:
        raise TurnRejected(*NOT_FOUND) from None
    conversation = (
        Conversation.objects.select_for_update().filter(pk=key, owner_id=user.pk, deleted_at__isnull=True).first()
    )
    if conversation is None:
        raise TurnRejected(*NOT_FOUND)
    return conversation, False


def turn_start(
    *,
    user: User,
    conversation_id: str | None,
    content: object,
    model: str,
    blocked: bool = False,
    redacted_content: str = "",
) -> TurnStart:
    """Store the user's message and an empty assistant reply (status streaming), atomically.

    The conversation row is locked so two sends racing from two tabs cannot both start a reply;
    the partial unique index on streaming messages backs that up at the database level. A message
    the input guardrails blocked is stored with status `blocked` and gets no reply.
    """
    text = validate_content(content)
    try:
        with transaction.atomic():
            conversation, created = _locked_conversation(user, conversation_id, text, blocked=blocked)
            reaped = [] if created else messages_reap_interrupted(conversation_id=conversation.pk)
            if Message.objects.filter(conversation=conversation, status=Message.Status.STREAMING).exists():
                raise TurnRejected("busy", "A reply is still being written in this conversation. Stop it or wait.")
            parent = conversation.active_leaf
            user_message = Message.objects.create(
                conversation=conversation,
                parent=parent,
                role=Message.Role.USER,
                content=text,
                redacted_content=redacted_content if redacted_content != text else "",
                status=Message.Status.BLOCKED if blocked else Message.Status.COMPLETE,
            )
            assistant = None
            if not blocked:
                assistant = Message.objects.create(
                    conversation=conversation,
                    parent=user_message,
                    role=Message.Role.ASSISTANT,
                    status=Message.Status.STREAMING,
                    model=model,
                )
            conversation.active_leaf = assistant or user_message
            if conversation.title == DEFAULT_TITLE and not blocked:
                conversation.title = title_from(text)
            conversation.save(update_fields=["active_leaf", "title", "updated_at"])
    except IntegrityError:
        raise TurnRejected("busy", "A reply is still being written in this conversation. Stop it or wait.") from None
    return TurnStart(conversation, user_message, assistant, created, reaped)


def message_checkpoint(*, message_id: int, content: str, seq: int) -> bool:
    """Save the text streamed so far; also the heartbeat. False if the row is no longer streaming."""
    updated = Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(
        content=content, seq=seq, updated_at=timezone.now()
    )
    return updated == 1


@dataclass(frozen=True)
class Outcome:
    status: str
    content: str
    seq: int
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: float
    ttft_ms: int | None
    duration_ms: int
    error_code: str = ""
    error_message: str = ""
    context_report: dict[str, object] | None = None


def message_finalize(*, message_id: int, user_id: int | None, outcome: Outcome) -> Message | None:
    """Write the final state of a reply and its usage row in one transaction.

    Unconditional on status: if a reaper marked the row interrupted while this process was alive
    but slow, the full text that the process still holds is the better record.
    """
    now = timezone.now()
    with transaction.atomic():
        message = (
            Message.objects.select_for_update(of=("self",)).select_related("conversation").filter(pk=message_id).first()
        )
        if message is None:  # the conversation was deleted while streaming
            return None
        message.status = outcome.status
        message.content = outcome.content
        message.seq = outcome.seq
        message.model = outcome.model
        message.prompt_tokens = outcome.prompt_tokens
        message.completion_tokens = outcome.completion_tokens
        message.ttft_ms = outcome.ttft_ms
        message.duration_ms = outcome.duration_ms
        message.error_code = outcome.error_code
        message.error_message = outcome.error_message
        message.context_report = outcome.context_report
        message.finished_at = now
        message.save()
        UsageRecord.objects.create(
            user_id=user_id,
            conversation_id=message.conversation_id,
            message=message,
            purpose=UsageRecord.Purpose.CHAT,
            model=outcome.model,
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
            cost=Decimal(str(outcome.cost)),
            latency_ms=outcome.duration_ms,
            ok=outcome.status in (Message.Status.COMPLETE, Message.Status.STOPPED),
        )
        Conversation.objects.filter(pk=message.conversation_id).update(updated_at=now)
        if message.content:
            reply_followups(
                message_id=message.pk,
                conversation_id=str(message.conversation_id),
                user_id=message.conversation.owner_id,
                temporary=message.conversation.temporary,
            )
    return message


INTERRUPTED_MESSAGE = "The server stopped while this reply was being written; the text so far is kept."


def messages_reap_interrupted(
    *, stale_after: timedelta | None = None, conversation_id: str | uuid.UUID | None = None
) -> list[Message]:
    """Mark replies whose process died mid-stream as interrupted, keeping their checkpointed text.

    Stale means no checkpoint or heartbeat for CHAT_STALE_STREAM_SECONDS. Runs from Celery beat,
    and also wherever a stale row is met (a send, a stop, a resume), so a deployment without beat
    never leaves a conversation stuck behind a dead reply.
    """
    window = stale_after or timedelta(seconds=float(settings.CHAT_STALE_STREAM_SECONDS))
    cutoff = timezone.now() - window
    rows = Message.objects.select_for_update(skip_locked=True).filter(
        status=Message.Status.STREAMING, updated_at__lt=cutoff
    )
    if conversation_id is not None:
        rows = rows.filter(conversation_id=conversation_id)
    with transaction.atomic():
        stale = list(rows.defer("embedding"))
        Message.objects.filter(pk__in=[m.pk for m in stale]).update(
            status=Message.Status.INTERRUPTED,
            error_code="interrupted",
            error_message=INTERRUPTED_MESSAGE,
            finished_at=timezone.now(),
        )
    for message in stale:
        message.status = Message.Status.INTERRUPTED
        message.error_code = "interrupted"
        message.error_message = INTERRUPTED_MESSAGE
    return stale
