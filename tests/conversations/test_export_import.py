"""Export (JSON tree, Markdown branch) and import (our JSON back, ChatGPT's conversations.json)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from conversations.models import Conversation, Message
from conversations.selectors import branch_messages
from tests.factories import conversation_with_turns

pytestmark = pytest.mark.django_db

CHATGPT_SAMPLE = Path(__file__).resolve().parent.parent / "data" / "chatgpt_conversations.json"

Shape = list[tuple[str, str, str, str, "Shape"]]


def tree_shape(conversation: Conversation) -> Shape:
    """The tree without ids: (role, content, status, model, children), siblings oldest first."""
    rows = list(Message.objects.filter(conversation=conversation).order_by("created_at", "id"))
    children: dict[int | None, list[Message]] = {}
    for row in rows:
        children.setdefault(row.parent_id, []).append(row)

    def shape(parent: int | None) -> Shape:
        return [(m.role, m.content, m.status, m.model, shape(m.pk)) for m in children.get(parent, [])]

    return shape(None)


def active_branch(conversation: Conversation) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in branch_messages(conversation=conversation)]


def branched_conversation(owner: User) -> Conversation:
    """Two turns, a regenerated reply to the first question, and an edited second question whose
    reply is the branch shown."""
    conversation, messages = conversation_with_turns(
        owner, [("What is a monad?", "A **monoid** in the category of endofunctors."), ("Simpler?", "A box.")]
    )
    first_question, first_reply, _, _ = messages
    Message.objects.create(
        conversation=conversation, parent=first_question, role="assistant", content="Regenerated reply", model="m2"
    )
    edited = Message.objects.create(conversation=conversation, parent=first_reply, role="user", content="Even simpler?")
    leaf = Message.objects.create(
        conversation=conversation, parent=edited, role="assistant", content="A burrito.", status="stopped", model="m1"
    )
    conversation.active_leaf = leaf
    conversation.pinned = True
    conversation.save()
    return conversation


def upload(client: Client, content: bytes, name: str = "export.json") -> Any:
    return client.post("/settings/data/import/", {"file": SimpleUploadedFile(name, content)})


def new_conversations(user: User, before: set[Any]) -> list[Conversation]:
    return list(Conversation.objects.filter(owner=user).exclude(pk__in=before).order_by("created_at"))


def test_a_json_export_imported_back_equals_the_original_tree(client: Client, user: User) -> None:
    original = branched_conversation(user)
    client.force_login(user)

    response = client.get(f"/c/{original.pk}/export.json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert "attachment" in response["Content-Disposition"]
    document = json.loads(response.content)
    assert (document["format"], document["version"]) == ("parley.conversations", 1)
    exported = document["conversations"][0]
    assert len(exported["messages"]) == 7
    assert {m["role"] for m in exported["messages"]} == {"user", "assistant"}

    before = set(Conversation.objects.values_list("pk", flat=True))
    page = upload(client, response.content)
    assert page.status_code == 200
    [copy] = new_conversations(user, before)

    assert tree_shape(copy) == tree_shape(original)
    assert active_branch(copy) == active_branch(original)
    assert (copy.title, copy.pinned, copy.created_at) == (original.title, original.pinned, original.created_at)
    old_ids = set(Message.objects.filter(conversation=original).values_list("pk", flat=True))
    assert not old_ids & set(Message.objects.filter(conversation=copy).values_list("pk", flat=True))
    assert "Imported 1 conversation with 7 messages" in page.content.decode()


def test_exporting_everything_round_trips_every_conversation(client: Client, user: User, other_user: User) -> None:
    originals = [branched_conversation(user), conversation_with_turns(user, [("Hi", "Hello!")], title="Second")[0]]
    conversation_with_turns(other_user, [("Not yours", "Secret")], title="Mallory's")
    client.force_login(user)

    document = json.loads(client.get("/settings/data/export.json").content)
    assert sorted(c["title"] for c in document["conversations"]) == ["Chat", "Second"]

    before = set(Conversation.objects.values_list("pk", flat=True))
    assert upload(client, json.dumps(document).encode()).status_code == 200
    copies = new_conversations(user, before)
    by_title = {c.title: c for c in copies}
    assert sorted(by_title) == ["Chat", "Second"]
    for original in originals:
        assert tree_shape(by_title[original.title]) == tree_shape(original)


def test_markdown_export_holds_the_active_branch_only(client: Client, user: User) -> None:
    conversation = branched_conversation(user)
    client.force_login(user)
    response = client.get(f"/c/{conversation.pk}/export.md")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    text = response.content.decode()
    assert text.startswith("# Chat\n")
    assert "A **monoid** in the category of endofunctors." in text
    assert "Even simpler?" in text and "A burrito." in text
    assert "Regenerated reply" not in text  # a sibling branch
    assert "Simpler?\n" not in text  # the question the user edited away
    assert text.index("What is a monad?") < text.index("Even simpler?")


def test_another_users_conversation_cannot_be_exported(client: Client, user: User, other_user: User) -> None:
    conversation = branched_conversation(other_user)
    client.force_login(user)
    assert client.get(f"/c/{conversation.pk}/export.json").status_code == 404
    assert client.get(f"/c/{conversation.pk}/export.md").status_code == 404
    mine = branched_conversation(user)
    assert client.get(f"/c/{mine.pk}/export.exe").status_code == 404


def test_export_and_import_need_a_login(client: Client, user: User) -> None:
    assert client.get("/settings/data/").status_code == 302
    assert client.get("/settings/data/export.json").status_code == 302
    assert upload(client, b"[]").status_code == 302


def test_a_chatgpt_export_is_imported_with_its_tree_and_a_report(client: Client, user: User) -> None:
    client.force_login(user)
    page = upload(client, CHATGPT_SAMPLE.read_bytes(), "conversations.json")
    assert page.status_code == 200
    html = page.content.decode()

    conversations = {c.title: c for c in Conversation.objects.filter(owner=user)}
    assert sorted(conversations) == ["Lisbon trip", "Quick sum"]  # the photo-only one had no text
    lisbon = conversations["Lisbon trip"]
    # Two first questions (an edit), two replies to the first (a regeneration); the code call and
    # the tool output between the photo question and its answer are left out, the tree stays joined.
    assert tree_shape(lisbon) == [
        (
            "user",
            "Plan a 3-day trip to Lisbon.",
            "complete",
            "",
            [
                ("assistant", "Day 1: Alfama and the castle. Day 2: Belém. Day 3: Sintra.", "complete", "gpt-4o", []),
                (
                    "assistant",
                    "Another plan: **Day 1** Baixa, *Day 2* LX Factory, Day 3 Cascais.",
                    "complete",
                    "gpt-4o",
                    [
                        (
                            "user",
                            "Is this tram on the way?",
                            "complete",
                            "",
                            [("assistant", "Yes: tram 28 passes right by it.", "complete", "gpt-4o", [])],
                        )
                    ],
                ),
            ],
        ),
        (
            "user",
            "Plan a 3-day trip to Porto instead.",
            "complete",
            "",
            [("assistant", "Porto: Ribeira, the Livraria Lello and a port cellar.", "complete", "gpt-4o-mini", [])],
        ),
    ]
    # current_node is the branch shown.
    assert [content for _, content in active_branch(lisbon)] == [
        "Plan a 3-day trip to Lisbon.",
        "Another plan: **Day 1** Baixa, *Day 2* LX Factory, Day 3 Cascais.",
        "Is this tram on the way?",
        "Yes: tram 28 passes right by it.",
    ]
    assert lisbon.created_at.timestamp() == 1700000000.0
    assert lisbon.updated_at.timestamp() == 1700000060.5
    assert active_branch(conversations["Quick sum"]) == [("user", "What is 2 + 2?"), ("assistant", "4.")]

    assert "Imported 2 conversations with 9 messages" in html
    assert "Skipped 6 items" in html
    for reason in (
        "system message (instructions are not imported)",
        "code content (only text is imported)",
        "tool message (only your messages and the assistant&#x27;s are imported)",
        "image_asset_pointer attachment (only text is imported)",
        "message with only attachments (only text is imported)",
        "no text messages in it",
    ):
        assert reason in html, reason


def test_the_zip_chatgpt_sends_is_imported_too(client: Client, user: User) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("chat.html", "<html></html>")
        archive.writestr("conversations.json", CHATGPT_SAMPLE.read_bytes())
    client.force_login(user)
    assert upload(client, buffer.getvalue(), "export.zip").status_code == 200
    assert Conversation.objects.filter(owner=user).count() == 2


def _valid_document(user: User) -> dict[str, Any]:
    conversation = branched_conversation(user)
    from conversations.services.exports import conversations_export_json

    document: dict[str, Any] = json.loads(conversations_export_json(conversations=[conversation]))
    conversation.delete()
    return document


def _broken(user: User, breaker: Any) -> bytes:
    document = _valid_document(user)
    breaker(document)
    return json.dumps(document).encode()


def _loop(document: dict[str, Any]) -> None:
    messages = document["conversations"][0]["messages"]
    messages[0]["parent_id"] = messages[-1]["id"]


INVALID_FILES: list[tuple[str, Any, str]] = [
    ("not json", lambda u: b"{this is not json", "not valid JSON (line 1, column 2"),
    ("not text", lambda u: b"\xff\xfe\x00\x81binary", "not a text file"),
    ("unknown shape", lambda u: b'{"hello": "world"}', "not an export this server reads"),
    ("empty list", lambda u: b"[]", "no conversations with text to import"),
    ("not chatgpt", lambda u: b'[{"title": "x"}]', "Item 1 of the file is not a ChatGPT conversation"),
    ("bad zip", lambda u: b"PK\x03\x04garbage", "zip file is damaged"),
    (
        "future version",
        lambda u: _broken(u, lambda d: d.update(version=99)),
        "format version 99; this server reads 1",
    ),
    (
        "bad role",
        lambda u: _broken(u, lambda d: d["conversations"][0]["messages"][1].update(role="wizard")),
        "conversations[0].messages[1].role is &#x27;wizard&#x27;, not one of assistant, system, user",
    ),
    (
        "missing parent",
        lambda u: _broken(u, lambda d: d["conversations"][0]["messages"][1].update(parent_id=999999999)),
        "whose parent 999999999 is not in the file",
    ),
    (
        "content not text",
        lambda u: _broken(u, lambda d: d["conversations"][0]["messages"][2].update(content=["a"])),
        "conversations[0].messages[2].content is not text",
    ),
    ("loop", lambda u: _broken(u, _loop), "their own ancestors"),
    (
        "bad date",
        lambda u: _broken(u, lambda d: d["conversations"][0]["messages"][0].update(created_at="yesterday")),
        "created_at is not a date and time",
    ),
]


@pytest.mark.parametrize(("case", "make", "error"), INVALID_FILES, ids=[c[0] for c in INVALID_FILES])
def test_an_invalid_file_is_refused_with_a_reason_and_nothing_stored(
    client: Client, user: User, case: str, make: Any, error: str
) -> None:
    content = make(user)
    client.force_login(user)
    response = upload(client, content)
    assert response.status_code == 400
    html = response.content.decode()
    assert error in html, html[html.find("import-error") - 200 : html.find("import-error") + 400]
    assert not Conversation.objects.filter(owner=user).exists()
    assert not Message.objects.filter(conversation__owner=user).exists()


def test_a_file_over_the_size_limit_is_refused(client: Client, user: User, settings: Any) -> None:
    settings.IMPORT_MAX_BYTES = 1000
    client.force_login(user)
    response = upload(client, CHATGPT_SAMPLE.read_bytes())
    assert response.status_code == 400
    assert "the limit is 1,000 bytes" in response.content.decode()
    assert not Conversation.objects.filter(owner=user).exists()


def test_a_zip_that_unpacks_past_the_limit_is_refused(client: Client, user: User, settings: Any) -> None:
    settings.IMPORT_MAX_BYTES = 20_000
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("conversations.json", b"[" + b" " * 1_000_000 + b"]")
    assert len(buffer.getvalue()) < 20_000
    client.force_login(user)
    response = upload(client, buffer.getvalue(), "export.zip")
    assert response.status_code == 400
    assert "the limit is" in response.content.decode()


def test_a_failure_midway_stores_nothing(client: Client, user: User) -> None:
    """The second conversation is damaged: the first, valid one is not stored either."""
    document = _valid_document(user)
    document["conversations"].append({"title": "Broken", "messages": "nope"})
    client.force_login(user)
    response = upload(client, json.dumps(document).encode())
    assert response.status_code == 400
    assert "conversations[1].messages is not a list" in response.content.decode()
    assert not Conversation.objects.filter(owner=user).exists()


def test_a_missing_file_is_refused(client: Client, user: User) -> None:
    client.force_login(user)
    response = client.post("/settings/data/import/", {})
    assert response.status_code == 400
    assert "Choose a file to import." in response.content.decode()


def test_the_data_page_links_exports_and_the_chat_menu_links_downloads(client: Client, user: User) -> None:
    conversation = branched_conversation(user)
    client.force_login(user)
    data = client.get("/settings/data/").content.decode()
    assert 'href="/settings/data/export.json"' in data and 'href="/settings/data/export.md"' in data
    chat = client.get(f"/c/{conversation.pk}/").content.decode()
    assert f'href="/c/{conversation.pk}/export.json"' in chat
    assert f'href="/c/{conversation.pk}/export.md"' in chat
    assert f'action="/c/{conversation.pk}/share/"' in chat


def test_imported_messages_are_embedded_for_recall_and_search(
    client: Client, user: User, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(user)
    source = branched_conversation(user)
    exported = client.get(f"/c/{source.pk}/export.json").content
    before = set(Conversation.objects.filter(owner=user).values_list("pk", flat=True))

    with django_capture_on_commit_callbacks(execute=True):
        upload(client, exported)

    [imported] = new_conversations(user, before)
    messages = Message.objects.filter(conversation=imported)
    assert messages.count() == Message.objects.filter(conversation=source).count()
    assert not messages.filter(embedding__isnull=True).exists(), "every imported message has its vector"
