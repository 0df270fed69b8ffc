"""API keys: the settings page, the admin, and what the database keeps (never the secret)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations.models import ApiKey
from conversations.services.api_keys import (
    ApiKeyError,
    AuthenticationFailed,
    api_key_authenticate,
    api_key_create,
    secret_hash,
)

pytestmark = pytest.mark.django_db


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_page_needs_a_login() -> None:
    response = Client().get("/settings/keys/")

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_new_key_is_shown_once_and_only_its_hash_is_kept(user: User) -> None:
    client = signed_in(user)

    created = client.post("/settings/keys/new/", {"name": "  my   editor  "})

    assert created.status_code == 200 and created["Cache-Control"] == "no-store"
    secret = created.context["secret"]
    assert secret.startswith("parley-") and len(secret) >= 40
    assert secret in created.content.decode()
    key = ApiKey.objects.get(user=user)
    assert key.name == "my editor"
    assert key.hashed_secret == secret_hash(secret) and secret not in key.hashed_secret
    assert secret.startswith(key.prefix) and len(key.prefix) < len(secret) // 3
    listed = client.get("/settings/keys/").content.decode()
    assert secret not in listed, "the secret is never shown again"
    assert "my editor" in listed and f"{key.prefix}…" in listed


def test_a_key_needs_a_name(user: User) -> None:
    response = signed_in(user).post("/settings/keys/new/", {"name": "   "})

    assert response.status_code == 400
    assert "Give the key a name" in response.content.decode()
    assert ApiKey.objects.count() == 0


def test_a_user_has_a_bounded_number_of_active_keys(user: User, settings: object) -> None:
    settings.API_KEYS_PER_USER = 2  # type: ignore[attr-defined]
    api_key_create(user=user, name="one")
    api_key_create(user=user, name="two")

    with pytest.raises(ApiKeyError):
        api_key_create(user=user, name="three")
    ApiKey.objects.filter(name="one").update(revoked_at=timezone.now())
    api_key_create(user=user, name="three")  # a revoked key frees its place


def test_revoking_a_key_stops_it_at_once(user: User) -> None:
    key, secret = api_key_create(user=user, name="laptop")
    assert api_key_authenticate(secret=secret).user == user
    client = signed_in(user)

    response = client.post(f"/settings/keys/{key.pk}/revoke/", follow=True)

    assert "Revoked “laptop”" in response.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is not None
    with pytest.raises(AuthenticationFailed, match="revoked"):
        api_key_authenticate(secret=secret)


def test_nobody_revokes_someone_elses_key(user: User, other_user: User) -> None:
    key, _ = api_key_create(user=user, name="mine")

    response = signed_in(other_user).post(f"/settings/keys/{key.pk}/revoke/")

    assert response.status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None
    assert "mine" not in signed_in(other_user).get("/settings/keys/").content.decode()


def test_revoking_needs_a_post(user: User) -> None:
    key, _ = api_key_create(user=user, name="mine")

    assert signed_in(user).get(f"/settings/keys/{key.pk}/revoke/").status_code == 405
    key.refresh_from_db()
    assert key.revoked_at is None


def test_last_use_is_written_at_most_once_a_minute(user: User) -> None:
    key, secret = api_key_create(user=user, name="busy")

    api_key_authenticate(secret=secret)
    key.refresh_from_db()
    first_use = key.last_used_at
    with CaptureQueriesContext(connection) as queries:
        api_key_authenticate(secret=secret)
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - timedelta(minutes=2))
    api_key_authenticate(secret=secret)
    key.refresh_from_db()

    assert first_use is not None
    assert [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")] == []
    assert len(queries.captured_queries) == 1, "one indexed lookup per request"
    assert key.last_used_at is not None and timezone.now() - key.last_used_at < timedelta(seconds=30)


@pytest.mark.parametrize("secret", ["", "sk-something", "parley-not-a-real-key"])
def test_unknown_secrets_are_refused(user: User, secret: str) -> None:
    api_key_create(user=user, name="real")

    with pytest.raises(AuthenticationFailed):
        api_key_authenticate(secret=secret)


def test_the_admin_lists_every_key_and_revokes_any(user: User, other_user: User) -> None:
    admin = User.objects.create_superuser("root", "root@localhost", "a-long-admin-passphrase")
    mine, _ = api_key_create(user=user, name="alice laptop")
    theirs, _ = api_key_create(user=other_user, name="mallory server")
    client = signed_in(admin)

    listing = client.get("/admin/conversations/apikey/").content.decode()
    response = client.post(
        "/admin/conversations/apikey/",
        {"action": "revoke_keys", "_selected_action": [str(theirs.pk)]},
        follow=True,
    )

    assert "alice laptop" in listing and "mallory server" in listing
    assert theirs.hashed_secret not in listing
    assert response.status_code == 200 and "Revoked 1 key" in response.content.decode()
    theirs.refresh_from_db()
    mine.refresh_from_db()
    assert theirs.revoked_at is not None and mine.revoked_at is None
    assert LogEntry.objects.filter(object_id=str(theirs.pk), change_message="Revoked the key.").exists()
    assert client.get("/admin/conversations/apikey/add/").status_code == 403


def test_the_navigation_links_to_the_keys_page(user: User) -> None:
    client = signed_in(user)

    assert 'href="/settings/keys/"' in client.get("/memory/").content.decode()
    assert 'href="/settings/keys/"' in client.get("/").content.decode()
