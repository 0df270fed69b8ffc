"""Rolling summaries on a branched conversation: a summary applies only to the branches that hold
the turns it covers, and a refresh summarises the branch the user is on."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from conversations.models import Conversation, Message
from memory.models import ConversationSummary
from memory.selectors import context_inputs, summary_for_branch
from memory.tasks import refresh_summary
from tests.factories import conversation_with_turns

pytestmark = pytest.mark.django_db


def chatter(label: str, count: int, first: int = 0) -> list[tuple[str, str]]:
    return [
        (f"{label} question {i}: " + "tell me more " * 20, f"{label} answer {i}: " + "details " * 60)
        for i in range(first, first + count)
    ]


def grow(conversation: Conversation, parent: Message, turns: list[tuple[str, str]]) -> list[Message]:
    made: list[Message] = []
    leaf: Message = parent
    for question, answer in turns:
        asked = Message.objects.create(conversation=conversation, parent=leaf, role="user", content=question)
        leaf = Message.objects.create(conversation=conversation, parent=asked, role="assistant", content=answer)
        made += [asked, leaf]
    return made


def inputs_at(conversation: Conversation, leaf: Message) -> Any:
    return context_inputs(
        user_id=conversation.owner_id,
        conversation_id=conversation.pk,
        parent_id=leaf.pk,
        system_prompt="s",
        user_message="next",
        query=None,
        use_memory=True,
    )


@pytest.fixture
def summarised(user: User, settings: Any) -> tuple[Conversation, list[Message], ConversationSummary]:
    """Twelve pairs on the first branch, summarised through the seventh pair (messages[13])."""
    settings.SUMMARY_TRIGGER_TOKENS = 300
    settings.CONTEXT_RECENT_TURNS = 5
    conversation, messages = conversation_with_turns(user, chatter("Trunk", 12))
    assert refresh_summary(str(conversation.pk)) == 1
    summary = ConversationSummary.objects.get()
    assert summary.through_message_id == messages[13].pk
    return conversation, messages, summary


def test_a_summary_of_another_branch_is_ignored(summarised: Any) -> None:
    conversation, messages, _ = summarised
    # An edit of the fourth question: the summary covers turns this branch never had.
    other = grow(conversation, messages[5], chatter("Edited", 1))

    inputs = inputs_at(conversation, other[-1])

    assert inputs.summary == ""
    assert [t.message_id for t in inputs.history] == [m.pk for m in messages[:6] + other]
    assert summary_for_branch(conversation_id=conversation.pk, leaf_id=other[-1].pk) is None


def test_a_summary_of_shared_turns_applies_to_both_branches(summarised: Any) -> None:
    conversation, messages, summary = summarised
    # A regenerated eleventh reply: everything the summary covers is on the new branch too.
    sibling = Message.objects.create(conversation=conversation, parent=messages[20], role="assistant", content="new")

    inputs = inputs_at(conversation, sibling)

    assert inputs.summary == summary.text
    assert [t.message_id for t in inputs.history] == [m.pk for m in messages[14:21]] + [sibling.pk]
    assert summary_for_branch(conversation_id=conversation.pk, leaf_id=sibling.pk) == summary


def test_a_refresh_summarises_the_branch_the_user_is_on(summarised: Any) -> None:
    conversation, messages, summary = summarised
    other = grow(conversation, messages[5], chatter("Edited", 12, first=3))
    conversation.active_leaf = other[-1]
    conversation.save()

    assert refresh_summary(str(conversation.pk)) == 1

    newest = summary_for_branch(conversation_id=conversation.pk, leaf_id=other[-1].pk)
    assert newest is not None and newest != summary
    assert newest.through_message_id in {m.pk for m in other}
    assert "Edited question 3" in newest.text and "Trunk question 0" in newest.text
    assert "Trunk question 3" not in newest.text, "nothing of the branch left behind"
    assert inputs_at(conversation, other[-1]).summary == newest.text
    assert inputs_at(conversation, messages[-1]).summary == summary.text, "the first branch keeps its own"


def test_the_page_shows_the_summary_of_the_branch_shown(summarised: Any, user: User) -> None:
    conversation, messages, summary = summarised
    other = grow(conversation, messages[5], chatter("Edited", 1))
    client = Client()
    client.force_login(user)

    assert summary.text[:40] in client.get(f"/c/{conversation.pk}/").content.decode()
    conversation.active_leaf = other[-1]
    conversation.save()
    page = client.get(f"/c/{conversation.pk}/").content.decode()
    assert summary.text[:40] not in page and 'data-testid="summary-empty"' in page
