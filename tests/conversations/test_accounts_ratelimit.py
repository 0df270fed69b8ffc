"""Sign-ups and log-ins under rate limits: 429 with Retry-After and the form again, nothing done."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.test import Client

from conversations.limits.ratelimit import limited_subjects

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


def sign_up(client: Client, username: str, **extra: Any) -> Any:
    data = {"username": username, "password1": "a-long-pass-phrase-9", "password2": "a-long-pass-phrase-9"}
    return client.post("/accounts/signup/", data, **extra)


def log_in(client: Client, username: str, password: str, **extra: Any) -> Any:
    return client.post("/accounts/login/", {"username": username, "password": password}, **extra)


def signed_in(client: Client) -> bool:
    return django_settings.SESSION_COOKIE_NAME in client.cookies and "_auth_user_id" in client.session


def assert_too_many(response: HttpResponse, *, window: int, words: str) -> int:
    assert response.status_code == 429
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= window
    page = response.content.decode()
    assert f"{words} Try again in {retry_after} s." in page
    assert 'data-testid="rate-limited"' in page
    return retry_after


def test_sign_ups_from_one_address_are_limited(settings: Any) -> None:
    settings.RATE_LIMIT_SIGNUP_IP = "2/3600"
    client = Client()
    assert client.post("/accounts/signup/", {"username": "x", "password1": "a", "password2": "b"}).status_code == 400
    assert sign_up(client, "first").status_code == 302
    client.post("/accounts/logout/")

    refused = sign_up(client, "third")
    assert_too_many(refused, window=3600, words="Too many attempts from your network.")
    assert not User.objects.filter(username="third").exists()
    page = refused.content.decode()
    assert 'value="third"' in page, "the form comes back with the username"
    assert "a-long-pass-phrase-9" not in page, "never the password"

    assert sign_up(Client(), "elsewhere", REMOTE_ADDR="198.51.100.7").status_code == 302, "another address"
    [subject] = limited_subjects()
    assert (subject.action, subject.kind, subject.value) == ("signup", "ip", "127.0.0.1")


def test_log_ins_from_one_address_are_limited_even_with_the_right_password(settings: Any, user: User) -> None:
    settings.RATE_LIMIT_LOGIN_IP = "3/300"
    settings.RATE_LIMIT_LOGIN_USER = ""
    client = Client()
    for name in ("nobody", "someone", "alice"):
        assert log_in(client, name, "guess").status_code == 200
    refused = log_in(client, "alice", PASSWORD)
    assert_too_many(refused, window=300, words="Too many attempts from your network.")
    assert not signed_in(client), "a refused attempt never checks the password"
    assert 'value="alice"' in refused.content.decode()
    assert log_in(Client(), "alice", PASSWORD, REMOTE_ADDR="198.51.100.8").status_code == 302


def test_failed_log_ins_are_limited_per_username_from_any_address(settings: Any, user: User) -> None:
    settings.RATE_LIMIT_LOGIN_IP = ""
    settings.RATE_LIMIT_LOGIN_USER = "2/300"
    assert log_in(Client(), "alice", "wrong", REMOTE_ADDR="192.0.2.1").status_code == 200
    assert log_in(Client(), "Alice", "wrong", REMOTE_ADDR="192.0.2.2").status_code == 200
    client = Client()
    refused = log_in(client, "alice", PASSWORD, REMOTE_ADDR="192.0.2.3")
    assert_too_many(refused, window=300, words="Too many failed log-ins for this username.")
    assert not signed_in(client)
    assert log_in(Client(), "mallory-not-here", "wrong").status_code == 200, "another username is not affected"


def test_successful_log_ins_do_not_count_against_the_username(settings: Any, user: User) -> None:
    settings.RATE_LIMIT_LOGIN_IP = ""
    settings.RATE_LIMIT_LOGIN_USER = "2/300"
    for _ in range(4):
        client = Client()
        assert log_in(client, "alice", PASSWORD).status_code == 302
        assert signed_in(client)
    assert log_in(Client(), "alice", "wrong").status_code == 200
    assert log_in(Client(), "alice", "wrong again").status_code == 200
    assert log_in(Client(), "alice", PASSWORD).status_code == 429


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(settings: Any) -> None:
    settings.RATE_LIMIT_LOGIN_IP = "1/300"
    settings.RATE_LIMIT_LOGIN_USER = ""
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    client = Client()
    assert log_in(client, "a", "x", HTTP_X_FORWARDED_FOR="203.0.113.1").status_code == 200
    assert log_in(client, "b", "x", HTTP_X_FORWARDED_FOR="203.0.113.2").status_code == 200
    assert log_in(client, "c", "x", HTTP_X_FORWARDED_FOR="203.0.113.1").status_code == 429
    # A spoofed entry to the left of what the proxy wrote changes nothing.
    assert log_in(client, "d", "x", HTTP_X_FORWARDED_FOR="9.9.9.9, 203.0.113.1").status_code == 429


def test_forwarded_for_from_an_untrusted_peer_is_ignored(settings: Any) -> None:
    settings.RATE_LIMIT_LOGIN_IP = "1/300"
    settings.RATE_LIMIT_LOGIN_USER = ""
    settings.TRUSTED_PROXIES = []
    client = Client()
    assert log_in(client, "a", "x", HTTP_X_FORWARDED_FOR="203.0.113.1").status_code == 200
    assert log_in(client, "b", "x", HTTP_X_FORWARDED_FOR="203.0.113.2").status_code == 429


def test_limits_off_means_no_limit(settings: Any) -> None:
    settings.RATE_LIMIT_LOGIN_IP = "0"
    settings.RATE_LIMIT_LOGIN_USER = ""
    client = Client()
    assert all(log_in(client, "alice", "wrong").status_code == 200 for _ in range(12))
    assert limited_subjects() == []


def test_a_get_of_the_forms_is_never_limited(settings: Any) -> None:
    settings.RATE_LIMIT_LOGIN_IP = "1/300"
    settings.RATE_LIMIT_SIGNUP_IP = "1/300"
    client = Client()
    for _ in range(3):
        assert client.get("/accounts/login/").status_code == 200
        assert client.get("/accounts/signup/").status_code == 200
    assert log_in(client, "alice", "wrong").status_code == 200
