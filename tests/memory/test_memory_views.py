"""The memory page (facts, their sources, edit, delete, the switch) and memory on the chat page
(the conversation's summary, the context gauge under each reply, message anchors)."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from conversations.models import Conversation, Message
from memory.models import ConversationSummary, MemoryProfile, UserFact
from memory.views import compact_tokens, context_gauge
from tests.factories import conversation_with_turns

pytestmark = pytest.mark.django_db

JSON = {"Accept": "application/json"}

REPORT: dict[str, Any] = {
    "window": 8192,
    "budget": 7168,
    "tokens_used": 2104,
    "tiers": {"system": 180, "user": 40, "recent": 1204, "summary": 310, "recalled": 240, "facts": 60, "older": 0},
    "included": {"recent": 10, "summary": 1, "recalled": 2, "facts": 3, "older": 0},
    "dropped": {"recent": 0, "summary": 0, "recalled": 0, "facts": 0, "older": 12},
    "truncated_user_message": False,
}


def page(client: Client, url: str = "/memory/") -> str:
    response = client.get(url)
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def fact_for(user: User, text: str, source: Message | None = None, key: str = "") -> UserFact:
    return UserFact.objects.create(user=user, text=text, key=key, source_message=source)


@pytest.fixture
def signed_in(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


# --- the page -------------------------------------------------------------------------------------


def test_the_memory_page_and_its_actions_need_a_login(client: Client, user: User) -> None:
    fact = fact_for(user, "The user likes tea.")
    response = client.get("/memory/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    for url in (f"/memory/facts/{fact.pk}/edit/", f"/memory/facts/{fact.pk}/delete/", "/memory/facts/delete-all/"):
        response = client.post(url, {"text": "changed", "confirm": "yes"})
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    response = client.post("/memory/toggle/", {"enabled": "false"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    fact.refresh_from_db()
    assert fact.text == "The user likes tea."
    assert not MemoryProfile.objects.filter(user=user, enabled=False).exists()


def test_the_page_lists_active_facts_with_links_to_where_they_were_said(
    signed_in: Client, user: User, other_user: User
) -> None:
    conversation, messages = conversation_with_turns(user, [("I live in Lisbon.", "Noted."), ("I'm vegan.", "Ok.")])
    lisbon = fact_for(user, "The user lives in Lisbon.", messages[0], key="location")
    vegan = fact_for(user, "The user is vegan.", messages[2], key="diet")
    orphan = fact_for(user, "The user has a cat.")  # its message was deleted (SET_NULL)
    gone, gone_messages = conversation_with_turns(user, [("I play chess.", "Nice.")], title="Old")
    Conversation.objects.filter(pk=gone.pk).update(deleted_at=timezone.now())
    chess = fact_for(user, "The user plays chess.", gone_messages[0])
    UserFact.objects.create(user=user, text="An old, replaced fact.", status=UserFact.Status.DELETED)
    fact_for(other_user, "Mallory's secret fact.")

    body = page(signed_in)

    assert "The user lives in Lisbon." in body and "The user is vegan." in body and "The user has a cat." in body
    assert "An old, replaced fact." not in body and "Mallory's secret fact." not in body
    assert f'href="/c/{conversation.pk}/#m-{messages[0].pk}"' in body
    assert f'href="/c/{conversation.pk}/#m-{messages[2].pk}"' in body
    assert "Said in “Chat”" in body
    for fact in (orphan, chess):
        item = re.search(rf'id="fact-{fact.pk}".*?</li>', body, re.S)
        assert item is not None and "Source deleted" in item.group(0) and "/c/" not in item.group(0)
    assert f"/c/{gone.pk}/" not in body, "a deleted conversation is not offered as a source"
    assert body.count('data-testid="fact"') == 4
    assert "Learned just now" in body
    assert 'aria-checked="true"' in body and "Memory is on" in body
    assert "nothing new is remembered and nothing remembered is used" in body
    for fact in (lisbon, vegan):
        assert f'action="/memory/facts/{fact.pk}/edit/"' in body and f'action="/memory/facts/{fact.pk}/delete/"' in body


def test_the_page_says_when_nothing_is_remembered(signed_in: Client) -> None:
    body = page(signed_in)
    assert "Nothing remembered yet" in body
    assert 'data-testid="delete-all"' not in body


def test_the_page_answers_json(signed_in: Client, user: User) -> None:
    _, messages = conversation_with_turns(user, [("I live in Lisbon.", "Noted.")])
    fact = fact_for(user, "The user lives in Lisbon.", messages[0])
    payload = signed_in.get("/memory/", headers=JSON).json()
    assert payload["enabled"] is True
    assert [(f["id"], f["text"]) for f in payload["facts"]] == [(fact.pk, "The user lives in Lisbon.")]
    assert payload["facts"][0]["source_url"].endswith(f"#m-{messages[0].pk}")


# --- edit -------------------------------------------------------------------------------------------


def test_editing_a_fact_saves_it_and_redirects_back_with_a_notice(signed_in: Client, user: User) -> None:
    fact = fact_for(user, "The user lives in Lisbon.")
    response = signed_in.post(f"/memory/facts/{fact.pk}/edit/", {"text": "  The user lives in   Porto. "})
    assert response.status_code == 302 and response["Location"] == f"/memory/#fact-{fact.pk}"
    fact.refresh_from_db()
    assert fact.text == "The user lives in Porto."
    assert fact.previous_text == "The user lives in Lisbon."
    assert fact.edited_by_user and fact.embedding is not None
    body = page(signed_in)
    assert "Memory updated." in body and "The user lives in Porto." in body and "edited by you just now" in body


def test_an_empty_edit_is_refused_with_the_reason_shown(signed_in: Client, user: User) -> None:
    fact = fact_for(user, "The user lives in Lisbon.")
    response = signed_in.post(f"/memory/facts/{fact.pk}/edit/", {"text": "   "})
    assert response.status_code == 400
    body = html.unescape(response.content.decode())
    assert "A memory cannot be empty; delete it instead." in body
    assert re.search(rf'class="fact is-editing" id="fact-{fact.pk}"', body), "the form stays open"
    fact.refresh_from_db()
    assert fact.text == "The user lives in Lisbon." and not fact.edited_by_user

    response = signed_in.post(f"/memory/facts/{fact.pk}/edit/", {"text": "x" * 501}, headers=JSON)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_long"


def test_another_users_fact_is_not_found_and_not_changed(signed_in: Client, other_user: User) -> None:
    theirs = fact_for(other_user, "Mallory lives in Berlin.")
    assert signed_in.post(f"/memory/facts/{theirs.pk}/edit/", {"text": "Hacked."}).status_code == 404
    assert signed_in.post(f"/memory/facts/{theirs.pk}/delete/").status_code == 404
    response = signed_in.post(f"/memory/facts/{theirs.pk}/edit/", {"text": "Hacked."}, headers=JSON)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert signed_in.post("/memory/facts/999999/delete/", headers=JSON).status_code == 404
    theirs.refresh_from_db()
    assert theirs.text == "Mallory lives in Berlin." and not theirs.edited_by_user


def test_editing_answers_json(signed_in: Client, user: User) -> None:
    fact = fact_for(user, "The user lives in Lisbon.")
    response = signed_in.post(f"/memory/facts/{fact.pk}/edit/", {"text": "The user lives in Faro."}, headers=JSON)
    assert response.status_code == 200
    assert response.json()["fact"]["text"] == "The user lives in Faro."


# --- delete -----------------------------------------------------------------------------------------


def test_deleting_a_fact_removes_it(signed_in: Client, user: User) -> None:
    keep = fact_for(user, "The user is vegan.")
    fact = fact_for(user, "The user lives in Lisbon.")
    response = signed_in.post(f"/memory/facts/{fact.pk}/delete/")
    assert response.status_code == 302 and response["Location"] == "/memory/"
    assert not UserFact.objects.filter(pk=fact.pk).exists()
    assert UserFact.objects.filter(pk=keep.pk).exists()
    body = page(signed_in)
    assert "Memory deleted." in body and "The user lives in Lisbon." not in body

    response = signed_in.post(f"/memory/facts/{keep.pk}/delete/", headers=JSON)
    assert response.json() == {"deleted": keep.pk}


def test_deleting_all_facts_asks_first_and_spares_other_users(signed_in: Client, user: User, other_user: User) -> None:
    for text in ("The user lives in Lisbon.", "The user is vegan.", "The user has a cat."):
        fact_for(user, text)
    theirs = fact_for(other_user, "Mallory lives in Berlin.")
    body = page(signed_in)
    assert "Delete all 3 memories?" in body and 'name="confirm" value="yes"' in body

    response = signed_in.post("/memory/facts/delete-all/")
    assert response.status_code == 302
    assert UserFact.objects.filter(user=user).count() == 3, "nothing is deleted without the confirmation"
    assert "confirm to delete all memories" in page(signed_in)
    assert signed_in.post("/memory/facts/delete-all/", headers=JSON).status_code == 400

    response = signed_in.post("/memory/facts/delete-all/", {"confirm": "yes"})
    assert response.status_code == 302 and response["Location"] == "/memory/"
    assert not UserFact.objects.filter(user=user).exists()
    assert UserFact.objects.filter(pk=theirs.pk).exists()
    body = page(signed_in)
    assert "Deleted all 3 memories." in body and "Nothing remembered yet" in body


# --- the switch -------------------------------------------------------------------------------------


def test_turning_memory_off_and_on(signed_in: Client, user: User) -> None:
    fact_for(user, "The user lives in Lisbon.")
    response = signed_in.post("/memory/toggle/", {"enabled": "false"})
    assert response.status_code == 302 and response["Location"] == "/memory/"
    assert MemoryProfile.objects.get(user=user).enabled is False
    body = page(signed_in)
    assert "Memory is off" in body and 'aria-checked="false"' in body and 'name="enabled" value="true"' in body
    assert "Nothing new will be remembered" in body
    assert "these are kept, but not used" in body

    response = signed_in.post("/memory/toggle/", {"enabled": "true"})
    assert response.status_code == 302
    assert MemoryProfile.objects.get(user=user).enabled is True
    body = page(signed_in)
    assert "Memory is on" in body and 'aria-checked="true"' in body

    assert signed_in.post("/memory/toggle/", {"enabled": "off"}, headers=JSON).json() == {"enabled": False}
    assert signed_in.post("/memory/toggle/", {"enabled": "maybe"}, headers=JSON).status_code == 400
    assert MemoryProfile.objects.get(user=user).enabled is False


def test_writes_need_a_csrf_token(user: User) -> None:
    fact = fact_for(user, "The user lives in Lisbon.")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(f"/memory/facts/{fact.pk}/delete/").status_code == 403
    assert client.post("/memory/toggle/", {"enabled": "false"}).status_code == 403
    assert UserFact.objects.filter(pk=fact.pk).exists()
    assert 'name="csrfmiddlewaretoken"' in client.get("/memory/").content.decode()


def test_memory_is_linked_from_the_chat_page(signed_in: Client) -> None:
    body = page(signed_in, "/")
    assert 'href="/memory/"' in body and 'data-testid="memory-link"' in body


# --- the chat page: summary, gauge, anchors ----------------------------------------------------------


def test_the_chat_page_shows_the_conversations_summary(signed_in: Client, user: User) -> None:
    conversation, messages = conversation_with_turns(user, [("Plan a trip to Lisbon.", "Day one: Alfama.")] * 3)
    body = page(signed_in, f"/c/{conversation.pk}/")
    assert "No summary yet — the conversation is still short." in body

    ConversationSummary.objects.create(
        conversation=conversation,
        through_message=messages[1],
        text="The user is planning a trip to Lisbon; day one covers Alfama.",
        covered_messages=2,
    )
    ConversationSummary.objects.create(
        conversation=conversation,
        through_message=messages[3],
        text="The user is planning three days in Lisbon: Alfama, Belém and Sintra.",
        covered_messages=4,
    )
    body = page(signed_in, f"/c/{conversation.pk}/")
    assert "The user is planning three days in Lisbon: Alfama, Belém and Sintra." in body
    assert "day one covers Alfama" not in body, "only the current summary is shown"
    assert "Covers 4 earlier messages" in body
    assert "No summary yet" not in body


def test_each_reply_shows_its_context_gauge_and_each_message_an_anchor(signed_in: Client, user: User) -> None:
    conversation, messages = conversation_with_turns(user, [("First?", "One."), ("Second?", "Two.")])
    Message.objects.filter(pk=messages[3].pk).update(context_report=REPORT, completion_tokens=321)
    body = page(signed_in, f"/c/{conversation.pk}/")

    for message in messages:
        assert f'id="m-{message.pk}"' in body
    assert body.count('data-testid="context-gauge"') == 1, "a reply without a report shows no gauge"
    gauge = re.search(rf'id="m-{messages[3].pk}".*?</article>', body, re.S)
    assert gauge is not None
    text = gauge.group(0)
    assert "2.1k / 8k tokens" in text
    assert "recent 1,204 · summary 310 · recalled 2 turns · facts 3 · dropped 12 older turns" in text
    assert "2,104 / 8,192" in text
    assert "Left out to fit: 12 older turns." in text
    assert "1,024 tokens kept free for the reply, which used 321." in text
    first_reply = re.search(rf'id="m-{messages[1].pk}".*?</article>', body, re.S)
    assert first_reply is not None and "context-gauge" not in first_reply.group(0)


def test_the_gauge_in_numbers() -> None:
    assert context_gauge(None) is None and context_gauge({}) is None
    gauge = context_gauge(REPORT)
    assert gauge is not None
    assert (gauge["used_label"], gauge["window_label"], gauge["level"]) == ("2.1k", "8k", "ok")
    assert [s["key"] for s in gauge["segments"]] == ["system", "user", "recent", "summary", "recalled", "facts"]
    assert gauge["segments"][2]["width"] == "14.70%"
    full = context_gauge({**REPORT, "tokens_used": 7000, "dropped": {"summary": 1, "facts": 1}})
    assert full is not None and full["level"] == "full" and full["dropped"] == ["the summary", "1 fact"]
    assert [compact_tokens(n) for n in (0, 999, 2104, 8192, 10_000, 128_000, 131_072, 1_048_576, 2_000_000, 3072)] == [
        "0",
        "999",
        "2.1k",
        "8k",
        "10k",
        "128k",
        "128k",
        "1M",
        "2M",
        "3.1k",
    ]
