"""A turn from the OpenAI-compatible API, through the web chat's own pipeline (`turn_prepare`).

An API client sends the whole conversation with every request (OpenAI's semantics). Its last
message, which must be the user's, is the turn: it goes through the input guardrails, is stored,
and gets a reply exactly as a message typed in the web chat. The rest maps onto the context
builder: system (and developer) messages are appended under the deployment's system prompt, never
in place of it, and the earlier user and assistant messages are the history.

Three ways to call, chosen by headers (docs/api.md):

- stateless (the default): the turn lives in a hidden conversation (temporary, so memory never
  reads or learns from it, and closed from the start, so no page or socket shows it). Only the
  last message and the reply are stored, because the ledger, budgets and moderation flags point
  at them; retention deletes them later. The history comes from the request, not the database.
- stored (`X-Parley-Store: true`): a new conversation the user sees in the web chat, with the
  request's earlier messages stored before the turn.
- continued (`X-Parley-Conversation: <id>`): the turn is added to one of the user's
  conversations, whose stored branch is the history, as in the web chat; the request's earlier
  user and assistant messages are not used.

Everything the client wrote is its input, so the system text and the earlier messages go through
the input guardrails too: personal data is redacted before the model sees it, and a block refuses
the request. Only blocks raise flags here: a client resends its history with every request, and
each message was checked (and flagged) when it was the newest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction

from conversations.models import Conversation, Message
from conversations.services.messages import (
    TurnRejected,
    conversation_create,
    title_from,
    user_must_be_allowed_to_send,
)
from conversations.services.turns import PreparedTurn, TurnOptions, turn_prepare
from memory.context import Turn
from moderation import pipeline as moderation_pipeline
from moderation.pipeline import Stage
from moderation.services import flags_record

if TYPE_CHECKING:
    from django.contrib.auth.models import User


@dataclass(frozen=True)
class ApiTurn:
    """A parsed chat-completions request: what the pipeline needs, nothing of HTTP."""

    model: str
    content: str  # the last message, the user's
    instructions: str = ""  # the client's system and developer messages, joined
    history: tuple[Turn, ...] = ()  # the earlier user and assistant messages, oldest first
    max_tokens: int | None = None
    store: bool = False
    conversation_id: str | None = None


@dataclass(frozen=True)
class _Guarded:
    instructions: str
    history: tuple[Turn, ...]
    # Per history message, the text to store when it differs from what the model receives.
    stored: tuple[str, ...]


def _guard(user: User, text: str) -> tuple[str, str]:
    """(what the model receives, what is stored) for one piece of client text; raises if blocked."""
    verdict = moderation_pipeline.run(
        text, stage=Stage.INPUT, context=moderation_pipeline.default_context(user_id=user.pk)
    )
    if verdict.blocked:
        flags_record(verdict=verdict, user_id=user.pk)
        raise TurnRejected("blocked", verdict.explanation())
    stored = verdict.text if settings.MODERATION_REDACT_STORED_INPUT else text
    return verdict.text, stored


def _guarded_context(user: User, turn: ApiTurn, *, with_history: bool) -> _Guarded:
    instructions = _guard(user, turn.instructions)[0] if turn.instructions else ""
    if not with_history:
        return _Guarded(instructions, (), ())
    history: list[Turn] = []
    stored: list[str] = []
    for message in turn.history:
        sent, kept = _guard(user, message.content)
        history.append(Turn(message.role, sent))
        stored.append(kept)
    return _Guarded(instructions, tuple(history), tuple(stored))


def _conversation_with_history(user: User, turn: ApiTurn, guarded: _Guarded) -> Conversation:
    """A new visible conversation holding the request's earlier messages, oldest first."""
    first_user = next((m.content for m in turn.history if m.role == Message.Role.USER), turn.content)
    with transaction.atomic():
        conversation = conversation_create(owner=user, title=title_from(first_user))
        parent: Message | None = None
        for sent, kept in zip(guarded.history, guarded.stored, strict=True):
            parent = Message.objects.create(
                conversation=conversation,
                parent=parent,
                role=sent.role,
                content=kept,
                redacted_content=sent.content if sent.content != kept else "",
                status=Message.Status.COMPLETE,
            )
        if parent is not None:
            conversation.active_leaf = parent
            conversation.save(update_fields=["active_leaf", "updated_at"])
    return conversation


def api_turn_prepare(*, user: User, turn: ApiTurn) -> PreparedTurn:
    """Guard the client's context, place the turn in its conversation and prepare it as the web
    chat does (input guardrails, storage, budget, context). Raises TurnRejected when refused."""
    user_must_be_allowed_to_send(user=user)
    continued = turn.conversation_id is not None
    guarded = _guarded_context(user, turn, with_history=not continued)
    options = TurnOptions(model=turn.model, instructions=guarded.instructions, max_tokens=turn.max_tokens)
    if continued:
        return turn_prepare(user=user, conversation_id=turn.conversation_id, content=turn.content, options=options)
    if not turn.store:
        stateless = TurnOptions(
            model=turn.model,
            instructions=guarded.instructions,
            max_tokens=turn.max_tokens,
            history=guarded.history,
            hidden=True,
        )
        return turn_prepare(user=user, conversation_id=None, content=turn.content, options=stateless)
    conversation = _conversation_with_history(user, turn, guarded)
    try:
        return turn_prepare(user=user, conversation_id=str(conversation.pk), content=turn.content, options=options)
    except BaseException:
        # Refused (a budget, say): the request stored nothing, so its history goes too.
        conversation.delete()
        raise
