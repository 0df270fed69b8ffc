"""Shared fixtures: real PostgreSQL (pgvector), real Redis channel layer, the offline model."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from bench.fake_upstream import FakeUpstream
from chatproject.llm.config import configured_models
from conversations.models import Message

# One key prefix per test run, so parallel runs (and a dev server) on the same Redis never cross.
settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"test-{uuid.uuid4().hex[:8]}"  # type: ignore[index]
settings.REDIS_KEY_PREFIX = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]  # type: ignore[index]
settings.CACHES["default"]["KEY_PREFIX"] = settings.REDIS_KEY_PREFIX
# Generations write from a thread pool; persistent connections there would outlive the test database.
settings.DATABASES["default"]["CONN_MAX_AGE"] = 0


@pytest.fixture(autouse=True)
def _fast_offline_model(settings: Any) -> Iterator[None]:
    settings.OFFLINE_TOKEN_DELAY = 0.002
    settings.OFFLINE_FIRST_TOKEN_DELAY = 0.0
    settings.CHAT_SNAPSHOT_TIMEOUT = 0.5
    configured_models.cache_clear()
    yield
    configured_models.cache_clear()


@pytest.fixture(autouse=True)
def _tasks_run_inline(settings: Any) -> Iterator[None]:
    """Follow-up tasks run in the process that queues them, unless a test starts a real worker."""
    from chatproject.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    settings.FACTS_DEBOUNCE_SECONDS = 0
    yield
    app.conf.task_always_eager = False


@pytest.fixture(autouse=True)
def _fresh_channel_layer() -> Iterator[None]:
    """Each test runs on its own event loop; a layer bound to a closed loop cannot be reused."""
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
async def _close_upstream_clients() -> AsyncIterator[None]:
    """The fast path's HTTP client belongs to the test's event loop: closed with it."""
    yield
    from chatproject.llm.openai_stream import close_sessions

    await close_sessions()


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> Iterator[None]:
    """Every test starts with no recent attempts: the run's tests share one client address and
    reuse usernames, so windows left by one test would refuse the next."""
    from conversations.limits.ratelimit import ratelimits_reset_all

    ratelimits_reset_all()
    yield


@pytest.fixture
def empty_llm_queue() -> Iterator[None]:
    """No slot or place in line outlives a test (a failed test's held slot would block the next)."""
    from chatproject.redis_client import key, sync_client

    def clear() -> None:
        client = sync_client()
        for name in client.scan_iter(match=key("llmq", "*"), count=500):
            client.delete(name)

    clear()
    yield
    clear()


@pytest.fixture
def long_replies(settings: Any) -> None:
    """Replies of 300 pieces at 10 ms: long enough to stop, drop and resume mid-stream."""
    settings.OFFLINE_PAD_TO_MAX = True
    settings.OFFLINE_MAX_WORDS = 300
    settings.OFFLINE_TOKEN_DELAY = 0.01


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def upstream_model(settings: Any, fake_upstream: FakeUpstream) -> FakeUpstream:
    """Point the default model at the fake OpenAI-compatible server over real HTTP."""
    fake_upstream.reset()
    settings.LLM_MODEL = "fake"
    settings.LLM_MODELS = [
        {"name": "fake", "model": "openai/fake-model", "api_base": fake_upstream.url, "api_key": "test-key"}
    ]
    configured_models.cache_clear()
    return fake_upstream


def make_user(username: str = "alice") -> User:
    return User.objects.create_user(username=username, password="correct horse battery staple")


@pytest.fixture
def user(db: None) -> User:
    return make_user("alice")


@pytest.fixture
def other_user(db: None) -> User:
    return make_user("mallory")


def session_cookie_for(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


class Socket:
    """A WebsocketCommunicator on the real ASGI application, speaking JSON frames."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator

    async def send(self, frame: dict[str, Any] | str) -> None:
        text = frame if isinstance(frame, str) else json.dumps(frame)
        await self.communicator.send_to(text_data=text)

    async def receive(self, timeout: float = 10.0) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(await self.communicator.receive_from(timeout=timeout))
        return frame

    async def receive_until(self, predicate: Any, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Every frame up to and including the first one matching predicate."""
        frames: list[dict[str, Any]] = []
        while True:
            frame = await self.receive(timeout=timeout)
            frames.append(frame)
            if predicate(frame):
                return frames

    async def nothing_pending(self) -> bool:
        return await self.communicator.receive_nothing(timeout=0.05)

    async def close(self) -> None:
        await self.communicator.disconnect()


async def open_socket(user: User | None) -> Socket:
    from chatproject.asgi import application

    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    if user is not None:
        cookie = await sync_to_async(session_cookie_for)(user)
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    communicator = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    return Socket(communicator)


@pytest.fixture
async def socket(user: User) -> AsyncIterator[Socket]:
    sock = await open_socket(user)
    yield sock
    await sock.close()


@pytest.fixture(scope="session", autouse=True)
def _release_worker_connections(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Async code reaches the database from executor threads whose connections outlive the tests;
    end them so the test database can be dropped."""
    yield
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def test_database_url() -> str:
    """The URL of the test database, for servers and workers a test starts in other processes."""
    from urllib.parse import quote

    from django.db import connection

    db = connection.settings_dict
    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{quote(db['NAME'], safe='')}"


test_database_url.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


_NOTIFY_CHANNEL = "test_message_written"


def wait_for_message(message_id: int, condition: Callable[[Message], bool], *, timeout: float = 20.0) -> Message:
    """Block until the message row meets `condition`, written by whatever process writes it (a live
    server, a worker): PostgreSQL notifies this test of every write to the row, so the row is read
    again only when it changed, and the wait fails at the deadline."""
    import psycopg

    with psycopg.connect(test_database_url(), autocommit=True) as listener:
        _notify_message_writes(listener)
        try:
            listener.execute(f"LISTEN {_NOTIFY_CHANNEL}")
            deadline = time.monotonic() + timeout
            while True:
                # Read after LISTEN: a write between the read and the wait still wakes the wait.
                message = Message.objects.get(pk=message_id)
                if condition(message):
                    return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"message {message_id} never met the condition: {message.status} seq {message.seq}")
                for _ in listener.notifies(timeout=remaining, stop_after=1):
                    pass
        finally:
            listener.execute(f"DROP TRIGGER IF EXISTS {_NOTIFY_CHANNEL} ON conversations_message")


def _notify_message_writes(connection: Any) -> None:
    connection.execute(
        f"CREATE OR REPLACE FUNCTION {_NOTIFY_CHANNEL}() RETURNS trigger AS $$ BEGIN "
        f"PERFORM pg_notify('{_NOTIFY_CHANNEL}', NEW.id::text); RETURN NEW; END $$ LANGUAGE plpgsql"
    )
    connection.execute(
        f"CREATE OR REPLACE TRIGGER {_NOTIFY_CHANNEL} AFTER INSERT OR UPDATE ON conversations_message "
        f"FOR EACH ROW EXECUTE FUNCTION {_NOTIFY_CHANNEL}()"
    )
