"""The API tests' server: one live daphne per test module, on the test database and this run's Redis.

It shares this test run's Redis key prefix, so the autouse fixture that clears rate-limit windows
before each test clears the server's too. It serves the offline model (the default) and two models
on the fake OpenAI-compatible upstream: `fake` (20 quick tokens), `fake-slow` (400 tokens, 20 ms
apart: long enough to disconnect in the middle), `fake-cut` (dropped after 5 tokens) and
`fake-down` (refuses every request). A module sets `API_SERVER_ENV` for settings of
its own (tighter limits, say). Guardrails are deterministic: a keyword blocks input, another blocks
output while it streams, and the real PII detector redacts input.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from django.conf import settings
from django.contrib.auth.models import User

from bench.fake_upstream import FakeUpstream
from conversations.services.api_keys import api_key_create
from tests.conftest import make_user
from tests.live import LiveServer, running_daphne

BLOCKED_WORD = "forbidden-word"
HALTING_WORD = "halting-word"
SLOW_TOKENS = 400
CUT_AFTER = 5
DEFAULT_MODEL = "offline/parley-mini"

GUARDRAILS = [
    {
        "name": "keyword",
        "path": "tests.e2e.keyword_detector.KeywordDetector",
        "options": {"word": BLOCKED_WORD},
        "actions": {"input": "block"},
    },
    {
        "name": "keyword-out",
        "path": "tests.e2e.keyword_detector.KeywordDetector",
        "options": {"word": HALTING_WORD, "category": "policy"},
        "actions": {"output_inline": "block"},
    },
    {"name": "pii", "path": "moderation.detectors.pii.PIIDetector", "actions": {"input": "redact"}},
    {
        "name": "leakage",
        "path": "moderation.detectors.leakage.LeakageDetector",
        "actions": {"output_inline": "block"},
    },
]


def _models(upstream: FakeUpstream) -> list[dict[str, Any]]:
    common = {"model": "openai/fake-model", "api_base": upstream.url, "api_key": "test-key"}
    return [
        {"name": "fake", **common},
        {
            "name": "fake-slow",
            **common,
            "extra_headers": {"x-fake-tokens": str(SLOW_TOKENS), "x-fake-token-delay-ms": "20"},
        },
        # The connection drops after 5 tokens: a reply cut in the middle.
        {
            "name": "fake-cut",
            **common,
            "extra_headers": {"x-fake-fail-after": str(CUT_AFTER), "x-fake-token-delay-ms": "20"},
        },
        # Refuses every request: a failure before the first token.
        {"name": "fake-down", **common, "extra_headers": {"x-fake-status": "400"}},
    ]


@pytest.fixture(scope="module")
def api_server(
    request: pytest.FixtureRequest,
    django_db_setup: None,
    fake_upstream: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    env = {
        "CHANNEL_LAYER_PREFIX": settings.REDIS_KEY_PREFIX,
        "LLM_MODEL": DEFAULT_MODEL,
        "LLM_MODELS": json.dumps(_models(fake_upstream)),
        "OFFLINE_TOKEN_DELAY": "0.002",
        "MODERATION_DETECTORS": json.dumps(GUARDRAILS),
        "MODERATION_OUTPUT_MODE": "inline",
        # Every test comes from 127.0.0.1: only the per-user send limit applies here.
        "RATE_LIMIT_SEND_IP": "",
        "CELERY_TASK_ALWAYS_EAGER": "true",
        "LOG_LEVEL": "WARNING",
        **getattr(request.module, "API_SERVER_ENV", {}),
    }
    log = tmp_path_factory.mktemp("api") / "daphne.log"
    with running_daphne(env, log) as server:
        yield server


@dataclass(frozen=True)
class Caller:
    """A user with an API key, and clients that use it."""

    user: User
    secret: str
    base_url: str

    def client(self, **options: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=self.secret, max_retries=0, timeout=60, **options)

    def async_client(self, **options: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=self.secret, max_retries=0, timeout=60, **options)

    def post(self, body: bytes | dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
        """A raw request, for what the official client would never send."""
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        auth = {"Authorization": f"Bearer {self.secret}", "Content-Type": "application/json"}
        return httpx.post(
            f"{self.base_url}/chat/completions", content=content, headers={**auth, **(headers or {})}, timeout=60
        )


def new_caller(server: LiveServer, username: str = "alice") -> Caller:
    user = make_user(username)
    _, secret = api_key_create(user=user, name="tests")
    return Caller(user=user, secret=secret, base_url=f"{server.url}/v1")


@pytest.fixture
def caller(api_server: LiveServer, transactional_db: None) -> Caller:
    return new_caller(api_server)


def server_log(server: LiveServer) -> str:
    return Path(server.log).read_text(errors="replace")[-4000:]
