"""Search across a user's own conversations: words, meaning, privacy, escaping, bad queries."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

from conversations.models import Conversation, Message
from conversations.search import MAX_QUERY_CHARS, SearchQueryInvalid, messages_search
from conversations.services.messages import conversation_delete
from memory.services import message_embed
from tests.factories import conversation_with_turns

pytestmark = pytest.mark.django_db

FILLER = [
    ("How should I plan a rail trip through Italy?", "Book the long legs early and keep the rest flexible."),
    ("What are good winter tyres for a small car?", "Check the tread depth and pick a well-rated brand."),
    ("Can you explain index funds?", "They track a market index with low fees, which compound over time."),
    ("My tomatoes on the balcony have yellow leaves.", "Water in the morning and check the drainage of the pots."),
]
PLANTED_DOG = "My dog Pixel barks at the mailman every single morning."
PLANTED_BREAD = "Feed the sourdough starter the night before baking and let the loaf proof overnight."


def _chat(owner: User, turns: Sequence[tuple[str, str]], *, title: str = "Chat") -> tuple[Conversation, list[Message]]:
    """A conversation whose messages are embedded, as the follow-up task leaves them."""
    conversation, messages = conversation_with_turns(owner, turns, title=title)
    for message in messages:
        assert message_embed(message_id=message.pk) is True
    return conversation, messages


@pytest.fixture
def planted(user: User) -> dict[str, Message]:
    _chat(user, FILLER, title="Assorted")
    _, dog = _chat(user, [(PLANTED_DOG, "Reward him for staying calm when the door bell rings.")], title="Pets")
    _, bread = _chat(user, [("How do I get a more sour loaf?", PLANTED_BREAD)], title="Baking")
    return {"dog": dog[0], "bread": bread[1]}


def _ids(user: User, query: str) -> list[int]:
    return [hit.message_id for hit in messages_search(user_id=user.pk, query=query)]


def test_it_finds_a_planted_message_by_its_words_and_marks_them(user: User, planted: dict[str, Message]) -> None:
    hits = messages_search(user_id=user.pk, query="sourdough starter")

    assert hits[0].message_id == planted["bread"].pk
    assert hits[0].by_words
    assert "<mark>sourdough</mark> <mark>starter</mark>" in hits[0].snippet
    assert hits[0].conversation_title == "Baking"


def test_stemming_finds_other_forms_of_a_word(user: User, planted: dict[str, Message]) -> None:
    hits = messages_search(user_id=user.pk, query="starters proofing")

    assert hits[0].message_id == planted["bread"].pk
    assert hits[0].by_words
    assert "<mark>starter</mark>" in hits[0].snippet and "<mark>proof</mark>" in hits[0].snippet


def test_it_finds_a_paraphrase_that_shares_no_word_by_meaning(user: User, planted: dict[str, Message]) -> None:
    query = "puppy noisy when the postman comes"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM conversations_message WHERE search_vector @@ websearch_to_tsquery('english', %s)",
            [query],
        )
        (word_matches,) = cursor.fetchone() or (None,)
    assert word_matches == 0  # nothing shares a word with the query: only meaning can find it

    hits = messages_search(user_id=user.pk, query=query)

    assert hits[0].message_id == planted["dog"].pk
    assert hits[0].by_meaning and not hits[0].by_words
    assert "<mark>" not in hits[0].snippet


def test_another_users_messages_are_never_returned(user: User, other_user: User, planted: dict[str, Message]) -> None:
    _, theirs = _chat(other_user, [(PLANTED_DOG, "Their reply about sourdough starter and the mailman.")])
    their_ids = {m.pk for m in theirs}

    for query in ("sourdough starter", "mailman", "puppy noisy when the postman comes", "dog"):
        mine = _ids(user, query)
        assert mine and not their_ids & set(mine), query
    assert set(_ids(other_user, "sourdough starter mailman")) <= their_ids
    assert planted["dog"].pk not in _ids(other_user, "Pixel barks")


def test_deleted_conversations_are_not_searched(user: User, planted: dict[str, Message]) -> None:
    assert planted["dog"].pk in _ids(user, "Pixel barks")

    conversation_delete(conversation=planted["dog"].conversation)

    assert planted["dog"].pk not in _ids(user, "Pixel barks")
    assert planted["dog"].pk not in _ids(user, "puppy noisy when the postman comes")


def test_system_prompts_and_blocked_replies_are_not_searched(user: User) -> None:
    conversation, messages = _chat(user, [("tell me about zeppelins", "Zeppelins are rigid airships.")])
    Message.objects.filter(pk=messages[1].pk).update(status=Message.Status.BLOCKED)
    Message.objects.create(conversation=conversation, role="system", content="zeppelins system prompt")

    assert _ids(user, "zeppelins") == [messages[0].pk]


def test_highlighting_escapes_the_message_and_keeps_only_the_marks(user: User) -> None:
    content = "Why does <script>alert('x')</script> run? Also List<String> & \ue000fake\ue001 marks."
    _, messages = _chat(user, [(content, "Because the browser executes it.")])

    (hit,) = [h for h in messages_search(user_id=user.pk, query="script string") if h.message_id == messages[0].pk]

    assert "<script" not in hit.snippet and "</script" not in hit.snippet
    assert "&lt;<mark>script</mark>&gt;alert('x')&lt;/script&gt;" in hit.snippet
    assert "List&lt;<mark>String</mark>&gt; &amp;" in hit.snippet
    # A message cannot fake a mark: only the query's matches are marked.
    assert hit.snippet.count("<mark>") == hit.snippet.count("</mark>") == 2
    assert "\ue000" not in hit.snippet


def test_the_page_and_the_json_show_the_escaped_snippet_and_a_link_into_the_message(
    user: User, planted: dict[str, Message]
) -> None:
    _, messages = _chat(user, [("A sourdough blog asks: is <img src=x onerror=alert(1)> safe?", "No.")])
    client = Client()
    client.force_login(user)

    page = client.get("/search/", {"q": "sourdough"})
    body = page.content.decode()
    data = client.get("/search.json", {"q": "sourdough"}).json()

    assert page.status_code == 200
    assert "<img" not in body and "&lt;img src=x onerror=alert(1)&gt;" in body
    link = f"/c/{planted['bread'].conversation_id}/?m={planted['bread'].pk}#m-{planted['bread'].pk}"
    assert f'href="{link}"' in body
    by_id = {row["message_id"]: row for row in data["results"]}
    assert by_id[planted["bread"].pk]["url"] == link
    assert "words" in by_id[planted["bread"].pk]["matched_by"]
    assert "<img" not in by_id[messages[0].pk]["snippet_html"]
    conversation_page = client.get(link.split("#")[0]).content.decode()
    assert f'id="m-{planted["bread"].pk}"' in conversation_page


def test_a_link_to_a_message_on_another_branch_opens_that_branch(user: User) -> None:
    conversation, messages = _chat(user, [("Which flour for focaccia?", "Bread flour.")])
    question, old_reply = messages
    newer = Message.objects.create(conversation=conversation, parent=question, role="assistant", content="Tipo 00.")
    conversation.active_leaf = newer
    conversation.save()
    client = Client()
    client.force_login(user)

    [hit] = [
        row
        for row in client.get("/search.json", {"q": "bread flour"}).json()["results"]
        if row["message_id"] == old_reply.pk
    ]
    page = client.get(hit["url"].split("#")[0]).content.decode()

    assert f'id="m-{old_reply.pk}"' in page and f'id="m-{newer.pk}"' not in page
    conversation.refresh_from_db()
    assert conversation.active_leaf_id == old_reply.pk, "the branch shown is the one the link named"


@pytest.mark.parametrize(
    ("query", "code"),
    [("", "empty_query"), ("   \n\t ", "empty_query"), ("x" * (MAX_QUERY_CHARS + 1), "query_too_long")],
)
def test_empty_or_too_long_queries_get_a_clear_message(user: User, query: str, code: str) -> None:
    with pytest.raises(SearchQueryInvalid) as caught:
        messages_search(user_id=user.pk, query=query)
    assert caught.value.code == code
    client = Client()
    client.force_login(user)

    answer = client.get("/search.json", {"q": query})

    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == code
    assert answer.json()["error"]["message"] == caught.value.message


def test_the_page_shows_the_error_for_a_too_long_query(user: User) -> None:
    client = Client()
    client.force_login(user)

    page = client.get("/search/", {"q": "y" * (MAX_QUERY_CHARS + 5)})

    assert page.status_code == 400
    assert f"at most {MAX_QUERY_CHARS} characters" in page.content.decode()


def test_search_needs_a_signed_in_user(db: None) -> None:
    client = Client()

    assert client.get("/search/", {"q": "x"}).status_code == 302
    assert client.get("/search.json", {"q": "x"}).status_code == 401


class _BrokenEmbedder:
    name = "broken"
    dimensions = 384

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise ConnectionError("embedding service down")


def test_words_still_find_messages_when_the_embedder_fails(
    user: User, planted: dict[str, Message], settings: object
) -> None:
    settings.EMBEDDING_BACKEND = f"{__name__}._BrokenEmbedder"  # type: ignore[attr-defined]

    hits = messages_search(user_id=user.pk, query="sourdough starter")

    assert hits[0].message_id == planted["bread"].pk
    assert not any(hit.by_meaning for hit in hits)
