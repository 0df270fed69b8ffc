"""Writes to conversations and messages. Synchronous: callers in async code wrap them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from conversations.limits.budgets import budget_release, budget_settle
from conversations.models import Conversation, Message, UsageRecord
from conversations.selectors import newest_descendant_id
from conversations.services.followups import reply_followups
from conversations.services.retention import hold_condition
from moderation.services import user_is_suspended

if TYPE_CHECKING:
    from django.contrib.auth.models import User

DEFAULT_TITLE = "New chat"
TITLE_LENGTH = 60


class TurnRejected(Exception):
    """A turn the product refuses, with a code clients can act on and words a person can read."""

    def __init__(self, code: str, message: str, *, retryable: bool = False, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        # Seconds until trying again can succeed, when the product knows (a spent budget's reset).
        self.retry_after = retry_after


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


def conversation_create(
    *, owner: User, title: str = DEFAULT_TITLE, model: str = "", hidden: bool = False
) -> Conversation:
    """A new conversation. A hidden one (an API call that does not ask to be stored) is temporary,
    so memory never reads it, and closed from the start, so no page or socket shows it; its rows
    stay for moderation and the ledger until retention removes them (docs/api.md)."""
    return Conversation.objects.create(
        owner=owner,
        title=title[:200] or DEFAULT_TITLE,
        model=model,
        temporary=hidden,
        deleted_at=timezone.now() if hidden else None,
    )


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


PURGE_BATCH = 500


def hidden_conversations_purge(*, older_than: timedelta | None = None) -> int:
    """Delete, for good, closed temporary conversations (the API's stateless exchanges) closed
    longer ago than API_STATELESS_RETENTION_HOURS; returns how many went.

    What must outlive them does: the ledger rows and budget holds point at their messages with
    SET_NULL, and a moderation flag keeps its excerpt. In batches, so no transaction grows large.
    """
    age = older_than or timedelta(hours=float(settings.API_STATELESS_RETENTION_HOURS))
    # A conversation under a moderation hold (an open flag) stays until the flag is reviewed.
    expired = Conversation.objects.filter(temporary=True, deleted_at__lt=timezone.now() - age).exclude(hold_condition())
    purged = 0
    while batch := list(expired.values_list("pk", flat=True)[:PURGE_BATCH]):
        with transaction.atomic():
            Conversation.objects.filter(pk__in=batch).delete()
        purged += len(batch)
    return purged


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
    user: User, conversation_id: str | None, content: str, *, blocked: bool, hidden: bool = False
) -> tuple[Conversation, bool]:
    if conversation_id is None:
        # A blocked message must not name the conversation in the sidebar.
        title = DEFAULT_TITLE if blocked else title_from(content)
        return conversation_create(owner=user, title=title, hidden=hidden), True
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
    hidden: bool = False,
    edit_of: object = None,
) -> TurnStart:
    """Store the user's message and an empty assistant reply (status streaming), atomically.

    The conversation row is locked so two sends racing from two tabs cannot both start a reply;
    the partial unique index on streaming messages backs that up at the database level. A message
    the input guardrails blocked is stored with status `blocked` and gets no reply.

    With `edit_of` (the id of an earlier user message) the message is an edit: it goes beside that
    message, under the same parent, so the old message and everything after it stay on a branch of
    their own; the conversation's active leaf moves to the new branch.
    """
    text = validate_content(content)
    if edit_of is not None and conversation_id is None:
        raise TurnRejected("invalid_event", "An edit names the conversation of the message it edits.")
    try:
        # No savepoint: a refusal raised here ends the turn's whole transaction (turn_prepare).
        with transaction.atomic(savepoint=False):
            conversation, created = _locked_conversation(user, conversation_id, text, blocked=blocked, hidden=hidden)
            reaped = [] if created else messages_reap_interrupted(conversation_id=conversation.pk)
            # A conversation created just now has no reply to wait for.
            if (
                not created
                and Message.objects.filter(conversation=conversation, status=Message.Status.STREAMING).exists()
            ):
                raise TurnRejected("busy", "A reply is still being written in this conversation. Stop it or wait.")
            parent = conversation.active_leaf if edit_of is None else _edited(conversation, edit_of).parent
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


def _edited(conversation: Conversation, message_id: object) -> Message:
    """The user message an edit replaces on the new branch; refused unless it is one."""
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        raise TurnRejected("invalid_event", "message_id must be an integer.")
    edited = (
        Message.objects.select_related("parent")
        .defer("embedding", "parent__embedding")
        .filter(pk=message_id, conversation=conversation)
        .first()
    )
    if edited is None:
        raise TurnRejected("message_not_found", "That message is not in this conversation.")
    if edited.role != Message.Role.USER:
        raise TurnRejected("not_editable", "Only your own messages can be edited.")
    return edited


def branch_select(*, user: User, conversation_id: str, message_id: object) -> Message:
    """Show the branch through a message (one of a set of siblings): the conversation's active leaf
    becomes the newest message under it, which is a leaf (a child is always newer than its
    parent). Returns the new active leaf. Refused while a reply streams: the reply would end on a
    branch the user no longer sees."""
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        raise TurnRejected("invalid_event", "message_id must be an integer.")
    with transaction.atomic():
        conversation, _ = _locked_conversation(user, conversation_id, "", blocked=False)
        if not Message.objects.filter(pk=message_id, conversation=conversation).exists():
            raise TurnRejected("message_not_found", "That message is not in this conversation.")
        if Message.objects.filter(conversation=conversation, status=Message.Status.STREAMING).exists():
            raise TurnRejected("busy", "A reply is still being written in this conversation. Stop it or wait.")
        leaf_id = newest_descendant_id(message_id=message_id)
        leaf = Message.objects.defer("embedding").get(pk=leaf_id)
        conversation.active_leaf = leaf
        conversation.save(update_fields=["active_leaf", "updated_at"])
    return leaf


def turn_regenerate_start(*, user: User, conversation_id: str, message_id: object, model: str) -> TurnStart:
    """Start another reply to the question a reply answered: a new assistant message (status
    streaming) beside it, under the same user message, which becomes the conversation's active
    leaf. The old reply stays in the tree, on a branch the user can go back to.

    Same guards as a send: the conversation row is locked and one reply streams at a time.
    """
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        raise TurnRejected("invalid_event", "message_id must be an integer.")
    try:
        with transaction.atomic():
            conversation, _ = _locked_conversation(user, conversation_id, "", blocked=False)
            reaped = messages_reap_interrupted(conversation_id=conversation.pk)
            previous = (
                Message.objects.select_related("parent")
                .defer("embedding", "parent__embedding")
                .filter(pk=message_id, conversation=conversation)
                .first()
            )
            if previous is None:
                raise TurnRejected("message_not_found", "That message is not in this conversation.")
            question = previous.parent
            if previous.role != Message.Role.ASSISTANT or question is None or question.role != Message.Role.USER:
                raise TurnRejected("not_regenerable", "Only a reply to a message can be written again.")
            if Message.objects.filter(conversation=conversation, status=Message.Status.STREAMING).exists():
                raise TurnRejected("busy", "A reply is still being written in this conversation. Stop it or wait.")
            assistant = Message.objects.create(
                conversation=conversation,
                parent=question,
                role=Message.Role.ASSISTANT,
                status=Message.Status.STREAMING,
                model=model,
            )
            conversation.active_leaf = assistant
            conversation.save(update_fields=["active_leaf", "updated_at"])
    except IntegrityError:
        raise TurnRejected("busy", "A reply is still being written in this conversation. Stop it or wait.") from None
    return TurnStart(conversation, question, assistant, False, reaped)


def messages_checkpoint(*, checkpoints: Sequence[tuple[int, str, int]]) -> set[int]:
    """Save the text streamed so far of several replies, (message id, content, seq) each, in one
    statement; also their heartbeat. Returns the ids written: a row no longer streaming (its
    reply ended meanwhile) keeps its final text."""
    if not checkpoints:
        return set()
    ids, contents, seqs = (list(column) for column in zip(*checkpoints, strict=True))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Message._meta.db_table} AS m SET content = c.content, seq = c.seq, updated_at = %s "
            "FROM unnest(%s::bigint[], %s::text[], %s::integer[]) AS c(id, content, seq) "
            "WHERE m.id = c.id AND m.status = %s RETURNING m.id",
            [timezone.now(), ids, contents, seqs, Message.Status.STREAMING],
        )
        return {int(row[0]) for row in cursor.fetchall()}


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


def message_finalize(
    *, message_id: int, user_id: int | None, outcome: Outcome, reservation_id: int | None = None
) -> Message | None:
    """Write the final state of a reply and its usage row in one transaction.

    Unconditional on status: if a reaper marked the row interrupted while this process was alive
    but slow, the full text that the process still holds is the better record. The turn's budget
    reservation, if any, is settled from the usage row in the same transaction (once).
    """
    now = timezone.now()
    with transaction.atomic():
        message = (
            Message.objects.select_for_update(of=("self",)).select_related("conversation").filter(pk=message_id).first()
        )
        if message is None:  # the conversation was deleted while streaming
            if reservation_id is not None:
                budget_release(reservation_id=reservation_id)
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
        record = UsageRecord.objects.create(
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
        if reservation_id is not None:
            budget_settle(reservation_id=reservation_id, record=record)
        Conversation.objects.filter(pk=message.conversation_id).update(updated_at=now)
        if message.content:
            reply_followups(
                message_id=message.pk,
                conversation_id=str(message.conversation_id),
                user_id=message.conversation.owner_id,
                temporary=message.conversation.temporary,
                hidden=message.conversation.deleted_at is not None,
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
