"""Reads for memory: the current summary, recalled turns, relevant facts, and the context inputs.

Retrieval runs on the HNSW indexes with pgvector's iterative scan, so a filter (this
conversation, this user) does not starve the index of candidates: without it an approximate
search over a million rows returns its 40 nearest overall and the filter keeps almost none.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from django.conf import settings
from pgvector.django import CosineDistance

from conversations.models import Message
from conversations.selectors import branch_tail
from memory.context import ContextInputs, Fact, Recalled, Turn
from memory.models import ConversationSummary, MemoryProfile, UserFact

CHAT_ROLES = (Message.Role.USER, Message.Role.ASSISTANT)


def memory_enabled(*, user_id: int) -> bool:
    enabled = MemoryProfile.objects.filter(user_id=user_id).values_list("enabled", flat=True).first()
    return True if enabled is None else bool(enabled)


def current_summary(*, conversation_id: str | UUID) -> ConversationSummary | None:
    return ConversationSummary.objects.filter(conversation_id=conversation_id).order_by("-through_message_id").first()


def facts_for_user(*, user_id: int) -> list[UserFact]:
    return list(
        UserFact.objects.filter(user_id=user_id, status=UserFact.Status.ACTIVE)
        .select_related("source_message")
        .defer("embedding", "source_message__embedding")
        .order_by("-updated_at")
    )


def recall_turns(
    *, conversation_id: str | UUID, query: Sequence[float], exclude_ids: set[int], limit: int, threshold: float
) -> list[Recalled]:
    """Older turns of this conversation most similar to the query, above a cosine threshold."""
    rows = list(
        Message.objects.filter(conversation_id=conversation_id, role__in=CHAT_ROLES, embedding__isnull=False)
        .exclude(pk__in=exclude_ids)
        .exclude(status=Message.Status.BLOCKED)
        .annotate(distance=CosineDistance("embedding", list(query)))
        .order_by("distance")
        .values("pk", "role", "content", "redacted_content", "distance")[:limit]
    )
    return [
        Recalled(Turn(row["role"], row["redacted_content"] or row["content"], row["pk"]), 1.0 - float(row["distance"]))
        for row in rows
        if 1.0 - float(row["distance"]) >= threshold
    ]


def relevant_facts(*, user_id: int, query: Sequence[float], limit: int, threshold: float) -> list[Fact]:
    rows = list(
        UserFact.objects.filter(user_id=user_id, status=UserFact.Status.ACTIVE, embedding__isnull=False)
        .annotate(distance=CosineDistance("embedding", list(query)))
        .order_by("distance")
        .values("pk", "text", "distance")[:limit]
    )
    return [
        Fact(row["text"], 1.0 - float(row["distance"]), row["pk"])
        for row in rows
        if 1.0 - float(row["distance"]) >= threshold
    ]


def context_inputs(
    *,
    user_id: int,
    conversation_id: str | UUID,
    parent_id: int | None,
    system_prompt: str,
    user_message: str,
    query: Sequence[float] | None,
    use_memory: bool,
    exclude_ids: Sequence[int] = (),
) -> ContextInputs:
    """Everything the builder may use for a reply to `user_message`, gathered in a few queries."""
    summary = current_summary(conversation_id=conversation_id)
    boundary = summary.through_message_id if summary else None
    history = (
        branch_tail(leaf_id=parent_id, limit=int(settings.CONTEXT_HISTORY_LIMIT), after_id=boundary)
        if parent_id is not None
        else []
    )
    turns = [
        Turn(m.role, m.model_content, m.pk)
        for m in history
        if m.role in CHAT_ROLES and m.content and m.status != Message.Status.BLOCKED
    ]
    recalled: list[Recalled] = []
    facts: list[Fact] = []
    if query is not None:
        recalled = recall_turns(
            conversation_id=conversation_id,
            query=query,
            exclude_ids={m.pk for m in history} | set(exclude_ids),
            limit=int(settings.CONTEXT_RECALL_LIMIT),
            threshold=float(settings.CONTEXT_RECALL_THRESHOLD),
        )
        if use_memory:
            facts = relevant_facts(
                user_id=user_id,
                query=query,
                limit=int(settings.CONTEXT_FACTS_LIMIT),
                threshold=float(settings.CONTEXT_FACTS_THRESHOLD),
            )
    return ContextInputs(
        system_prompt=system_prompt,
        user_message=user_message,
        history=turns,
        summary=summary.text if summary else "",
        recalled=recalled,
        facts=facts,
        recent_turns=int(settings.CONTEXT_RECENT_TURNS),
    )
