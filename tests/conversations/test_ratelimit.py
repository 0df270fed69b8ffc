"""Rate limits: the limiter on real Redis, the chat socket refusing a flood, and the admin's view of
who is limited. Time moves by passing `now`, never by sleeping."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.urls import reverse

from chatproject import redis_client
from conversations.limits.ratelimit import (
    Action,
    Kind,
    Rate,
    Rule,
    check_rate_limit_settings,
    client_ip,
    client_ip_from_scope,
    limited_subject_clear,
    limited_subjects,
    rate_parse,
    ratelimit_hit,
    ratelimit_hit_async,
    send_rules,
)
from conversations.models import Message
from tests.conftest import Socket, make_user, session_cookie_for

T0 = 1_700_000_000.0  # an arbitrary "now", in seconds; the tests move it by hand


def rule(value: str = "1", limit: int = 3, window: int = 60, *, action: Action = Action.SEND) -> Rule:
    return Rule(action, Kind.USER, value, Rate(limit, window))


# --- The limiter ------------------------------------------------------------------------------------------


def test_it_allows_exactly_n_in_the_window_then_says_when_the_next_fits() -> None:
    limit = [rule(limit=3, window=60)]
    assert [ratelimit_hit(limit, now=T0 + t).allowed for t in (0, 10, 20)] == [True, True, True]

    refused = ratelimit_hit(limit, now=T0 + 30)
    assert not refused.allowed
    assert refused.retry_after_ms == 30_000  # the attempt at T0 leaves the window at T0 + 60
    assert refused.retry_after == 30
    assert refused.blocked_by == limit[0]
    assert refused.message == "You are sending messages too fast. Try again in 30 s."

    almost = ratelimit_hit(limit, now=T0 + 59.999)
    assert (almost.allowed, almost.retry_after_ms, almost.retry_after) == (False, 1, 1)
    assert ratelimit_hit(limit, now=T0 + 60).allowed, "a slot is free the moment the oldest attempt leaves"
    then = ratelimit_hit(limit, now=T0 + 61)
    assert (then.allowed, then.retry_after_ms) == (False, 9_000)  # T0 + 10 is now the oldest


def test_refused_attempts_do_not_count() -> None:
    limit = [rule(limit=2, window=10)]
    assert ratelimit_hit(limit, now=T0).allowed
    assert ratelimit_hit(limit, now=T0 + 1).allowed
    for step in range(50):
        assert not ratelimit_hit(limit, now=T0 + 2 + step * 0.1).allowed
    # Had the refusals counted, the window would still be full.
    assert ratelimit_hit(limit, now=T0 + 10).allowed


def test_separate_subjects_do_not_interfere() -> None:
    alice, bob = [rule("1", limit=1)], [rule("2", limit=1)]
    login_of_alice = [rule("1", limit=1, action=Action.LOGIN)]
    assert ratelimit_hit(alice, now=T0).allowed
    assert not ratelimit_hit(alice, now=T0 + 1).allowed
    assert ratelimit_hit(bob, now=T0 + 1).allowed, "another user has a window of their own"
    assert ratelimit_hit(login_of_alice, now=T0 + 1).allowed, "another action has a window of its own"


def test_an_attempt_refused_by_one_rule_costs_nothing_under_the_others(settings: Any) -> None:
    settings.RATE_LIMIT_SEND_USER = "5/60"
    settings.RATE_LIMIT_SEND_IP = "2/60"
    shared_ip = "203.0.113.9"
    assert ratelimit_hit(send_rules(user_id=1, ip=shared_ip), now=T0).allowed
    assert ratelimit_hit(send_rules(user_id=1, ip=shared_ip), now=T0).allowed
    for _ in range(3):
        refused = ratelimit_hit(send_rules(user_id=2, ip=shared_ip), now=T0 + 1)
        assert not refused.allowed
        assert refused.blocked_by is not None and refused.blocked_by.kind == Kind.IP
    # User 2's own window took none of those: with no address to limit, all five of theirs go through.
    assert [ratelimit_hit(send_rules(user_id=2, ip=None), now=T0 + 2).allowed for _ in range(6)] == [True] * 5 + [False]


def test_a_limit_lowered_below_the_attempts_already_made_waits_for_enough_of_them_to_leave() -> None:
    for t in range(4):
        assert ratelimit_hit([rule(limit=4, window=100)], now=T0 + t).allowed
    lowered = ratelimit_hit([rule(limit=2, window=100)], now=T0 + 10)
    # Attempts at T0..T0+3: room for one more under 2 only when those at T0, T0+1 and T0+2 have left.
    assert (lowered.allowed, lowered.retry_after_ms) == (False, (2 + 100 - 10) * 1000)


def test_concurrent_callers_never_get_more_than_n_through() -> None:
    limit = [rule("hammered", limit=50, window=60)]
    allowed: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def hammer() -> None:
        start.wait()
        mine = [ratelimit_hit(limit).allowed for _ in range(25)]  # Redis's own clock
        with lock:
            allowed.extend(mine)

    threads = [threading.Thread(target=hammer) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(allowed) == 400
    assert allowed.count(True) == 50


async def test_concurrent_async_callers_never_get_more_than_n_through() -> None:
    limit = [rule("async-hammered", limit=30, window=60)]
    decisions = await asyncio.gather(*(ratelimit_hit_async(limit) for _ in range(200)))
    assert sum(d.allowed for d in decisions) == 30
    refused = [d for d in decisions if not d.allowed]
    assert all(1 <= d.retry_after <= 60 for d in refused)


def test_an_unreachable_redis_lets_people_in(settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    redis_client.sync_client.cache_clear()
    try:
        decision = ratelimit_hit([rule(limit=1)], now=T0)
        assert decision.allowed
    finally:
        redis_client.sync_client.cache_clear()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("20/60", Rate(20, 60)), (" 5/300 ", Rate(5, 300)), ("", None), ("0", None), ("0/60", None), ("off", None)],
)
def test_rates_are_read_from_settings(value: str, expected: Rate | None) -> None:
    assert rate_parse(value, setting="RATE_LIMIT_X") == expected


@pytest.mark.parametrize("value", ["20", "twenty/60", "20/0", "-1/60", "20/1.5", "/60"])
def test_a_malformed_rate_is_a_clear_configuration_error(value: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="RATE_LIMIT_X must look like"):
        rate_parse(value, setting="RATE_LIMIT_X")


def test_a_malformed_rate_setting_stops_the_send(settings: Any) -> None:
    settings.RATE_LIMIT_SEND_USER = "lots"
    with pytest.raises(ImproperlyConfigured, match="RATE_LIMIT_SEND_USER"):
        send_rules(user_id=1, ip=None)


def test_system_checks_report_malformed_limits_and_proxies(settings: Any) -> None:
    assert check_rate_limit_settings() == []
    settings.RATE_LIMIT_LOGIN_IP = "30 per minute"
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "proxy.internal"]
    problems = {problem.id: problem.msg for problem in check_rate_limit_settings()}
    assert problems.keys() == {"ratelimit.E001", "ratelimit.E002"}
    assert "RATE_LIMIT_LOGIN_IP" in problems["ratelimit.E001"]
    assert "proxy.internal" in problems["ratelimit.E002"]


# --- Client addresses -------------------------------------------------------------------------------------


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(settings: Any) -> None:
    settings.TRUSTED_PROXIES = []
    assert client_ip(peer="192.0.2.10", forwarded_for="203.0.113.5") == "192.0.2.10"
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_ip(peer="192.0.2.10", forwarded_for="203.0.113.5") == "192.0.2.10", "not from our proxy"
    assert client_ip(peer="10.0.0.2", forwarded_for="203.0.113.5") == "203.0.113.5"


def test_the_client_is_the_rightmost_address_no_trusted_proxy_wrote(settings: Any) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "192.0.2.1"]
    # The client made up the first entry; our proxies appended the rest.
    chain = "1.2.3.4, 203.0.113.5, 192.0.2.1, 10.1.1.1"
    assert client_ip(peer="10.0.0.2", forwarded_for=chain) == "203.0.113.5"
    assert client_ip(peer="10.0.0.2", forwarded_for="10.1.1.1") == "10.1.1.1", "all hops trusted: the farthest"
    assert client_ip(peer="10.0.0.2", forwarded_for="garbage, 10.1.1.1") == "10.1.1.1"


def test_ipv6_clients_are_limited_per_64_and_mapped_ipv4_as_ipv4(settings: Any) -> None:
    settings.TRUSTED_PROXIES = []
    assert client_ip(peer="2001:db8:1:2:aaaa::1", forwarded_for=None) == "2001:db8:1:2::/64"
    assert client_ip(peer="2001:db8:1:2:bbbb::9", forwarded_for=None) == "2001:db8:1:2::/64"
    assert client_ip(peer="::ffff:192.0.2.7", forwarded_for=None) == "192.0.2.7"
    assert client_ip(peer=None, forwarded_for="203.0.113.5") is None
    assert client_ip(peer="not-an-address", forwarded_for=None) is None


def test_the_socket_address_comes_from_the_asgi_scope(settings: Any) -> None:
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    scope = {"client": ("127.0.0.1", 5000), "headers": [(b"x-forwarded-for", b"203.0.113.77")]}
    assert client_ip_from_scope(scope) == "203.0.113.77"
    assert client_ip_from_scope({"headers": []}) is None


# --- The chat socket --------------------------------------------------------------------------------------


async def open_socket_from(user: User, *, peer: str, forwarded_for: str | None = None) -> Socket:
    from chatproject.asgi import application

    cookie = await sync_to_async(session_cookie_for)(user)
    headers = [
        (b"origin", b"http://testserver"),
        (b"host", b"testserver"),
        (b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode()),
    ]
    if forwarded_for:
        headers.append((b"x-forwarded-for", forwarded_for.encode()))
    communicator = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
    communicator.scope["client"] = (peer, 40000)  # what daphne puts there: the TCP peer
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    return Socket(communicator)


@sync_to_async
def message_count() -> int:
    return Message.objects.count()


async def send_and_finish(sock: Socket, content: str, client_id: str) -> None:
    await sock.send({"type": "send", "content": content, "client_id": client_id})
    await sock.receive_until(lambda f: f["type"] == "done" or f["type"] == "error")


@pytest.mark.django_db(transaction=True)
async def test_a_flood_of_sends_gets_rate_limited_and_the_socket_keeps_working(
    socket: Socket, user: User, settings: Any
) -> None:
    settings.RATE_LIMIT_SEND_USER = "2/60"
    await send_and_finish(socket, "first", "c-1")
    await send_and_finish(socket, "second", "c-2")
    stored = await message_count()
    assert stored == 4

    await socket.send({"type": "send", "content": "third", "client_id": "c-3"})
    refused = await socket.receive()
    assert refused["type"] == "error"
    assert refused["code"] == "rate_limited"
    assert refused["client_id"] == "c-3"
    assert refused["retryable"] is True
    assert isinstance(refused["retry_after"], int) and 1 <= refused["retry_after"] <= 60
    assert refused["message"] == f"You are sending messages too fast. Try again in {refused['retry_after']} s."
    assert await message_count() == stored, "a refused send stores nothing"

    await socket.send({"type": "ping"})
    assert (await socket.receive())["type"] == "pong", "the socket stays usable"
    assert await sync_to_async(limited_subject_clear)(subject=f"send:user:{user.pk}")
    await send_and_finish(socket, "after the limit was lifted", "c-4")
    assert await message_count() == stored + 2


@pytest.mark.django_db(transaction=True)
async def test_sends_from_one_address_share_its_limit(settings: Any) -> None:
    settings.RATE_LIMIT_SEND_USER = ""
    settings.RATE_LIMIT_SEND_IP = "1/60"
    settings.TRUSTED_PROXIES = ["10.0.0.1"]
    alice, bob, carol = await asyncio.gather(
        *(sync_to_async(make_user)(name) for name in ("ip-alice", "ip-bob", "ip-carol"))
    )
    behind_proxy = [
        await open_socket_from(alice, peer="10.0.0.1", forwarded_for="203.0.113.20"),
        await open_socket_from(bob, peer="10.0.0.1", forwarded_for="203.0.113.20"),
        await open_socket_from(carol, peer="10.0.0.1", forwarded_for="203.0.113.21"),
    ]
    try:
        await send_and_finish(behind_proxy[0], "hello", "a-1")
        await behind_proxy[1].send({"type": "send", "content": "hello too", "client_id": "b-1"})
        refused = await behind_proxy[1].receive()
        assert (refused["code"], refused["client_id"]) == ("rate_limited", "b-1")
        assert refused["message"] == f"Too many messages from your network. Try again in {refused['retry_after']} s."
        await behind_proxy[2].send({"type": "send", "content": "hi", "client_id": "c-1"})
        frames = await behind_proxy[2].receive_until(lambda f: f["type"] in ("done", "error"))
        assert frames[-1]["type"] == "done", "another client behind the same proxy has its own limit"
    finally:
        for sock in behind_proxy:
            await sock.close()


# --- The admin: who is limited ----------------------------------------------------------------------------


@pytest.fixture
def staff_client(db: None) -> Client:
    staff = User.objects.create_user(username="ops", password="correct horse battery staple", is_staff=True)
    client = Client()
    client.force_login(staff)
    return client


def limit_user(user: User, *, times: int = 3) -> None:
    """Send as `user` until refused, `times` refusals in all (on Redis's clock, as in production)."""
    rules = [Rule(Action.SEND, Kind.USER, str(user.pk), Rate(1, 600))]
    assert ratelimit_hit(rules).allowed
    for _ in range(times):
        assert not ratelimit_hit(rules).allowed


@pytest.fixture
def limited(user: User) -> Iterator[User]:
    limit_user(user)
    yield user


@pytest.mark.django_db
def test_the_admin_lists_who_is_limited(staff_client: Client, limited: User) -> None:
    [subject] = limited_subjects()
    assert (subject.action, subject.kind, subject.value, subject.refused) == ("send", "user", str(limited.pk), 3)
    assert subject.first_refused <= subject.last_refused < subject.until
    assert subject.rate == "1 per 600 s"

    page = staff_client.get(reverse("admin:conversations_usagerecord_rate_limits"))
    assert page.status_code == 200
    html = page.content.decode()
    assert f'data-subject="send:user:{limited.pk}"' in html
    assert reverse("admin:auth_user_change", args=[limited.pk]) in html
    assert ">alice</a>" in html
    [row] = page.context["rows"]
    assert 590 <= row.seconds_left <= 600


@pytest.mark.django_db
def test_clearing_a_limit_lets_the_subject_in_and_is_recorded(staff_client: Client, limited: User) -> None:
    url = reverse("admin:conversations_usagerecord_rate_limits")
    response = staff_client.post(url, {"subject": f"send:user:{limited.pk}"}, follow=True)
    assert response.status_code == 200
    assert "Cleared the limit" in response.content.decode()
    assert limited_subjects() == []
    assert response.context["rows"] == []
    assert ratelimit_hit([Rule(Action.SEND, Kind.USER, str(limited.pk), Rate(1, 600))]).allowed
    entry = LogEntry.objects.get()
    assert entry.user.username == "ops"
    assert entry.object_id == str(limited.pk)
    assert entry.change_message == f"Cleared the send rate limit on user {limited.pk}."


@pytest.mark.django_db
def test_clearing_an_address_is_recorded_without_an_object(staff_client: Client) -> None:
    rules = [Rule(Action.SIGNUP, Kind.IP, "203.0.113.40", Rate(1, 600))]
    assert ratelimit_hit(rules).allowed
    assert not ratelimit_hit(rules).allowed
    page = staff_client.get(reverse("admin:conversations_usagerecord_rate_limits"))
    assert "203.0.113.40" in page.content.decode()
    staff_client.post(reverse("admin:conversations_usagerecord_rate_limits"), {"subject": "signup:ip:203.0.113.40"})
    assert limited_subjects() == []
    entry = LogEntry.objects.get()
    assert (entry.content_type, entry.object_repr) == (None, "ip 203.0.113.40")


@pytest.mark.django_db
def test_a_bad_subject_is_refused_and_changes_nothing(staff_client: Client, limited: User) -> None:
    url = reverse("admin:conversations_usagerecord_rate_limits")
    for bad in ("", "send:user:", "launch:user:1", "send:planet:1"):
        response = staff_client.post(url, {"subject": bad}, follow=True)
        assert "That is not a rate-limited subject." in response.content.decode()
    assert len(limited_subjects()) == 1
    assert not LogEntry.objects.exists()


@pytest.mark.django_db
def test_people_who_are_not_staff_cannot_see_or_clear_limits(client: Client, limited: User) -> None:
    url = reverse("admin:conversations_usagerecord_rate_limits")
    client.force_login(limited)  # a signed-in user, not staff
    for response in (client.get(url), client.post(url, {"subject": f"send:user:{limited.pk}"})):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    assert len(limited_subjects()) == 1
    assert not LogEntry.objects.exists()


@pytest.mark.django_db
def test_an_expired_limit_leaves_the_list(limited: User) -> None:
    [subject] = limited_subjects()
    assert limited_subjects(now=subject.until.timestamp() + 0.001) == []


@pytest.mark.django_db
def test_the_admin_index_links_the_limited_page(staff_client: Client) -> None:
    html = staff_client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:conversations_usagerecord_rate_limits") in html
