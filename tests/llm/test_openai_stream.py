"""The fast path for OpenAI-compatible servers (chatproject/llm/openai_stream.py), over real HTTP.

The fake upstream covers the ordinary cases (see test_gateway.py, which runs on this path by
default); the servers here misbehave in ways it cannot: events split at every byte, comments
and CRLF line ends, an error event mid-stream, refusals with a provider's own error body.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.fake_upstream import FakeUpstream, expected_content
from chatproject.llm import gateway, openai_stream
from chatproject.llm.config import configured_models, resolve_model
from chatproject.llm.types import LLMError

HELLO = [{"role": "user", "content": "hello"}]


def chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": content} if content is not None else {}
    body = {
        "id": "x",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode()


class Misbehaving:
    """An OpenAI-compatible server with one odd behaviour per path; it records what it was sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.refusals_left = 2

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/bytewise/chat/completions", self.bytewise)
        app.router.add_post("/too-long/chat/completions", self.too_long)
        app.router.add_post("/error-event/chat/completions", self.error_event)
        app.router.add_post("/flaky/chat/completions", self.flaky)
        return app

    async def _record(self, request: web.Request) -> None:
        self.bodies.append(await request.json())
        self.headers.append(dict(request.headers))

    async def _sse(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        return response

    async def bytewise(self, request: web.Request) -> web.StreamResponse:
        """Every byte in its own write, CRLF line ends, a comment, and no usage chunk."""
        await self._record(request)
        response = await self._sse(request)
        events = [b": keep-alive", chunk("Hé"), chunk("llo, "), chunk("wörld"), chunk(finish="stop"), b"data: [DONE]"]
        for event in events:
            for byte in event + b"\r\n\r\n":
                await response.write(bytes([byte]))
        return response

    async def too_long(self, request: web.Request) -> web.Response:
        await self._record(request)
        error = {"message": "This model's maximum context length is 8192 tokens.", "code": "context_length_exceeded"}
        return web.json_response({"error": error}, status=400)

    async def error_event(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        response = await self._sse(request)
        await response.write(chunk("partial ") + b"\n\n")
        await response.write(b'data: {"error": {"message": "overloaded"}}\n\n')
        return response

    async def flaky(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        if self.refusals_left > 0:
            self.refusals_left -= 1
            return web.json_response({"error": {"message": "slow down"}}, status=429)
        response = await self._sse(request)
        await response.write(chunk("third time") + b"\n\n" + chunk(finish="stop") + b"\n\ndata: [DONE]\n\n")
        return response


@pytest.fixture
async def odd() -> AsyncIterator[tuple[Misbehaving, str]]:
    server = Misbehaving()
    test_server = TestServer(server.app(), host="127.0.0.1")
    await test_server.start_server()
    yield server, str(test_server.make_url("")).rstrip("/")
    await test_server.close()


def serve(settings: Any, api_base: str, **extra: Any) -> None:
    settings.LLM_MODEL = "odd"
    settings.LLM_MODELS = [{"name": "odd", "model": "openai/odd-model", "api_base": api_base, "api_key": "k", **extra}]
    configured_models.cache_clear()


async def collect() -> tuple[str, Any]:
    text, last = [], None
    async for delta in gateway.stream(HELLO):  # type: ignore[arg-type]
        text.append(delta.text)
        last = delta
    return "".join(text), last


def test_openai_compatible_models_with_one_deployment_take_the_fast_path(settings: Any) -> None:
    serve(settings, "http://127.0.0.1:9/v1", temperature=0.2, extra_headers={"x-team": "blue"})
    target = openai_stream.target_for(resolve_model("odd"))
    assert target is not None
    assert (target.url, target.model, target.body) == (
        "http://127.0.0.1:9/v1/chat/completions",
        "odd-model",
        {"temperature": 0.2},
    )
    assert (target.headers["Authorization"], target.headers["x-team"]) == ("Bearer k", "blue")


@pytest.mark.parametrize(
    "entry",
    [
        {"model": "anthropic/claude-x", "api_base": "http://127.0.0.1:9"},  # another provider's API
        {"model": "openai/odd-model"},  # no server address: litellm knows the provider's
        {"model": "openai/odd-model", "api_base": "http://127.0.0.1:9", "api_version": "2024-01"},  # litellm's option
        {"model": "openai/odd-model", "api_base": "http://127.0.0.1:9", "fallbacks": ["other"]},  # routed
        {"model": "openai/odd-model", "api_base": "http://127.0.0.1:9", "num_retries": "twice"},  # malformed
    ],
)
def test_other_models_stay_on_litellm(settings: Any, entry: dict[str, Any]) -> None:
    settings.LLM_MODEL = "odd"
    settings.LLM_MODELS = [{"name": "odd", **entry}, {"name": "other", "model": "offline/parley-mini"}]
    configured_models.cache_clear()
    assert openai_stream.target_for(resolve_model("odd")) is None


async def test_events_split_at_every_byte_arrive_whole_and_are_counted(
    settings: Any, odd: tuple[Misbehaving, str]
) -> None:
    server, base = odd
    serve(settings, f"{base}/bytewise", extra_body={"seed": 7})
    text, last = await collect()
    assert text == "Héllo, wörld"
    assert last.finish_reason == "stop"
    # No usage chunk: the reply is counted with the model's tokenizer, never left at zero.
    assert last.usage.completion_tokens == gateway.count_text_tokens("Héllo, wörld")
    sent = server.bodies[-1]
    assert (sent["model"], sent["stream"], sent["stream_options"], sent["seed"]) == (
        "odd-model",
        True,
        {"include_usage": True},
        7,
    )
    assert "metadata" not in sent  # litellm's own field, refused by some servers
    assert server.headers[-1]["Authorization"] == "Bearer k"


async def test_a_too_long_prompt_is_told_as_such(settings: Any, odd: tuple[Misbehaving, str]) -> None:
    serve(settings, f"{odd[1]}/too-long")
    with pytest.raises(LLMError) as caught:
        await collect()
    assert (caught.value.code, caught.value.retryable, caught.value.status) == ("context_length", False, 400)


async def test_an_error_event_mid_stream_fails_after_the_text_it_delivered(
    settings: Any, odd: tuple[Misbehaving, str]
) -> None:
    serve(settings, f"{odd[1]}/error-event")
    received: list[str] = []
    with pytest.raises(LLMError) as caught:
        async for delta in gateway.stream(HELLO):  # type: ignore[arg-type]
            received.append(delta.text)
    assert received == ["partial "]
    assert (caught.value.code, caught.value.retryable) == ("upstream_error", True)


async def test_refusals_are_retried_as_many_times_as_configured(settings: Any, odd: tuple[Misbehaving, str]) -> None:
    server, base = odd
    serve(settings, f"{base}/flaky", num_retries=2)
    text, _ = await collect()
    assert text == "third time"
    assert len(server.bodies) == 3


async def test_a_stalled_server_times_out(settings: Any, upstream_model: FakeUpstream) -> None:
    settings.LLM_MODELS[0].update(timeout=0.3, extra_headers={"x-fake-first-token-delay-ms": "5000"})
    configured_models.cache_clear()
    with pytest.raises(LLMError) as caught:
        await collect()
    assert (caught.value.code, caught.value.retryable) == ("upstream_timeout", True)


async def test_both_paths_give_the_same_reply_and_usage(settings: Any, upstream_model: FakeUpstream) -> None:
    fast_text, fast_last = await collect()
    settings.LLM_FAST_PATH = False
    slow_text, slow_last = await collect()
    assert fast_text == slow_text == expected_content(20)
    assert fast_last.usage == slow_last.usage
    assert (fast_last.finish_reason, fast_last.model) == (slow_last.finish_reason, slow_last.model)
