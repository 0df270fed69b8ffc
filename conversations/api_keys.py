"""The API keys page (`/settings/keys/`): create a key (its secret is shown once), list, revoke.

Writes are POSTs with a CSRF token. Creating a key answers with the page itself, holding the new
secret, and `Cache-Control: no-store`: the secret is in that one response and nowhere else (not in
a session, not in a redirect), so reloading cannot show it again. Revoking redirects back (PRG).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from chatproject.llm.config import default_model
from conversations.services.api_keys import (
    NAME_LENGTH,
    ApiKeyError,
    api_key_create,
    api_key_revoke_for_user,
    api_keys_for_user,
)


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # login_required guards every view here
    return user


def _page(request: HttpRequest, *, status: int = 200, **extra: Any) -> HttpResponse:
    context = {
        "keys": list(api_keys_for_user(user=_user(request))),
        "name_length": NAME_LENGTH,
        # For the example on the page: what a client's base URL and model would be.
        "api_base": request.build_absolute_uri("/v1"),
        "default_model": default_model().name,
        **extra,
    }
    response = render(request, "settings/api_keys.html", context, status=status)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def api_keys_page(request: HttpRequest) -> HttpResponse:
    return _page(request)


@login_required
@require_POST
def api_key_create_view(request: HttpRequest) -> HttpResponse:
    name = request.POST.get("name", "")
    try:
        key, secret = api_key_create(user=_user(request), name=name)
    except ApiKeyError as exc:
        return _page(request, status=400, create_error=exc.message, draft=name[: NAME_LENGTH * 2])
    return _page(request, created=key, secret=secret)


@login_required
@require_POST
def api_key_revoke_view(request: HttpRequest, key_id: int) -> HttpResponse:
    try:
        key = api_key_revoke_for_user(user=_user(request), key_id=key_id)
    except ApiKeyError:
        raise Http404("No such key.") from None
    messages.success(request, f"Revoked “{key.name}”. Programs using it can no longer sign in.")
    return redirect(reverse("api-keys"))
