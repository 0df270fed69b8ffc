"""Sign up, log in, log out: Django auth with server-rendered forms.

Sign-ups and log-ins are rate limited (conversations/limits/ratelimit.py): a refused attempt gets
429 with Retry-After and the form again, and its password is never checked.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.contrib.auth.models import User
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from conversations.limits.ratelimit import Decision, client_ip_from_meta, login_admit, login_succeeded, signup_admit
from conversations.models import ApiKey, Conversation, Message
from conversations.services.erasure import ErasureRefused, account_data_export, account_delete
from memory.models import UserFact


def _too_many(response: HttpResponse, decision: Decision) -> HttpResponse:
    response.status_code = 429
    response["Retry-After"] = str(decision.retry_after)
    return response


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("chat-home")
    if request.method == "POST":
        decision = signup_admit(ip=client_ip_from_meta(request.META))
        if not decision.allowed:
            # A fresh form: the refused attempt is not validated, and passwords are never echoed.
            fresh: UserCreationForm[User] = UserCreationForm(initial={"username": request.POST.get("username", "")})
            context = {"form": fresh, "rate_limit_message": decision.message}
            return _too_many(render(request, "registration/signup.html", context), decision)
    form: UserCreationForm[User] = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("chat-home")
    return render(request, "registration/signup.html", {"form": form}, status=400 if form.errors else 200)


class LoginView(auth_views.LoginView):
    """Django's log-in, limited per address (every attempt) and per username (failures only)."""

    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username = str(request.POST.get("username", ""))
        self.admission = login_admit(ip=client_ip_from_meta(request.META), username=username)
        if not self.admission.allowed:
            form = AuthenticationForm(request, initial={"username": username})
            context = self.get_context_data(form=form, rate_limit_message=self.admission.message)
            return _too_many(self.render_to_response(context), self.admission)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        login_succeeded(self.admission)
        return super().form_valid(form)


# --- the account's own data: download it, or delete the account (conversations/services/erasure.py)


def _account_page(request: HttpRequest, *, error: str = "", status: int = 200) -> HttpResponse:
    user_id = int(request.user.pk or 0)  # login_required
    held = {
        "conversations": Conversation.objects.filter(owner_id=user_id).count(),
        "messages": Message.objects.filter(conversation__owner_id=user_id).count(),
        "facts": UserFact.objects.filter(user_id=user_id).count(),
        "api_keys": ApiKey.objects.filter(user_id=user_id).count(),
    }
    return render(request, "settings/account.html", {"held": held, "delete_error": error}, status=status)


@login_required
@require_GET
def account_page(request: HttpRequest) -> HttpResponse:
    return _account_page(request)


@login_required
@require_GET
def account_export(request: HttpRequest) -> JsonResponse:
    """All of the person's data as one JSON file, downloaded."""
    user: User = request.user  # type: ignore[assignment]  # login_required
    data = account_data_export(user=user)
    response = JsonResponse(data, encoder=DjangoJSONEncoder, json_dumps_params={"indent": 2, "ensure_ascii": False})
    name = f"parley-data-{timezone.now():%Y-%m-%d}.json"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def account_delete_view(request: HttpRequest) -> HttpResponse:
    """Delete the account and everything of it once the password confirms it; then log out."""
    user: User = request.user  # type: ignore[assignment]  # login_required
    try:
        account_delete(user=user, password=request.POST.get("password"))
    except ErasureRefused as exc:
        return _account_page(request, error=exc.message, status=400)
    logout(request)
    return render(request, "settings/account_deleted.html")
