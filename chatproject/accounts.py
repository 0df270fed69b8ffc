"""Sign up, log in, log out: Django auth with server-rendered forms.

Sign-ups and log-ins are rate limited (conversations/limits/ratelimit.py): a refused attempt gets
429 with Retry-After and the form again, and its password is never checked.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from conversations.limits.ratelimit import Decision, client_ip_from_meta, login_admit, login_succeeded, signup_admit


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
