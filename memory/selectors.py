"""Reads for memory: the current summary, recalled turns, relevant facts, and the context inputs.

Retrieval runs on the HNSW indexes with pgvector's iterative scan, so a filter (this
conversation, this user) does not starve the index of candidates: without it an approximate
search over a million rows returns its 40 nearest overall and the filter keeps almost none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection

from conversations.models import Message
from memory.context import ContextInputs, Fact, Recalled, Turn
from memory.models import ConversationSummary, MemoryProfile, UserFact

CHAT_ROLES = (Message.Role.USER, Message.Role.ASSISTANT)


def memory_enabled(*, user_id: int) -> bool:
    enabled = MemoryProfile.objects.filter(user_id=user_id).values_list("enabled", flat=True).first()
    return True if enabled is None else bool(enabled)


def current_summary(*, conversation_id: str | UUID) -> ConversationSummary | None:
    """The newest summary of any branch; `summary_for_branch` is the one a branch may use."""
    return ConversationSummary.objects.filter(conversation_id=conversation_id).order_by("-through_message_id").first()


# The chains (`conversations_message.segment`, see migration 0010_message_segments) on the path from
# the root to %(leaf)s, each with the last id of the chain on that path: a message is an ancestor of
# the leaf (or the leaf) when its chain is listed and its id is at most that chain's cutoff. The walk
# takes one step per fork on the path, not one per message.
_SEGMENTS_CTE = """
segs(segment, cutoff) AS (
    SELECT m.segment, m.id FROM conversations_message m WHERE m.id = %(leaf)s
    UNION ALL
    SELECT p.segment, p.id
    FROM segs JOIN conversations_message h ON h.id = segs.segment
    JOIN conversations_message p ON p.id = h.parent_id
)"""
# A correlated scalar subquery, not EXISTS: the planner keeps it a per-row filter, so the recall's
# HNSW index scan stays an ordered walk instead of becoming a join.
_ON_BRANCH = "{alias}.id <= (SELECT max(cutoff) FROM segs WHERE segs.segment = {alias}.segment)"

_BRANCH_SUMMARY_SQL = f"""
WITH RECURSIVE {_SEGMENTS_CTE}
SELECT s.* FROM memory_conversationsummary s JOIN conversations_message b ON b.id = s.through_message_id
WHERE s.conversation_id = %(conversation)s AND {_ON_BRANCH.format(alias="b")}
ORDER BY s.through_message_id DESC LIMIT 1
"""


def summary_for_branch(*, conversation_id: str | UUID, leaf_id: int | None) -> ConversationSummary | None:
    """The newest summary whose last covered message is on the branch ending at leaf_id: a summary
    written on another branch covers turns this branch never had, so it is ignored."""
    if leaf_id is None:
        return None
    rows = list(
        ConversationSummary.objects.raw(_BRANCH_SUMMARY_SQL, {"leaf": leaf_id, "conversation": str(conversation_id)})
    )
    return rows[0] if rows else None


def facts_for_user(*, user_id: int) -> list[UserFact]:
    return list(
        UserFact.objects.filter(user_id=user_id, status=UserFact.Status.ACTIVE)
        .select_related("source_message")
        .defer("embedding", "source_message__embedding")
        .order_by("-updated_at")
    )


# One statement for everything a turn's prompt needs: the memory switch, the summary, the branch
# tail after the summary's boundary, recalled turns and facts. A turn pays one round trip and one
# plan instead of five ORM queries (each costs more in Python than in PostgreSQL at this size).
_CONTEXT_SQL = """
WITH RECURSIVE{segments},
summary AS (
    SELECT s.text, s.through_message_id
    FROM memory_conversationsummary s JOIN conversations_message b ON b.id = s.through_message_id
    WHERE s.conversation_id = %(conversation)s AND {boundary_on_branch}
    ORDER BY s.through_message_id DESC LIMIT 1
),
path(id, parent_id, depth) AS (
    SELECT id, parent_id, 0 FROM conversations_message WHERE id = %(leaf)s
    UNION ALL
    SELECT m.id, m.parent_id, p.depth + 1
    FROM conversations_message m JOIN path p ON m.id = p.parent_id
    WHERE p.depth + 1 < %(history_limit)s
      AND m.id <> COALESCE((SELECT through_message_id FROM summary), 0)
),
memory_on AS (
    SELECT %(memory_allowed)s AND COALESCE(
        (SELECT enabled FROM memory_memoryprofile WHERE user_id = %(user)s), true
    ) AS enabled
){recall_ctes}
SELECT 'summary' AS kind, NULL::bigint AS id, ''::varchar AS role, text AS content,
       ''::text AS redacted, 0::float8 AS distance, 0 AS depth
FROM summary
UNION ALL
SELECT 'turn', m.id, m.role, m.content, m.redacted_content, 0, path.depth
FROM path JOIN conversations_message m ON m.id = path.id
WHERE m.role IN ('user', 'assistant') AND m.content <> '' AND m.status <> 'blocked'{recall_selects}
ORDER BY kind, depth DESC, distance
"""

# Older turns of this branch (ancestors only: never a sibling reply or an edited-away message) and
# the user's facts nearest the query. The threshold is applied
# in Python on the few rows returned: inside the query it would make the index walk look for rows
# it can never find (a question unrelated to anything said earlier would scan the whole graph).
_RECALL_CTES = """,
recalled AS (
    SELECT m.id, m.embedding <=> %(query)s::vector AS distance
    FROM conversations_message m
    WHERE m.conversation_id = %(conversation)s AND m.role IN ('user', 'assistant')
      AND m.embedding IS NOT NULL AND m.status <> 'blocked'
      AND m.id <> ALL(%(exclude)s) AND m.id NOT IN (SELECT id FROM path)
      AND {recalled_on_branch}
    ORDER BY distance LIMIT %(recall_limit)s
),
facts AS (
    SELECT f.id, f.text, f.embedding <=> %(query)s::vector AS distance
    FROM memory_userfact f
    WHERE f.user_id = %(user)s AND f.status = 'active' AND f.embedding IS NOT NULL
      AND (SELECT enabled FROM memory_on)
    ORDER BY distance LIMIT %(facts_limit)s
)"""
_RECALL_SELECTS = """
UNION ALL
SELECT 'recalled', r.id, m.role, m.content, m.redacted_content, r.distance, 0
FROM recalled r JOIN conversations_message m ON m.id = r.id
UNION ALL
SELECT 'fact', f.id, '', f.text, '', f.distance, 0 FROM facts f"""
_BRANCH_PARTS = {"segments": _SEGMENTS_CTE, "boundary_on_branch": _ON_BRANCH.format(alias="b")}
_CONTEXT_WITH_QUERY = _CONTEXT_SQL.format(
    recall_ctes=_RECALL_CTES.format(recalled_on_branch=_ON_BRANCH.format(alias="m")),
    recall_selects=_RECALL_SELECTS,
    **_BRANCH_PARTS,
)
_CONTEXT_WITHOUT_QUERY = _CONTEXT_SQL.format(recall_ctes="", recall_selects="", **_BRANCH_PARTS)


def _vector_literal(values: Sequence[float]) -> str:
    return "[" + ",".join(str(float(v)) for v in values) + "]"


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
    """Everything the builder may use for a reply to `user_message`, in one query.

    `use_memory` is False where the conversation must not use memory (a temporary chat); the
    user's own memory switch is read in the same query.
    """
    params: dict[str, Any] = {
        "conversation": str(conversation_id),
        "leaf": parent_id if parent_id is not None else 0,
        "history_limit": int(settings.CONTEXT_HISTORY_LIMIT) if parent_id is not None else 0,
        "memory_allowed": use_memory,
        "user": user_id,
    }
    if query is not None:
        params |= {
            "query": _vector_literal(query),
            "exclude": list(exclude_ids),
            "recall_limit": int(settings.CONTEXT_RECALL_LIMIT),
            "facts_limit": int(settings.CONTEXT_FACTS_LIMIT),
        }
    with connection.cursor() as cursor:
        cursor.execute(_CONTEXT_WITH_QUERY if query is not None else _CONTEXT_WITHOUT_QUERY, params)
        rows = cursor.fetchall()
    return _inputs_from_rows(rows, system_prompt=system_prompt, user_message=user_message)


def _inputs_from_rows(rows: Sequence[tuple[Any, ...]], *, system_prompt: str, user_message: str) -> ContextInputs:
    recall_threshold = float(settings.CONTEXT_RECALL_THRESHOLD)
    facts_threshold = float(settings.CONTEXT_FACTS_THRESHOLD)
    summary = ""
    history: list[Turn] = []
    recalled: list[Recalled] = []
    facts: list[Fact] = []
    for kind, pk, role, content, redacted, distance, _depth in rows:
        similarity = 1.0 - float(distance)
        if kind == "summary":
            summary = content
        elif kind == "turn":
            history.append(Turn(role, redacted or content, pk))
        elif kind == "recalled" and similarity >= recall_threshold:
            recalled.append(Recalled(Turn(role, redacted or content, pk), similarity))
        elif kind == "fact" and similarity >= facts_threshold:
            facts.append(Fact(content, similarity, pk))
    return ContextInputs(
        system_prompt=system_prompt,
        user_message=user_message,
        history=history,
        summary=summary,
        recalled=recalled,
        facts=facts,
        recent_turns=int(settings.CONTEXT_RECENT_TURNS),
    )
