"""Writes for memory: embeddings, rolling summaries, user facts, and the user's own edits.

Every background operation is idempotent: it re-reads its rows, does nothing when the work is
already done, and commits its result together with the watermark or unique key that marks the
work as done, so a retried or duplicated task cannot apply twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from pgvector.django import CosineDistance

from chatproject.llm import embeddings, gateway
from chatproject.llm.prompts import facts_prompt, parse_facts, summary_prompt
from conversations.models import Conversation, Message, UsageRecord
from conversations.selectors import branch_tail
from memory.models import ConversationSummary, MemoryProfile, UserFact
from memory.selectors import CHAT_ROLES, summary_for_branch

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from chatproject.llm.types import Usage

EMBEDDABLE_STATUSES = (Message.Status.COMPLETE, Message.Status.STOPPED, Message.Status.INTERRUPTED)


class MemoryError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- embeddings -------------------------------------------------------------------------------


def message_embed(*, message_id: int) -> bool:
    """Store the embedding of a finished message; False when there was nothing to do."""
    message = (
        Message.objects.filter(pk=message_id)
        .only("content", "redacted_content", "status", "embedding_model", "role")
        .first()
    )
    if message is None or message.status not in EMBEDDABLE_STATUSES or not message.content.strip():
        return False
    name = embeddings.model_name()
    if message.embedding_model == name:
        return False
    vector = embeddings.embed_one(message.model_content)
    updated = (
        Message.objects.filter(pk=message_id)
        .exclude(embedding_model=name)
        .update(embedding=vector, embedding_model=name)
    )
    return updated == 1


EMBED_BATCH = 32


def conversation_embed(*, conversation_id: str) -> int:
    """Embed every finished message of a conversation not yet embedded by the current model, in
    batches (an imported or copied conversation arrives with none); returns how many were stored."""
    name = embeddings.model_name()
    pending = list(
        Message.objects.filter(
            conversation_id=conversation_id, status__in=EMBEDDABLE_STATUSES, role__in=CHAT_ROLES
        )
        .exclude(embedding_model=name)
        .exclude(content="")
        .only("content", "redacted_content")
        .order_by("id")
    )
    stored = 0
    for start in range(0, len(pending), EMBED_BATCH):
        batch = pending[start : start + EMBED_BATCH]
        vectors = embeddings.embed([message.model_content for message in batch])
        for message, vector in zip(batch, vectors, strict=True):
            stored += (
                Message.objects.filter(pk=message.pk)
                .exclude(embedding_model=name)
                .update(embedding=vector, embedding_model=name)
            )
    return stored


# --- summaries --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SummaryPlan:
    previous: ConversationSummary | None
    covered: list[Message]
    remaining_tokens: int


def _summary_plan(conversation: Conversation) -> SummaryPlan | None:
    """Which turns the next summary covers, or None while too few tokens lie outside the window."""
    if conversation.active_leaf_id is None:
        return None
    # The summary of this branch: one written on a branch the user left covers turns not on this one.
    previous = summary_for_branch(conversation_id=conversation.pk, leaf_id=conversation.active_leaf_id)
    tail = branch_tail(
        leaf_id=conversation.active_leaf_id,
        limit=int(settings.SUMMARY_SCAN_LIMIT),
        after_id=previous.through_message_id if previous else None,
    )
    window = int(settings.CONTEXT_RECENT_TURNS) * 2
    outside = [m for m in tail[: max(len(tail) - window, 0)] if m.status != Message.Status.STREAMING]
    turns = [m for m in outside if m.role in CHAT_ROLES and m.content]
    costs = [gateway.count_text_tokens(m.model_content, conversation.model or None) for m in turns]
    if sum(costs) < int(settings.SUMMARY_TRIGGER_TOKENS):
        return None
    covered: list[Message] = []
    used = 0
    for message, cost in zip(turns, costs, strict=True):
        if covered and used + cost > int(settings.SUMMARY_MAX_INPUT_TOKENS):
            break
        covered.append(message)
        used += cost
    return SummaryPlan(previous, covered, sum(costs) - used)


def summary_refresh(*, conversation_id: str | UUID) -> ConversationSummary | None:
    """Extend the rolling summary of the conversation's active branch when enough of its turns
    left the recent window."""
    conversation = Conversation.objects.filter(pk=conversation_id, deleted_at__isnull=True).first()
    if conversation is None:
        return None
    plan = _summary_plan(conversation)
    if plan is None:
        return None
    previous_text = plan.previous.text if plan.previous else ""
    prompt = summary_prompt(
        previous_text, [(m.role, m.model_content) for m in plan.covered], max_words=int(settings.SUMMARY_MAX_WORDS)
    )
    text, usage = async_to_sync(gateway.complete)(
        prompt, model=_background_model(), purpose="summary", user=str(conversation.owner_id)
    )
    _record_usage(conversation.owner_id, UsageRecord.Purpose.SUMMARY, usage, conversation_id=conversation.pk)
    try:
        summary, _ = ConversationSummary.objects.get_or_create(
            conversation=conversation,
            through_message=plan.covered[-1],
            defaults={
                "text": text.strip(),
                "token_count": gateway.count_text_tokens(text),
                "covered_messages": (plan.previous.covered_messages if plan.previous else 0) + len(plan.covered),
                "model": gateway.model_name(_background_model()),
            },
        )
    except IntegrityError:  # another worker wrote the same boundary first: its row is as good
        summary = ConversationSummary.objects.get(conversation=conversation, through_message=plan.covered[-1])
    return summary


def summary_due(*, conversation_id: str | UUID) -> bool:
    conversation = Conversation.objects.filter(pk=conversation_id, deleted_at__isnull=True).first()
    return conversation is not None and _summary_plan(conversation) is not None


# --- facts ------------------------------------------------------------------------------------


def _profile(user_id: int) -> MemoryProfile:
    profile, _ = MemoryProfile.objects.get_or_create(user_id=user_id)
    return profile


def _latest_user_message_id(user_id: int) -> int:
    latest = Message.objects.filter(conversation__owner_id=user_id, role=Message.Role.USER).aggregate(top=Max("id"))
    return int(latest["top"] or 0)


def _pending_user_messages(user_id: int, after_id: int) -> list[Message]:
    return list(
        Message.objects.filter(
            conversation__owner_id=user_id,
            conversation__deleted_at__isnull=True,
            conversation__temporary=False,
            role=Message.Role.USER,
            pk__gt=after_id,
        )
        .exclude(status=Message.Status.BLOCKED)
        .only("id", "content", "redacted_content")
        .order_by("id")[: int(settings.FACTS_BATCH)]
    )


def facts_extract(*, user_id: int) -> list[UserFact]:
    """Read the user's new messages once, and add, confirm or replace facts about them."""
    profile = _profile(user_id)
    if not profile.enabled:
        # Messages written while memory is off are never read for facts, not even later.
        MemoryProfile.objects.filter(pk=profile.pk).update(facts_through_message_id=_latest_user_message_id(user_id))
        return []
    watermark = profile.facts_through_message_id
    messages = _pending_user_messages(user_id, watermark)
    if not messages:
        return []
    existing = [fact.text for fact in UserFact.objects.filter(user_id=user_id, status=UserFact.Status.ACTIVE)]
    prompt = facts_prompt(existing, [(m.pk, m.model_content) for m in messages])
    reply, usage = async_to_sync(gateway.complete)(
        prompt, model=_background_model(), purpose="facts", user=str(user_id)
    )
    _record_usage(user_id, UsageRecord.Purpose.FACTS, usage)
    extracted = parse_facts(reply)
    vectors = embeddings.embed([fact.fact for fact in extracted]) if extracted else []
    known_ids = {m.pk for m in messages}
    changed: list[UserFact] = []
    with transaction.atomic():
        locked = MemoryProfile.objects.select_for_update().get(pk=profile.pk)
        if locked.facts_through_message_id != watermark or not locked.enabled:
            return []  # another run already took these messages, or memory was turned off meanwhile
        for fact, vector in zip(extracted, vectors, strict=True):
            source_id = fact.message_id if fact.message_id in known_ids else messages[-1].pk
            stored = _store_fact(user_id, fact.key, fact.fact, vector, source_id)
            if stored is not None:
                changed.append(stored)
        locked.facts_through_message_id = messages[-1].pk
        locked.save(update_fields=["facts_through_message_id", "updated_at"])
    return changed


def _store_fact(user_id: int, key: str, text: str, vector: list[float], source_id: int) -> UserFact | None:
    """Add a fact, or update the one it restates (same key) or duplicates (near-identical)."""
    active = UserFact.objects.select_for_update().filter(user_id=user_id, status=UserFact.Status.ACTIVE)
    same_key = active.filter(key=key).first() if key else None
    if same_key is not None:
        if _normalised(same_key.text) == _normalised(text):
            return None
        same_key.previous_text = same_key.text
        same_key.text = text
        same_key.embedding = vector
        same_key.embedding_model = embeddings.model_name()
        same_key.source_message_id = source_id
        same_key.edited_by_user = False
        same_key.save()
        return same_key
    nearest = active.annotate(distance=CosineDistance("embedding", vector)).order_by("distance").first()
    if nearest is not None and 1.0 - float(nearest.distance) >= float(settings.FACTS_DEDUP_THRESHOLD):
        return None
    return UserFact.objects.create(
        user_id=user_id,
        key=key,
        text=text,
        embedding=vector,
        embedding_model=embeddings.model_name(),
        source_message_id=source_id,
    )


def _normalised(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".")


def _background_model() -> str | None:
    return settings.LLM_BACKGROUND_MODEL or None


def _record_usage(
    user_id: int | None, purpose: str, usage: Usage, *, conversation_id: str | UUID | None = None
) -> None:
    UsageRecord.objects.create(
        user_id=user_id,
        conversation_id=conversation_id,
        purpose=purpose,
        model=gateway.model_name(_background_model()),
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost=usage.cost,
    )


# --- the user's own controls --------------------------------------------------------------------


def _own_fact(user: User, fact_id: int) -> UserFact:
    fact = UserFact.objects.filter(pk=fact_id, user=user, status=UserFact.Status.ACTIVE).first()
    if fact is None:
        raise MemoryError("not_found", "That memory does not exist.")
    return fact


def fact_update(*, user: User, fact_id: int, text: str) -> UserFact:
    cleaned = " ".join(text.split())
    if not cleaned:
        raise MemoryError("empty", "A memory cannot be empty; delete it instead.")
    if len(cleaned) > 500:
        raise MemoryError("too_long", "Keep a memory under 500 characters.")
    fact = _own_fact(user, fact_id)
    fact.previous_text = fact.text
    fact.text = cleaned
    fact.embedding = embeddings.embed_one(cleaned)
    fact.embedding_model = embeddings.model_name()
    fact.edited_by_user = True
    fact.save()
    return fact


def fact_delete(*, user: User, fact_id: int) -> None:
    """Deleting a memory erases its text too: a deleted fact must not linger in the database."""
    fact = _own_fact(user, fact_id)
    fact.delete()


def facts_delete_all(*, user: User) -> int:
    """Erase every fact of the user, proposed ones too; returns how many the user could see."""
    visible = UserFact.objects.filter(user=user, status=UserFact.Status.ACTIVE).count()
    UserFact.objects.filter(user=user).delete()
    return visible


def memory_set_enabled(*, user: User, enabled: bool) -> MemoryProfile:
    with transaction.atomic():
        profile = MemoryProfile.objects.select_for_update().get(pk=_profile(user.pk).pk)
        if enabled and not profile.enabled:
            # What was said while memory was off stays unread.
            profile.facts_through_message_id = _latest_user_message_id(user.pk)
        profile.enabled = enabled
        profile.save()
    return profile
