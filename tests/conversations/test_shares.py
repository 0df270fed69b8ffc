"""Share links: a snapshot seen signed out, revoked, and continued as a copy."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from conversations.models import Conversation, Message, SharedConversation
from conversations.selectors import branch_messages
from tests.factories import conversation_with_turns

pytestmark = pytest.mark.django_db


def shared(client: Client, owner: User, conversation: Conversation) -> SharedConversation:
    """Share through the conversation page's menu, as its owner."""
    client.force_login(owner)
    response = client.post(f"/c/{conversation.pk}/share/")
    assert response.status_code == 302
    share = SharedConversation.objects.get(conversation=conversation, revoked_at__isnull=True)
    assert response["Location"] == f"/settings/shares/#share-{share.pk}"
    client.logout()
    return share


def monads(owner: User) -> Conversation:
    conversation, _ = conversation_with_turns(
        owner,
        [
            ("What is a <b>monad</b>?", "**Bold** claim <script>alert(1)</script> ![x](https://evil.example/leak.png)"),
            ("Simpler?", "A box with a rule for chaining."),
        ],
        title="Monads",
    )
    return conversation


def test_a_share_link_is_read_signed_out_and_rendered_safely(client: Client, user: User) -> None:
    share = shared(client, user, monads(user))
    assert len(share.token) >= 43  # 32 random bytes

    response = client.get(f"/s/{share.token}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Monads" in html
    assert "<strong>Bold</strong> claim" in html
    assert "<script>alert(1)</script>" not in html
    assert "<img" not in html
    assert "What is a &lt;b&gt;monad&lt;/b&gt;?" in html
    assert "A box with a rule for chaining." in html
    assert response["Cache-Control"] == "no-store"
    assert response["Referrer-Policy"] == "no-referrer"
    assert 'data-testid="login-to-continue"' in html


def test_the_snapshot_does_not_include_later_messages(client: Client, user: User) -> None:
    conversation = monads(user)
    share = shared(client, user, conversation)
    later = Message.objects.create(
        conversation=conversation, parent=conversation.active_leaf, role="user", content="A later secret"
    )
    conversation.active_leaf = later
    conversation.title = "Renamed later"
    conversation.save()

    html = client.get(f"/s/{share.token}/").content.decode()
    assert "A later secret" not in html
    assert "Renamed later" not in html
    assert "A box with a rule for chaining." in html


def test_only_the_active_branch_finished_and_unblocked_is_shared(client: Client, user: User) -> None:
    conversation = monads(user)
    first_question = Message.objects.filter(conversation=conversation, role="user").order_by("id").first()
    Message.objects.create(conversation=conversation, parent=first_question, role="assistant", content="Other branch")
    leaf = conversation.active_leaf
    blocked = Message.objects.create(
        conversation=conversation, parent=leaf, role="user", content="Blocked words", status="blocked"
    )
    conversation.active_leaf = blocked
    conversation.save()

    share = shared(client, user, conversation)
    assert [entry["content"] for entry in share.snapshot][-1] == "A box with a rule for chaining."
    html = client.get(f"/s/{share.token}/").content.decode()
    assert "Other branch" not in html
    assert "Blocked words" not in html


def test_a_revoked_link_is_gone_at_once(client: Client, user: User) -> None:
    share = shared(client, user, monads(user))
    assert client.get(f"/s/{share.token}/").status_code == 200

    client.force_login(user)
    page = client.get("/settings/shares/").content.decode()
    assert f"/s/{share.token}/" in page
    assert f'action="/settings/shares/{share.pk}/revoke/"' in page
    response = client.post(f"/settings/shares/{share.pk}/revoke/")
    assert response.status_code == 302
    assert client.get(response["Location"]).status_code == 200

    assert client.get(f"/s/{share.token}/").status_code == 404
    client.logout()
    assert client.get(f"/s/{share.token}/").status_code == 404
    assert client.post(f"/s/{share.token}/continue/").status_code == 404
    share.refresh_from_db()
    assert share.revoked_at is not None


def test_another_user_cannot_revoke_or_list_a_share(client: Client, user: User, other_user: User) -> None:
    share = shared(client, user, monads(user))
    client.force_login(other_user)
    assert client.post(f"/settings/shares/{share.pk}/revoke/").status_code == 404
    assert share.token not in client.get("/settings/shares/").content.decode()
    share.refresh_from_db()
    assert share.revoked_at is None
    client.logout()
    assert client.get(f"/s/{share.token}/").status_code == 200


def test_a_signed_in_viewer_continues_a_copy_of_their_own(client: Client, user: User, other_user: User) -> None:
    original = monads(user)
    share = shared(client, user, original)
    original_rows = Message.objects.filter(conversation=original).count()

    client.force_login(other_user)
    assert 'data-testid="continue-shared"' in client.get(f"/s/{share.token}/").content.decode()
    response = client.post(f"/s/{share.token}/continue/")
    assert response.status_code == 302
    match = re.fullmatch(r"/c/([0-9a-f-]{36})/", response["Location"])
    assert match
    copy = Conversation.objects.get(pk=match.group(1))
    assert copy.owner == other_user
    assert copy.title == "Monads"
    assert [(m.role, m.content) for m in branch_messages(conversation=copy)] == [
        (m.role, m.content) for m in branch_messages(conversation=original)
    ]
    assert Message.objects.filter(conversation=copy).count() == 4
    # The viewer lands in it: the page renders their copy.
    assert "A box with a rule for chaining." in client.get(response["Location"]).content.decode()
    # The original is untouched, and revoking the link later leaves the copy alone.
    assert Message.objects.filter(conversation=original).count() == original_rows
    client.force_login(user)
    client.post(f"/settings/shares/{share.pk}/revoke/")
    assert Message.objects.filter(conversation=copy).count() == 4


def test_continuing_signed_out_asks_to_log_in(client: Client, user: User) -> None:
    share = shared(client, user, monads(user))
    before = Conversation.objects.count()
    response = client.post(f"/s/{share.token}/continue/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert Conversation.objects.count() == before


def test_unknown_tokens_and_deleted_conversations_are_not_found(client: Client, user: User) -> None:
    conversation = monads(user)
    share = shared(client, user, conversation)
    assert client.get("/s/not-a-real-token-at-all/").status_code == 404
    assert client.get(f"/s/{share.token[:-1]}/").status_code == 404
    client.force_login(user)
    client.post(f"/c/{conversation.pk}/delete/")
    client.logout()
    assert client.get(f"/s/{share.token}/").status_code == 404


def test_sharing_someone_elses_or_an_empty_conversation_is_refused(
    client: Client, user: User, other_user: User
) -> None:
    theirs = monads(other_user)
    client.force_login(user)
    assert client.post(f"/c/{theirs.pk}/share/").status_code == 404
    empty = Conversation.objects.create(owner=user, title="Empty")
    response = client.post(f"/c/{empty.pk}/share/", follow=True)
    assert "There is nothing to share yet" in response.content.decode()
    assert not SharedConversation.objects.exists()


def test_each_share_has_its_own_token(client: Client, user: User) -> None:
    conversation = monads(user)
    first = shared(client, user, conversation)
    client.force_login(user)
    client.post(f"/c/{conversation.pk}/share/")
    tokens = set(SharedConversation.objects.values_list("token", flat=True))
    assert len(tokens) == 2 and first.token in tokens
