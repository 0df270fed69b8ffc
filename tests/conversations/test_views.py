"""Accounts and the server-rendered chat pages."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db


def conversation_with_reply(owner: User, content: str = "**bold** answer") -> Conversation:
    conversation = Conversation.objects.create(owner=owner, title="Monads")
    question = Message.objects.create(conversation=conversation, role="user", content="<b>raw</b> question")
    answer = Message.objects.create(conversation=conversation, parent=question, role="assistant", content=content)
    conversation.active_leaf = answer
    conversation.save()
    return conversation


def test_sign_up_logs_the_new_user_in(client: Client) -> None:
    response = client.post(
        "/accounts/signup/",
        {"username": "newbie", "password1": "a-long-pass-phrase-9", "password2": "a-long-pass-phrase-9"},
    )
    assert response.status_code == 302
    assert User.objects.filter(username="newbie").exists()
    assert client.get("/").status_code == 200


def test_sign_up_with_bad_input_creates_nobody(client: Client) -> None:
    response = client.post("/accounts/signup/", {"username": "x", "password1": "short", "password2": "other"})
    assert response.status_code == 400
    assert not User.objects.filter(username="x").exists()


def test_log_in_and_out(client: Client, user: User) -> None:
    assert client.post("/accounts/login/", {"username": "alice", "password": "wrong"}).status_code == 200
    response = client.post("/accounts/login/", {"username": "alice", "password": "correct horse battery staple"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302


def test_pages_need_a_login(client: Client, user: User) -> None:
    conversation = conversation_with_reply(user)
    for url in ("/", f"/c/{conversation.pk}/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_the_conversation_page_renders_the_branch_safely(client: Client, user: User) -> None:
    conversation = conversation_with_reply(user, "**bold** <script>alert(1)</script> ![x](https://evil.example/p.png)")
    client.force_login(user)
    page = client.get(f"/c/{conversation.pk}/").content.decode()
    assert "<strong>bold</strong>" in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;b&gt;raw&lt;/b&gt; question" in page
    assert "<img" not in page
    assert "Monads" in page


def test_another_users_conversation_is_not_found(client: Client, user: User, other_user: User) -> None:
    conversation = conversation_with_reply(other_user)
    client.force_login(user)
    assert client.get(f"/c/{conversation.pk}/").status_code == 404
    assert client.post(f"/c/{conversation.pk}/rename/", {"title": "mine now"}).status_code == 404
    assert client.post(f"/c/{conversation.pk}/delete/").status_code == 404
    conversation.refresh_from_db()
    assert (conversation.title, conversation.deleted_at) == ("Monads", None)


def test_rename_and_delete(client: Client, user: User) -> None:
    conversation = conversation_with_reply(user)
    client.force_login(user)
    renamed = client.post(f"/c/{conversation.pk}/rename/", {"title": "  Functors  "}, HTTP_ACCEPT="application/json")
    assert renamed.json() == {"id": str(conversation.pk), "title": "Functors"}
    empty = client.post(f"/c/{conversation.pk}/rename/", {"title": "  "}, HTTP_ACCEPT="application/json")
    assert empty.status_code == 400
    assert client.post(f"/c/{conversation.pk}/delete/").status_code == 302
    assert client.get(f"/c/{conversation.pk}/").status_code == 404
    assert Message.objects.filter(conversation=conversation).count() == 2, "deletion is soft"


def test_health_reports_database_and_redis(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


def test_admin_lists_conversations_and_messages(admin_client: Any, user: User) -> None:
    conversation_with_reply(user)
    for url in (
        "/admin/conversations/conversation/",
        "/admin/conversations/message/",
        "/admin/conversations/usagerecord/",
    ):
        assert admin_client.get(url).status_code == 200
