"""Organising conversations: pin, archive, rename, and temporary chats, through the HTTP views."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import Client

from conversations.models import Conversation
from memory.models import UserFact
from tests.conftest import open_socket
from tests.factories import conversation_with_turns

JSON = {"Accept": "application/json"}


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def sidebar_ids(client: Client) -> list[str]:
    response = client.get("/")
    assert response.status_code == 200
    return [str(c.pk) for c in response.context["conversations"]]


@pytest.mark.django_db
def test_pinning_puts_a_chat_first_without_touching_its_activity(user: User) -> None:
    older, _ = conversation_with_turns(user, [("old", "reply")], title="Older")
    newer, _ = conversation_with_turns(user, [("new", "reply")], title="Newer")
    client = signed_in(user)
    assert sidebar_ids(client) == [str(newer.pk), str(older.pk)]
    before = Conversation.objects.get(pk=older.pk).updated_at

    response = client.post(f"/c/{older.pk}/pin/", {"pinned": "true"}, headers=JSON)

    assert response.status_code == 200
    assert response.json() == {"id": str(older.pk), "pinned": True, "archived": False}
    older.refresh_from_db()
    assert older.pinned and older.updated_at == before, "pinning is not activity: retention must not restart"
    assert sidebar_ids(client) == [str(older.pk), str(newer.pk)]
    page = client.get("/").content.decode()
    assert 'data-pinned="true"' in page and 'aria-pressed="true"' in page

    assert client.post(f"/c/{older.pk}/pin/", {"pinned": "false"}, headers=JSON).json()["pinned"] is False
    assert sidebar_ids(client) == [str(newer.pk), str(older.pk)]


@pytest.mark.django_db
def test_archiving_moves_a_chat_to_the_archive_page_and_back(user: User) -> None:
    kept, _ = conversation_with_turns(user, [("a", "b")], title="Kept")
    stowed, _ = conversation_with_turns(user, [("c", "d")], title="Stowed away")
    Conversation.objects.filter(pk=stowed.pk).update(pinned=True)
    client = signed_in(user)

    response = client.post(f"/c/{stowed.pk}/archive/", {"archived": "true"})

    assert response.status_code == 302 and response["Location"] == f"/c/{stowed.pk}/"
    stowed.refresh_from_db()
    assert stowed.archived and not stowed.pinned, "an archived chat is no longer pinned"
    assert sidebar_ids(client) == [str(kept.pk)]
    archive = client.get("/archived/")
    assert [c.pk for c in archive.context["archived"]] == [stowed.pk]
    assert "Stowed away" in archive.content.decode()
    assert client.get(f"/c/{stowed.pk}/").status_code == 200, "an archived chat can still be opened"

    back = client.post(f"/c/{stowed.pk}/archive/", {"archived": "false", "next": "archived"})

    assert back.status_code == 302 and back["Location"] == "/archived/"
    assert set(sidebar_ids(client)) == {str(kept.pk), str(stowed.pk)}
    assert 'data-testid="no-archived"' in client.get("/archived/").content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("url_end,field", [("pin", "pinned"), ("archive", "archived")])
@pytest.mark.parametrize("value", [None, "", "maybe", "yes please"])
def test_an_unclear_switch_is_refused_and_changes_nothing(
    user: User, url_end: str, field: str, value: str | None
) -> None:
    conversation, _ = conversation_with_turns(user, [("a", "b")])
    data: dict[str, Any] = {} if value is None else {field: value}

    response = signed_in(user).post(f"/c/{conversation.pk}/{url_end}/", data, headers=JSON)

    assert response.status_code == 400
    assert response.json()["error"] == {"code": f"invalid_{field}", "message": f"{field} must be true or false."}
    conversation.refresh_from_db()
    assert not conversation.pinned and not conversation.archived


@pytest.mark.django_db
def test_nobody_organises_another_persons_chats(user: User, other_user: User) -> None:
    conversation, _ = conversation_with_turns(user, [("a", "b")], title="Mine")
    intruder = signed_in(other_user)
    for url_end, data in (("pin", {"pinned": "true"}), ("archive", {"archived": "true"}), ("rename", {"title": "x"})):
        assert intruder.post(f"/c/{conversation.pk}/{url_end}/", data).status_code == 404
    conversation.refresh_from_db()
    assert (conversation.pinned, conversation.archived, conversation.title) == (False, False, "Mine")
    assert intruder.get("/archived/").context["archived"].count() == 0


@pytest.mark.django_db
def test_organising_needs_a_post_and_a_login(user: User) -> None:
    conversation, _ = conversation_with_turns(user, [("a", "b")])
    assert signed_in(user).get(f"/c/{conversation.pk}/pin/").status_code == 405
    anonymous = Client()
    assert anonymous.post(f"/c/{conversation.pk}/archive/", {"archived": "true"}).status_code == 302
    assert anonymous.post("/c/temporary/").status_code == 302
    assert not Conversation.objects.filter(archived=True).exists()
    assert Conversation.objects.count() == 1


@pytest.mark.django_db
def test_rename_still_works_beside_the_new_controls(user: User) -> None:
    conversation, _ = conversation_with_turns(user, [("a", "b")])
    response = signed_in(user).post(f"/c/{conversation.pk}/rename/", {"title": "  Trip   plans "}, headers=JSON)
    assert response.json()["title"] == "Trip plans"
    page = signed_in(user).get(f"/c/{conversation.pk}/").content.decode()
    for control in ('data-action="pin"', 'data-action="archive"', 'data-action="rename"', 'data-action="delete"'):
        assert control in page


FACTS_TEXT = "Hi! My name is Ada and I live in Lisbon. I'm allergic to peanuts."


async def turn(user: User, content: str, conversation_id: str | None) -> list[dict[str, Any]]:
    """One message over a real socket, and every frame up to its reply's end."""
    frame: dict[str, Any] = {"type": "send", "content": content, "client_id": "c-1"}
    if conversation_id is not None:
        frame["conversation_id"] = conversation_id
    socket = await open_socket(user)
    try:
        await socket.send(frame)
        return await socket.receive_until(lambda f: f["type"] == "done")
    finally:
        await socket.close()


@pytest.mark.django_db(transaction=True)
async def test_a_temporary_chat_is_off_the_record(user: User) -> None:
    client = await sync_to_async(signed_in)(user)
    response = await sync_to_async(client.post)("/c/temporary/")
    assert response.status_code == 302
    conversation = await sync_to_async(Conversation.objects.get)(owner=user)
    assert response["Location"] == f"/c/{conversation.pk}/"
    assert conversation.temporary and conversation.deleted_at is None

    frames = await turn(user, FACTS_TEXT, str(conversation.pk))

    assert frames[-1]["status"] == "complete"
    assert {f["conversation_id"] for f in frames if "conversation_id" in f} == {str(conversation.pk)}
    assert await sync_to_async(UserFact.objects.filter(user=user).count)() == 0, "memory never learns from it"
    await turn(user, FACTS_TEXT, None)
    assert await sync_to_async(UserFact.objects.filter(user=user).count)() > 0, "while an ordinary chat teaches it"
    page = await sync_to_async(client.get)(f"/c/{conversation.pk}/")
    assert 'data-testid="temporary-badge"' in page.content.decode()
    assert str(conversation.pk) not in await sync_to_async(sidebar_ids)(client), "not in the history"
    stored = await sync_to_async(Conversation.objects.get)(pk=conversation.pk)
    assert stored.temporary and stored.title != "New chat"


@pytest.mark.django_db
def test_the_temporary_chat_view_answers_json(user: User) -> None:
    response = signed_in(user).post("/c/temporary/", headers=JSON)
    payload = json.loads(response.content)
    conversation = Conversation.objects.get(pk=payload["id"])
    assert conversation.temporary and payload["url"] == f"/c/{conversation.pk}/"
