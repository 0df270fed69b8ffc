"""Edit and regenerate make branches; `switch` moves between them; the prompt follows the branch shown.

Socket tests run on the real ASGI application, PostgreSQL and Redis; the prompt tests read what the
fake OpenAI-compatible server received, or the context a turn built.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

from bench.fake_upstream import FakeUpstream
from chatproject.llm import embeddings
from conversations.models import Conversation, Message
from conversations.services.turns import turn_prepare, turn_prepare_regenerate
from memory.selectors import context_inputs
from memory.services import memory_set_enabled, message_embed
from tests.conftest import Socket, open_socket
from tests.factories import conversation_with_turns

OLD_SECRET = "My favourite fruit is the PAPAYA, I eat one every morning."
NEW_SECRET = "My favourite fruit is the MANGO, I eat one every morning."


def is_done(frame: dict[str, Any]) -> bool:
    return frame["type"] == "done"


async def finished_turn(sock: Socket, content: str, conversation_id: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "send", "content": content}
    if conversation_id:
        frame["conversation_id"] = conversation_id
    await sock.send(frame)
    return (await sock.receive_until(is_done))[-1]


@sync_to_async
def tree_of(conversation_id: str) -> tuple[list[tuple[int, int | None, str, str]], int | None]:
    rows = Message.objects.filter(conversation_id=conversation_id).order_by("id")
    leaf = Conversation.objects.get(pk=conversation_id).active_leaf_id
    return [(m.pk, m.parent_id, m.role, m.content) for m in rows], leaf


@sync_to_async
def embed_all(conversation_id: str) -> None:
    """Give every finished message its vector now, so recall could reach any of them."""
    for pk in Message.objects.filter(conversation_id=conversation_id).values_list("pk", flat=True):
        message_embed(message_id=pk)


def prompt_text(request: dict[str, Any] | None) -> str:
    assert request is not None
    return json.dumps(request["messages"])


# --- edit -------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_an_edit_goes_beside_the_old_message_and_gets_its_own_reply(socket: Socket) -> None:
    first = await finished_turn(socket, "Name a river")
    conversation_id = first["conversation_id"]
    second = await finished_turn(socket, "Name a mountain", conversation_id)
    rows, _ = await tree_of(conversation_id)
    old_question = rows[2][0]

    await socket.send(
        {
            "type": "edit",
            "conversation_id": conversation_id,
            "message_id": old_question,
            "content": "Name a lake",
            "client_id": "c-edit",
        }
    )
    frames = await socket.receive_until(is_done)

    created = [f["message"] for f in frames if f["type"] == "message.created"]
    asked, replied = created
    assert (asked["role"], asked["content"], asked["parent_id"]) == ("user", "Name a lake", first["message_id"])
    assert asked["siblings"] == [old_question, asked["id"]], "the client draws 2 / 2 from this"
    assert next(f.get("client_id") for f in frames if f["type"] == "message.created") == "c-edit"
    assert (replied["role"], replied["parent_id"]) == ("assistant", asked["id"])
    assert "siblings" not in replied, "the new reply is the only one under its question"
    assert frames[-1]["status"] == "complete" and "Name a lake" in frames[-1]["content"]

    rows, leaf = await tree_of(conversation_id)
    assert leaf == replied["id"]
    kept = {pk: content for pk, _, _, content in rows}
    assert kept[old_question] == "Name a mountain" and second["message_id"] in kept, "the old branch stays"


@pytest.mark.django_db(transaction=True)
async def test_the_prompt_after_an_edit_has_nothing_of_the_old_branch(
    socket: Socket, upstream_model: FakeUpstream, user: User
) -> None:
    # Memory off, so the chat reply is the fake server's last request (not a fact extraction);
    # recall inside the conversation still runs.
    await sync_to_async(memory_set_enabled)(user=user, enabled=False)
    first = await finished_turn(socket, "Which rivers flow through Lisbon?")
    conversation_id = first["conversation_id"]
    await finished_turn(socket, OLD_SECRET, conversation_id)
    await finished_turn(socket, "And what is the weather like there?", conversation_id)
    rows, _ = await tree_of(conversation_id)
    old_question = rows[2][0]
    await embed_all(conversation_id)  # the old branch is now as recallable as it can be

    await socket.send(
        {"type": "edit", "conversation_id": conversation_id, "message_id": old_question, "content": NEW_SECRET}
    )
    done = (await socket.receive_until(is_done))[-1]

    assert done["status"] == "complete"
    sent = upstream_model.last_request()
    text = prompt_text(sent)
    assert "PAPAYA" not in text and "weather" not in text, "nothing of the edited-away branch is sent"
    assert "Which rivers flow through Lisbon?" in text and "MANGO" in text
    assert sent is not None
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]
    assert done["context"]["included"].get("recalled", 0) == 0


@pytest.mark.django_db(transaction=True)
async def test_an_edit_passes_the_input_guardrails_like_a_send(socket: Socket, settings: Any) -> None:
    first = await finished_turn(socket, "Hello there")
    conversation_id = first["conversation_id"]
    rows, _ = await tree_of(conversation_id)
    settings.MODERATION_DETECTORS = [
        {
            "name": "kw",
            "path": "tests.moderation.test_pipeline.KeywordDetector",
            "options": {"word": "forbidden", "category": "prompt_injection"},
            "actions": {"input": "block"},
        }
    ]

    await socket.send(
        {
            "type": "edit",
            "conversation_id": conversation_id,
            "message_id": rows[0][0],
            "content": "a forbidden request",
            "client_id": "c-bad",
        }
    )
    frames = await socket.receive_until(lambda f: f["type"] == "error")

    assert frames[-1]["code"] == "blocked" and frames[-1]["client_id"] == "c-bad"
    rows_after, leaf = await tree_of(conversation_id)
    blocked = await sync_to_async(Message.objects.get)(pk=frames[-1]["message_id"])
    assert blocked.status == "blocked" and blocked.parent_id is None
    assert len(rows_after) == len(rows) + 1, "a blocked edit gets no reply"
    assert leaf == blocked.pk


# --- switch -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_switching_shows_the_newest_leaf_under_a_sibling_in_every_tab(socket: Socket, user: User) -> None:
    first = await finished_turn(socket, "Name three rivers")
    conversation_id, old_reply = first["conversation_id"], first["message_id"]
    await socket.send({"type": "regenerate", "conversation_id": conversation_id, "message_id": old_reply})
    new_reply = (await socket.receive_until(is_done))[-1]["message_id"]
    other_tab = await open_socket(user)
    await other_tab.send({"type": "subscribe", "conversation_id": conversation_id})
    await other_tab.receive_until(lambda f: f["type"] == "subscribed")

    await socket.send({"type": "switch", "conversation_id": conversation_id, "message_id": old_reply})
    here = await socket.receive_until(lambda f: f["type"] == "branch")
    there = await other_tab.receive_until(lambda f: f["type"] == "branch")

    expected = {"type": "branch", "conversation_id": conversation_id, "active_leaf_id": old_reply}
    assert here[-1] == expected and there[-1] == expected
    assert (await tree_of(conversation_id))[1] == old_reply

    # The conversation continues from the branch shown.
    nxt = await finished_turn(socket, "And three lakes?", conversation_id)
    rows, _ = await tree_of(conversation_id)
    question = next(pk for pk, parent, role, _ in rows if role == "user" and parent == old_reply)
    assert nxt["message_id"] == rows[-1][0] and rows[-1][1] == question

    # Choosing the first question's branch again lands on the newest message under it.
    await socket.send({"type": "switch", "conversation_id": conversation_id, "message_id": new_reply})
    assert (await socket.receive_until(lambda f: f["type"] == "branch"))[-1]["active_leaf_id"] == new_reply
    root = rows[0][0]
    await socket.send({"type": "switch", "conversation_id": conversation_id, "message_id": root})
    assert (await socket.receive_until(lambda f: f["type"] == "branch"))[-1]["active_leaf_id"] == nxt["message_id"]
    await other_tab.close()


@sync_to_async
def rows_snapshot() -> tuple[list[tuple[int, str]], list[tuple[str, int | None]]]:
    return (
        list(Message.objects.order_by("pk").values_list("pk", "content")),
        list(Conversation.objects.order_by("pk").values_list("title", "active_leaf_id")),
    )


async def expect_refusal(sock: Socket, frame: dict[str, Any], code: str) -> None:
    before = await rows_snapshot()
    await sock.send(frame)
    reply = await sock.receive_until(lambda f: f["type"] == "error")
    assert reply[-1]["code"] == code, reply
    assert reply[-1]["message"]
    assert await rows_snapshot() == before, f"a refused {frame['type']} changes nothing"


@pytest.mark.django_db(transaction=True)
async def test_bad_edits_and_switches_are_refused_and_change_nothing(socket: Socket, other_user: User) -> None:
    done = await finished_turn(socket, "Tell me a fact")
    conversation_id, reply = done["conversation_id"], done["message_id"]
    question = (await tree_of(conversation_id))[0][0][0]
    theirs = await open_socket(other_user)
    elsewhere = await finished_turn(theirs, "Their own chat")

    edit = {"type": "edit", "conversation_id": conversation_id, "message_id": question, "content": "x"}
    await expect_refusal(socket, {**edit, "message_id": reply}, "not_editable")
    await expect_refusal(socket, {**edit, "message_id": elsewhere["message_id"]}, "message_not_found")
    await expect_refusal(socket, {**edit, "message_id": "1"}, "invalid_event")
    await expect_refusal(socket, {**edit, "content": "   "}, "empty_message")
    await expect_refusal(socket, {**edit, "conversation_id": elsewhere["conversation_id"]}, "not_found")
    switch = {"type": "switch", "conversation_id": conversation_id}
    await expect_refusal(socket, {**switch, "message_id": elsewhere["message_id"]}, "message_not_found")
    await expect_refusal(socket, {**switch, "message_id": True}, "invalid_event")
    await expect_refusal(
        socket, {**switch, "conversation_id": elsewhere["conversation_id"], "message_id": reply}, "not_found"
    )
    await theirs.close()


@pytest.mark.django_db(transaction=True)
async def test_no_switch_while_a_reply_is_being_written(socket: Socket, long_replies: None) -> None:
    done = await finished_turn(socket, "First")
    conversation_id = done["conversation_id"]
    await socket.send({"type": "send", "conversation_id": conversation_id, "content": "Second"})
    streaming = (await socket.receive_until(lambda f: f["type"] == "delta"))[-1]

    await socket.send({"type": "switch", "conversation_id": conversation_id, "message_id": done["message_id"]})
    refusal = (await socket.receive_until(lambda f: f["type"] == "error"))[-1]

    assert refusal["code"] == "busy"
    await socket.send({"type": "stop", "conversation_id": conversation_id, "message_id": streaming["message_id"]})
    await socket.receive_until(is_done)
    assert (await tree_of(conversation_id))[1] == streaming["message_id"]


# --- the prompt follows the branch ------------------------------------------------------------


def _embedded(messages: list[Message]) -> None:
    for message in messages:
        message_embed(message_id=message.pk)


def _branch(conversation: Conversation, parent: Message | None, turns: list[tuple[str, str]]) -> list[Message]:
    made: list[Message] = []
    for question, answer in turns:
        asked = Message.objects.create(conversation=conversation, parent=parent, role="user", content=question)
        parent = Message.objects.create(conversation=conversation, parent=asked, role="assistant", content=answer)
        made += [asked, parent]
    return made


@pytest.mark.django_db
def test_recall_reaches_older_turns_of_the_branch_but_never_another_branch(user: User, settings: Any) -> None:
    settings.CONTEXT_HISTORY_LIMIT = 2  # only the last pair is in the window; older turns need recall
    conversation, trunk = conversation_with_turns(
        user, [("My cat is called Whiskers.", "Whiskers is a lovely name for a cat."), ("Hi", "Hello!")]
    )
    left = _branch(conversation, trunk[-1], [("My dog is called Rex.", "Rex is a fine name for a dog.")])
    right = _branch(conversation, trunk[-1], [("I like green tea.", "Green tea is nice.")])
    _embedded(trunk + left + right)

    inputs = context_inputs(
        user_id=user.pk,
        conversation_id=conversation.pk,
        parent_id=right[-1].pk,
        system_prompt="s",
        user_message="What are my pets called? Tell me the names of my cat and my dog.",
        query=embeddings.embed_one("What are my pets called? Tell me the names of my cat and my dog."),
        use_memory=False,
    )

    recalled = {r.turn.message_id for r in inputs.recalled}
    assert recalled & {trunk[0].pk, trunk[1].pk}, "an ancestor outside the window is recalled"
    assert not recalled & {left[0].pk, left[1].pk}, "a message of another branch never is"
    assert [t.message_id for t in inputs.history] == [right[0].pk, right[1].pk]

    # Seen from the other branch, the same query recalls that branch's own turns.
    inputs = context_inputs(
        user_id=user.pk,
        conversation_id=conversation.pk,
        parent_id=left[-1].pk,
        system_prompt="s",
        user_message="x",
        query=embeddings.embed_one("What is my dog called?"),
        use_memory=False,
    )
    assert not {r.turn.message_id for r in inputs.recalled} & {right[0].pk, right[1].pk}


@pytest.mark.django_db
def test_a_regenerated_reply_is_prompted_without_the_old_reply(user: User) -> None:
    conversation, messages = conversation_with_turns(
        user,
        [("Where is Lisbon?", "Lisbon is in Portugal."), (OLD_SECRET, "Noted: your favourite fruit is the PAPAYA.")],
    )
    _embedded(messages)

    prepared = turn_prepare_regenerate(user=user, conversation_id=str(conversation.pk), message_id=messages[-1].pk)

    assert prepared.context is not None
    text = json.dumps(prepared.context.messages)
    assert "Noted: your favourite fruit is the PAPAYA." not in text
    assert "Lisbon is in Portugal." in text and OLD_SECRET in text
    assert prepared.siblings == (messages[-1].pk, prepared.start.assistant_message.pk)  # type: ignore[union-attr]


@pytest.mark.django_db
def test_an_edit_is_prompted_without_the_old_message_or_its_reply(user: User) -> None:
    conversation, messages = conversation_with_turns(
        user,
        [("Where is Lisbon?", "Lisbon is in Portugal."), (OLD_SECRET, "Noted: your favourite fruit is the PAPAYA.")],
    )
    _embedded(messages)

    prepared = turn_prepare(user=user, conversation_id=str(conversation.pk), content=NEW_SECRET, edit_of=messages[2].pk)

    assert prepared.context is not None
    text = json.dumps(prepared.context.messages)
    assert "PAPAYA" not in text and "MANGO" in text and "Lisbon is in Portugal." in text
    assert prepared.start.user_message.parent_id == messages[1].pk
    assert prepared.siblings == (messages[2].pk, prepared.start.user_message.pk)


@pytest.mark.django_db
def test_chains_written_by_the_trigger_match_the_backfill(user: User) -> None:
    """The backfill of migration 0010 and the insert trigger agree on every message's chain."""
    from importlib import import_module

    backfill = import_module("conversations.migrations.0010_message_segments").BACKFILL
    conversation, trunk = conversation_with_turns(user, [("a", "b"), ("c", "d")])
    _branch(conversation, trunk[1], [("e", "f")])
    _branch(conversation, trunk[1], [("g", "h")])
    _branch(conversation, None, [("i", "j")])
    Message.objects.create(conversation=conversation, parent=trunk[0], role="assistant", content="b2")

    def chains() -> list[tuple[int, int]]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, segment FROM conversations_message ORDER BY id")
            return list(cursor.fetchall())

    written = chains()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE conversations_message SET segment = NULL")
        cursor.execute(backfill)
    assert chains() == written
    heads = {segment for _, segment in written}
    assert len(heads) == 5, "the root, two later roots or siblings, and every later sibling start a chain"


# --- the page -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_page_shows_the_active_branch_with_its_position_among_siblings(user: User) -> None:
    conversation, messages = conversation_with_turns(user, [("Name a river", "The Tagus.")])
    newer = Message.objects.create(
        conversation=conversation, parent=messages[0], role="assistant", content="The Douro."
    )
    conversation.active_leaf = newer
    conversation.save()
    client = Client()
    client.force_login(user)

    page = client.get(f"/c/{conversation.pk}/").content.decode()
    assert "The Douro." in page and "The Tagus." not in page
    assert 'data-testid="branch-position">2 / 2<' in page
    assert f'data-siblings="{messages[1].pk},{newer.pk}"' in page

    conversation.active_leaf = messages[1]
    conversation.save()
    page = client.get(f"/c/{conversation.pk}/").content.decode()
    assert "The Tagus." in page and "The Douro." not in page
    assert 'data-testid="branch-position">1 / 2<' in page
