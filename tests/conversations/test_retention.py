"""Retention: the beat task as a plain function (and twice), moderation holds, what stays behind."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from conversations.models import Conversation, Message, UsageRecord
from conversations.services.retention import conversation_is_held, retention_apply
from conversations.tasks import apply_retention
from memory.models import ConversationSummary
from moderation.models import Flag
from tests.factories import conversation_with_turns

pytestmark = pytest.mark.django_db


def aged(conversation: Conversation, **age: float) -> Conversation:
    """Make a conversation's last activity lie in the past (auto_now sets it on every save)."""
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now() - timedelta(**age))
    conversation.refresh_from_db()
    return conversation


def chat(owner: User, title: str, *, temporary: bool = False) -> tuple[Conversation, list[Message]]:
    return conversation_with_turns(owner, [(f"{title} question", f"{title} answer")], title=title, temporary=temporary)


def open_flag(**where: Any) -> Flag:
    return Flag.objects.create(direction="output", category="toxicity", action="flagged", excerpt="masked ***", **where)


def remaining() -> set[str]:
    return set(Conversation.objects.values_list("title", flat=True))


@pytest.fixture
def retention(settings: Any) -> Any:
    settings.CHAT_RETENTION_DAYS = 30
    settings.TEMPORARY_CHAT_RETENTION_HOURS = 24
    return settings


def test_old_chats_go_and_held_ones_stay(user: User, retention: Any) -> None:
    old, old_messages = chat(user, "old")
    aged(old, days=31)
    recent, _ = chat(user, "recent")
    aged(recent, days=29)
    held_by_conversation, _ = chat(user, "held on conversation")
    aged(held_by_conversation, days=90)
    open_flag(conversation=held_by_conversation, user=user)
    held_by_message, held_messages = chat(user, "held on message")
    aged(held_by_message, days=90)
    open_flag(message=held_messages[1])
    ConversationSummary.objects.create(conversation=old, through_message=old_messages[1], text="summary")

    assert apply_retention() == 1

    assert remaining() == {"recent", "held on conversation", "held on message"}
    assert not Message.objects.filter(pk__in=[m.pk for m in old_messages]).exists()
    assert not ConversationSummary.objects.exists()
    assert apply_retention() == 0, "a second run finds nothing more"


def test_reviewing_the_flag_releases_the_hold(user: User, retention: Any) -> None:
    conversation, _ = chat(user, "held")
    aged(conversation, days=90)
    flag = open_flag(conversation=conversation)
    assert conversation_is_held(conversation_id=conversation.pk)
    assert retention_apply().held == 1 and remaining() == {"held"}

    Flag.objects.filter(pk=flag.pk).update(review_status=Flag.Review.DISMISSED)

    assert not conversation_is_held(conversation_id=conversation.pk)
    result = retention_apply()
    assert (result.purged, result.held) == (1, 0)
    assert remaining() == set()
    flag.refresh_from_db()
    assert flag.conversation_id is None and flag.excerpt == "masked ***", "the flag outlives it, unlinked"


def test_zero_days_keeps_everything_but_temporary_and_deleted_chats(user: User, settings: Any) -> None:
    settings.CHAT_RETENTION_DAYS = 0
    settings.TEMPORARY_CHAT_RETENTION_HOURS = 24
    ancient, _ = chat(user, "ancient")
    aged(ancient, days=3650)
    temporary_old, _ = chat(user, "temporary old", temporary=True)
    aged(temporary_old, hours=25)
    temporary_fresh, _ = chat(user, "temporary fresh", temporary=True)
    aged(temporary_fresh, hours=23)
    deleted, _ = chat(user, "deleted by owner")
    Conversation.objects.filter(pk=deleted.pk).update(deleted_at=timezone.now())

    assert apply_retention() == 2

    assert remaining() == {"ancient", "temporary fresh"}


def test_a_held_temporary_or_deleted_chat_is_kept_too(user: User, retention: Any) -> None:
    temporary, _ = chat(user, "temporary", temporary=True)
    aged(temporary, days=2)
    deleted, _ = chat(user, "deleted")
    Conversation.objects.filter(pk=deleted.pk).update(deleted_at=timezone.now())
    for conversation in (temporary, deleted):
        open_flag(conversation=conversation)

    assert apply_retention() == 0
    assert remaining() == {"temporary", "deleted"}


def test_the_apis_stateless_exchanges_keep_their_own_clock(user: User, retention: Any) -> None:
    hidden, _ = chat(user, "stateless", temporary=True)
    Conversation.objects.filter(pk=hidden.pk).update(deleted_at=timezone.now())
    aged(hidden, hours=30)
    assert apply_retention() == 0, "API_STATELESS_RETENTION_HOURS decides, through its own task"


def test_the_ledger_outlives_a_purged_chat(user: User, retention: Any) -> None:
    conversation, messages = chat(user, "billed")
    UsageRecord.objects.create(
        user=user, conversation=conversation, message=messages[1], model="m", prompt_tokens=7, cost=Decimal("0.5")
    )
    aged(conversation, days=31)

    assert apply_retention() == 1

    record = UsageRecord.objects.get()
    assert (record.user_id, record.conversation_id, record.message_id) == (user.pk, None, None)
    assert (record.prompt_tokens, record.cost) == (7, Decimal("0.5"))


def test_many_expired_chats_go_in_batches(user: User, retention: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from conversations.services import retention as retention_module

    monkeypatch.setattr(retention_module, "RETENTION_BATCH", 3)
    for i in range(7):
        aged(chat(user, f"old {i}")[0], days=40)
    held, _ = chat(user, "held")
    aged(held, days=40)
    open_flag(conversation=held)

    assert apply_retention() == 7
    assert remaining() == {"held"}


def test_the_beat_schedule_runs_retention(settings: Any) -> None:
    entries = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "conversations.tasks.apply_retention" in entries
