"""Embeddings, summaries and facts as plain function calls, each run twice; retrieval; scoping."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from chatproject.llm import embeddings
from conversations.models import Message, UsageRecord
from memory import services
from memory.models import ConversationSummary, MemoryProfile, UserFact
from memory.selectors import context_inputs
from memory.tasks import embed_message, extract_facts, refresh_summary
from tests.factories import conversation_with_turns

pytestmark = pytest.mark.django_db


def chatter(count: int, words: int = 60) -> list[tuple[str, str]]:
    return [
        (f"Question {i}: " + "tell me more " * (words // 3), f"Answer {i}: " + "details " * words) for i in range(count)
    ]


def test_embedding_a_message_is_done_once(user: User) -> None:
    _, messages = conversation_with_turns(user, [("How do I bake bread?", "Flour, water, salt, yeast.")])
    answer = messages[1]
    assert embed_message(answer.pk) is True
    assert embed_message(answer.pk) is False, "a second run finds the work done"
    answer.refresh_from_db()
    assert answer.embedding is not None and len(answer.embedding) == 384
    assert answer.embedding_model == embeddings.model_name()


def test_a_message_embedded_by_another_model_is_embedded_again(user: User) -> None:
    _, messages = conversation_with_turns(user, [("hi", "hello")])
    Message.objects.filter(pk=messages[1].pk).update(embedding=[0.0] * 383 + [1.0], embedding_model="old-model")
    assert services.message_embed(message_id=messages[1].pk) is True
    messages[1].refresh_from_db()
    assert messages[1].embedding_model == embeddings.model_name()


def test_a_missing_or_streaming_message_is_skipped(user: User) -> None:
    assert embed_message(10**9) is False
    conversation, _ = conversation_with_turns(user, [("q", "a")])
    streaming = Message.objects.create(conversation=conversation, role="assistant", status="streaming", content="par")
    assert embed_message(streaming.pk) is False


def test_no_summary_while_the_old_turns_are_few(user: User, settings: Any) -> None:
    settings.SUMMARY_TRIGGER_TOKENS = 10_000
    conversation, _ = conversation_with_turns(user, chatter(12))
    assert refresh_summary(str(conversation.pk)) == 0
    assert not ConversationSummary.objects.exists()


def test_the_summary_covers_turns_outside_the_recent_window_once(user: User, settings: Any) -> None:
    settings.SUMMARY_TRIGGER_TOKENS = 300
    settings.CONTEXT_RECENT_TURNS = 5
    conversation, messages = conversation_with_turns(user, chatter(12))
    assert refresh_summary(str(conversation.pk)) == 1
    assert refresh_summary(str(conversation.pk)) == 0, "a second run has nothing new to cover"
    summary = ConversationSummary.objects.get()
    assert summary.through_message_id == messages[13].pk, "12 pairs minus the 5 recent leave 7 to summarize"
    assert "Question 0" in summary.text and "Question 6" in summary.text and "Question 7" not in summary.text
    assert summary.covered_messages == 14
    assert UsageRecord.objects.filter(purpose="summary").count() == 1


def test_the_summary_rolls_forward_from_the_previous_one(user: User, settings: Any) -> None:
    settings.SUMMARY_TRIGGER_TOKENS = 300
    conversation, messages = conversation_with_turns(user, chatter(12))
    refresh_summary(str(conversation.pk))
    parent = messages[-1]
    for i in range(12, 20):
        asked = Message.objects.create(
            conversation=conversation, parent=parent, role="user", content=f"Question {i}: " + "more " * 60
        )
        parent = Message.objects.create(
            conversation=conversation, parent=asked, role="assistant", content=f"Answer {i}"
        )
    conversation.active_leaf = parent
    conversation.save()
    refresh_summary(str(conversation.pk))
    newest = ConversationSummary.objects.order_by("-through_message_id").first()
    assert newest is not None and ConversationSummary.objects.count() == 2
    assert "Question 0" in newest.text, "the old summary is carried into the new one"
    assert "Question 14" in newest.text and "Question 15" not in newest.text


FACTS_TEXT = "Hi! My name is Ada and I live in Lisbon. I'm allergic to peanuts."


def test_facts_come_from_the_users_own_messages_with_their_source(user: User) -> None:
    _, messages = conversation_with_turns(user, [(FACTS_TEXT, "Nice to meet you, Ada.")])
    assert extract_facts(user.pk) == 3
    assert extract_facts(user.pk) == 0, "a second run reads nothing new"
    facts = {f.key: f for f in UserFact.objects.filter(user=user)}
    assert set(facts) == {"name", "location", "allergy:peanuts"}
    assert facts["location"].text == "The user lives in Lisbon."
    assert all(f.source_message_id == messages[0].pk for f in facts.values())
    assert all(f.embedding is not None and len(f.embedding) == 384 for f in facts.values())
    assert MemoryProfile.objects.get(user=user).facts_through_message_id == messages[0].pk


def test_a_contradicted_fact_is_updated_not_duplicated(user: User) -> None:
    conversation, messages = conversation_with_turns(user, [(FACTS_TEXT, "ok")])
    extract_facts(user.pk)
    moved = Message.objects.create(
        conversation=conversation, parent=messages[-1], role="user", content="Big news: I moved to Porto last week."
    )
    extract_facts(user.pk)
    location = UserFact.objects.get(user=user, key="location")
    assert (location.text, location.previous_text) == ("The user lives in Porto.", "The user lives in Lisbon.")
    assert location.source_message_id == moved.pk
    assert UserFact.objects.filter(user=user, status="active").count() == 3


def test_two_different_preferences_are_two_facts(user: User) -> None:
    conversation_with_turns(user, [("I prefer green tea in the morning.", "ok"), ("I prefer dark mode.", "ok")])
    extract_facts(user.pk)
    texts = set(UserFact.objects.filter(user=user, status="active").values_list("text", flat=True))
    assert texts == {"The user prefers green tea in the morning.", "The user prefers dark mode."}


def test_a_restated_fact_is_not_added_twice(user: User) -> None:
    conversation, messages = conversation_with_turns(user, [(FACTS_TEXT, "ok")])
    extract_facts(user.pk)
    Message.objects.create(
        conversation=conversation, parent=messages[-1], role="user", content="As I said, my name is Ada."
    )
    extract_facts(user.pk)
    assert UserFact.objects.filter(user=user, key="name").count() == 1


def test_memory_off_stores_nothing_and_injects_nothing(user: User) -> None:
    services.memory_set_enabled(user=user, enabled=False)
    conversation_with_turns(user, [(FACTS_TEXT, "ok")])
    assert extract_facts(user.pk) == 0
    assert not UserFact.objects.exists()
    services.memory_set_enabled(user=user, enabled=True)
    assert extract_facts(user.pk) == 0, "what was said while memory was off stays unread"
    assert not UserFact.objects.exists()


def test_temporary_chats_are_never_read_for_facts(user: User) -> None:
    conversation_with_turns(user, [(FACTS_TEXT, "ok")], temporary=True)
    assert extract_facts(user.pk) == 0


def plant_facts(owner: User) -> None:
    conversation_with_turns(owner, [(FACTS_TEXT, "ok")])
    extract_facts(owner.pk)


def test_one_users_facts_never_reach_another_users_context(user: User, other_user: User) -> None:
    plant_facts(user)
    conversation, messages = conversation_with_turns(other_user, [("hello", "hi")])
    query = embeddings.embed_one("What is my name and where do I live? Any allergies?")
    theirs = context_inputs(
        user_id=other_user.pk,
        conversation_id=conversation.pk,
        parent_id=messages[-1].pk,
        system_prompt="s",
        user_message="What is my name?",
        query=query,
        use_memory=True,
    )
    assert theirs.facts == []
    mine = context_inputs(
        user_id=user.pk,
        conversation_id=conversation.pk,
        parent_id=None,
        system_prompt="s",
        user_message="What is my name?",
        query=query,
        use_memory=True,
    )
    assert {f.text for f in mine.facts} >= {"The user's name is Ada.", "The user lives in Lisbon."}


def test_memory_off_injects_no_facts(user: User) -> None:
    plant_facts(user)
    conversation, messages = conversation_with_turns(user, [("hello", "hi")])
    inputs = context_inputs(
        user_id=user.pk,
        conversation_id=conversation.pk,
        parent_id=messages[-1].pk,
        system_prompt="s",
        user_message="What is my name?",
        query=embeddings.embed_one("What is my name?"),
        use_memory=False,
    )
    assert inputs.facts == []


TOPICS = [
    "the weather forecast for the weekend", "how to fix a flat bicycle tyre", "a recipe for tomato soup",
    "the rules of chess castling", "how photosynthesis works", "tips for a job interview",
    "the history of the Roman empire", "how to learn the guitar", "choosing a laptop for programming",
    "why the sky is blue", "how compound interest works", "training for a marathon",
]  # fmt: skip


def test_retrieval_finds_the_planted_turn_among_500(user: User) -> None:
    turns = [
        (f"Can you tell me about {TOPICS[i % len(TOPICS)]}? (part {i})", f"Sure, here is part {i}.") for i in range(250)
    ]
    turns[17] = ("Please remember: the wifi password at the cabin is tangerine-42.", "Noted, tangerine-42.")
    conversation, messages = conversation_with_turns(user, turns)
    vectors = embeddings.embed([m.content for m in messages])
    for message, vector in zip(messages, vectors, strict=True):
        message.embedding = vector
        message.embedding_model = embeddings.model_name()
    Message.objects.bulk_update(messages, ["embedding", "embedding_model"])

    inputs = context_inputs(
        user_id=user.pk,
        conversation_id=conversation.pk,
        parent_id=messages[-1].pk,
        system_prompt="s",
        user_message="What was the wifi password at the cabin?",
        query=embeddings.embed_one("What was the wifi password at the cabin?"),
        use_memory=True,
    )
    found = inputs.recalled
    assert messages[34].pk in [r.turn.message_id for r in found]
    assert found[0].turn.content.startswith("Please remember")
    # The branch tail is in the prompt already: recall never repeats it.
    assert not {r.turn.message_id for r in found} & {t.message_id for t in inputs.history}


def test_background_tasks_send_models_the_redacted_text(user: User, upstream_model: Any) -> None:
    _conversation, messages = conversation_with_turns(user, [("my email is ada@example.org, my name is Ada", "ok")])
    Message.objects.filter(pk=messages[0].pk).update(redacted_content="my email is [EMAIL], my name is Ada")
    extract_facts(user.pk)
    sent = str(upstream_model.last_request())
    assert "[EMAIL]" in sent and "ada@example.org" not in sent
