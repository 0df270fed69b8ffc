"""API keys: create (the secret is returned once), authenticate a request, revoke.

A key is `parley-` followed by 43 URL-safe characters (256 random bits). The database keeps its
SHA-256 and its first characters for display, never the secret. Authentication hashes the
presented secret and looks the hash up (a unique index): no key validity is cached anywhere, so
a revocation refuses the very next request, on every node.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from conversations.models import ApiKey

if TYPE_CHECKING:
    from django.contrib.auth.models import User

SECRET_PREFIX = "parley-"
SECRET_BYTES = 32
DISPLAY_CHARS = len(SECRET_PREFIX) + 6
NAME_LENGTH = 100


class ApiKeyError(Exception):
    """A key request the product refuses, with a code and words a person can read."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_keys_for_user(*, user: User) -> QuerySet[ApiKey]:
    """The user's keys, newest first, revoked ones included (they say when they stopped)."""
    return ApiKey.objects.filter(user_id=user.pk).order_by("revoked_at", "-created_at")


def api_key_create(*, user: User, name: str) -> tuple[ApiKey, str]:
    """A new key for the user and its secret. The secret is not stored: show it now or never."""
    cleaned = " ".join(str(name).split())[:NAME_LENGTH]
    if not cleaned:
        raise ApiKeyError("empty_name", "Give the key a name, so you can tell it apart from others later.")
    limit = int(settings.API_KEYS_PER_USER)
    if ApiKey.objects.filter(user_id=user.pk, revoked_at__isnull=True).count() >= limit:
        raise ApiKeyError("too_many_keys", f"You already have {limit} active keys. Revoke one you no longer use.")
    secret = SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    key = ApiKey.objects.create(
        user=user, name=cleaned, prefix=secret[:DISPLAY_CHARS], hashed_secret=secret_hash(secret)
    )
    return key, secret


def api_key_revoke(*, key: ApiKey) -> bool:
    """Revoke a key now; False if it already was. Requests with it are refused from now on."""
    updated = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    key.refresh_from_db(fields=["revoked_at"])
    return updated == 1


def api_key_revoke_for_user(*, user: User, key_id: int) -> ApiKey:
    """Revoke one of the user's own keys; another user's key is not found (and not revoked)."""
    key = ApiKey.objects.filter(pk=key_id, user_id=user.pk).first()
    if key is None:
        raise ApiKeyError("not_found", "That key does not exist or is not yours.")
    api_key_revoke(key=key)
    return key


def api_keys_revoke(*, keys: QuerySet[ApiKey]) -> int:
    """Revoke every active key of a queryset (the admin's action); returns how many were active."""
    return keys.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())


@dataclass(frozen=True)
class Authenticated:
    key: ApiKey
    user: User


class AuthenticationFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def api_key_authenticate(*, secret: str) -> Authenticated:
    """The key and its active user for a presented secret, or AuthenticationFailed saying why.

    Records the key's last use at most once a minute (API_KEY_LAST_USED_SECONDS): a conditional
    UPDATE, so a busy key costs one write a minute, not one per request.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise AuthenticationFailed("Incorrect API key provided. Create one on the API keys page.")
    key = ApiKey.objects.select_related("user").filter(hashed_secret=secret_hash(secret)).first()
    if key is None:
        raise AuthenticationFailed("Incorrect API key provided. Create one on the API keys page.")
    if key.revoked_at is not None:
        raise AuthenticationFailed("This API key was revoked. Create a new one on the API keys page.")
    if not key.user.is_active:
        raise AuthenticationFailed("The account this API key belongs to is disabled.")
    _touch(key)
    return Authenticated(key=key, user=key.user)


def _touch(key: ApiKey) -> None:
    now = timezone.now()
    interval = timedelta(seconds=float(settings.API_KEY_LAST_USED_SECONDS))
    if key.last_used_at is not None and now - key.last_used_at < interval:
        return
    # The condition is repeated in SQL: two nodes that both saw a stale time write once.
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - interval)
    if ApiKey.objects.filter(stale, pk=key.pk).update(last_used_at=now):
        key.last_used_at = now
