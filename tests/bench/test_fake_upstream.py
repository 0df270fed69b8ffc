"""Tests for bench.fake_upstream, driven through real HTTP clients.

Independent of Django: run with ``python -m pytest -p no:django tests/bench``
until the project's pytest config exists.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from bench.fake_upstream import (
    FakeConfig,
    FakeStats,
    FakeUpstream,
    expected_content,
    parse_args,
    resolve_config,
    token_text,
)

# litellm reads these at import time; setting them before any import keeps it
# from reaching for the network (model cost map).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

MESSAGES: list[Any] = [{"role": "user", "content": "say some words please"}]
# Long enough that a stream cannot finish before the client walks away.
ENDLESS: dict[str, Any] = {"fake": {"tokens": 1_000_000, "token_delay_ms": 5}}


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(tokens=5) as upstream:
        yield upstream


@pytest.fixture
async def client(fake: FakeUpstream) -> AsyncIterator[AsyncOpenAI]:
    # max_retries=0: injected 5xx/429 must surface once, not be retried.
    async with AsyncOpenAI(base_url=fake.url, api_key="x", max_retries=0) as sdk_client:
        yield sdk_client


def _disconnected(stats: FakeStats) -> bool:
    return stats["client_disconnects"] == 1 and stats["active_streams"] == 0


async def _stream_tokens(client: AsyncOpenAI, **kwargs: Any) -> list[str]:
    stream = await client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True, **kwargs)
    return [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]


# ---------------------------------------------------------------- openai SDK


async def test_models_lists_configured_ids() -> None:
    with FakeUpstream(models=("alpha", "beta")) as fake:
        async with AsyncOpenAI(base_url=fake.url, api_key="x") as sdk_client:
            models = await sdk_client.models.list()
    assert [m.id for m in models.data] == ["alpha", "beta"]
    assert all(m.owned_by == "fake" for m in models.data)


async def test_non_streaming_reply_and_usage(fake: FakeUpstream, client: AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(model="fake-model", messages=MESSAGES)

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "tok0 tok1 tok2 tok3 tok4 "
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 5
    assert completion.usage.prompt_tokens == 4
    assert completion.usage.total_tokens == 9
    assert fake.last_request() == {"model": "fake-model", "messages": MESSAGES}


async def test_streaming_yields_every_token_once_in_order(fake: FakeUpstream, client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="fake-model", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]

    first, *content, finish, usage_chunk = chunks
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == ""
    assert [c.choices[0].delta.content for c in content] == [token_text(i) for i in range(5)]
    assert finish.choices[0].finish_reason == "stop"
    assert finish.choices[0].delta.content is None
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == 5
    stats = await fake.wait_for_async(lambda s: s["streams_completed"] == 1)
    assert stats["active_streams"] == 0


async def test_streaming_without_include_usage_has_no_usage(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]

    assert all(chunk.usage is None for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_header_override_sets_token_count(client: AsyncOpenAI) -> None:
    tokens = await _stream_tokens(client, extra_headers={"x-fake-tokens": "7"})
    assert "".join(tokens) == expected_content(7)


async def test_body_override_sets_token_count(fake: FakeUpstream, client: AsyncOpenAI) -> None:
    tokens = await _stream_tokens(client, extra_body={"fake": {"tokens": 3}})

    assert "".join(tokens) == expected_content(3)
    last = fake.last_request()
    assert last is not None
    assert last["fake"] == {"tokens": 3}


async def test_max_tokens_truncates_with_finish_reason_length(client: AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(model="fake-model", messages=MESSAGES, max_tokens=2)

    assert completion.choices[0].message.content == expected_content(2)
    assert completion.choices[0].finish_reason == "length"


async def test_fail_after_breaks_stream_after_exact_token_count(fake: FakeUpstream, client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="fake-model", messages=MESSAGES, stream=True, extra_headers={"x-fake-fail-after": "3"}
    )
    received: list[str] = []
    # openai wraps the broken chunked body in APIConnectionError.
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")

    assert "".join(received) == expected_content(3)
    stats = await fake.wait_for_async(lambda s: s["streams_aborted"] == 1)
    assert stats["streams_completed"] == 0
    assert stats["client_disconnects"] == 0


async def test_fail_after_without_stream_drops_connection(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(
            model="fake-model", messages=MESSAGES, extra_body={"fake": {"fail_after": 1}}
        )


async def test_injected_status_500_is_an_api_error(fake: FakeUpstream, client: AsyncOpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as excinfo:
        await client.chat.completions.create(
            model="fake-model", messages=MESSAGES, stream=True, extra_headers={"x-fake-status": "500"}
        )

    assert excinfo.value.status_code == 500
    assert isinstance(excinfo.value, openai.InternalServerError)
    assert fake.stats()["streams_started"] == 0


async def test_injected_status_429_via_body_is_rate_limit(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as excinfo:
        await client.chat.completions.create(
            model="fake-model", messages=MESSAGES, extra_body={"fake": {"status": 429}}
        )

    assert excinfo.value.code == "rate_limit_exceeded"


async def test_invalid_override_is_a_400(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(
            model="fake-model", messages=MESSAGES, extra_headers={"x-fake-tokens": "many"}
        )


async def test_client_closing_stream_early_counts_a_disconnect(fake: FakeUpstream, client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="fake-model", messages=MESSAGES, stream=True, extra_body=ENDLESS
    )
    received = 0
    async for _chunk in stream:
        received += 1
        if received == 3:
            break
    await stream.close()

    stats = await fake.wait_for_async(_disconnected)
    assert stats["streams_completed"] == 0


async def test_disconnect_is_seen_while_server_waits_for_first_token(fake: FakeUpstream) -> None:
    # The server is asleep in the first-token delay, not writing: only
    # aiohttp's handler cancellation can notice the client leaving here.
    headers = {"x-fake-first-token-delay-ms": "600000"}
    body = {"model": "fake-model", "messages": MESSAGES, "stream": True}
    async with (
        httpx.AsyncClient() as http,
        http.stream("POST", f"{fake.url}/chat/completions", json=body, headers=headers) as response,
    ):
        assert response.status_code == 200
        await fake.wait_for_async(lambda s: s["active_streams"] == 1)

    await fake.wait_for_async(_disconnected)


# --------------------------------------------------------- control endpoints


async def test_stats_reset_and_last_request_endpoints(fake: FakeUpstream, client: AsyncOpenAI) -> None:
    await client.chat.completions.create(model="fake-model", messages=MESSAGES)
    async with httpx.AsyncClient(base_url=fake.root_url) as http:
        stats = (await http.get("/fake/stats")).json()
        last = (await http.get("/fake/last_request")).json()
        after_reset = (await http.post("/fake/reset")).json()

    assert stats["requests"] == 1
    assert last["messages"] == MESSAGES
    assert after_reset == fake.stats()
    assert set(after_reset.values()) == {0}
    assert fake.last_request() is None


def test_headers_override_body_which_overrides_defaults() -> None:
    defaults = FakeConfig(tokens=20, token_delay_ms=1)
    config = resolve_config(
        defaults,
        {"tokens": 5, "token-delay-ms": 2, "fail_after": 4},
        {"x-fake-tokens": "9", "x-fake-first-token-delay-ms": "3.5"},
    )
    assert config == FakeConfig(tokens=9, first_token_delay_ms=3.5, token_delay_ms=2.0, fail_after=4)


def test_wait_for_times_out_with_current_stats(fake: FakeUpstream) -> None:
    with pytest.raises(TimeoutError, match="requests"):
        fake.wait_for(lambda s: s["requests"] == 1, timeout=0.01)


async def test_blocking_wait_for_is_refused_inside_an_event_loop(fake: FakeUpstream) -> None:
    with pytest.raises(RuntimeError, match="wait_for_async"):
        fake.wait_for(lambda s: True)


# -------------------------------------------------------------------- litellm


async def _litellm_stream(fake: FakeUpstream, extra_body: dict[str, Any] | None = None) -> Any:
    import litellm  # slow import, only for the tests that need it

    return await litellm.acompletion(
        model="openai/fake-model",
        api_base=fake.url,
        api_key="x",
        messages=MESSAGES,
        stream=True,
        extra_body=extra_body,
    )


async def test_litellm_streams_every_token_in_order(fake: FakeUpstream) -> None:
    response = await _litellm_stream(fake, {"fake": {"tokens": 50}})
    pieces = [chunk.choices[0].delta.content or "" async for chunk in response if chunk.choices]

    assert "".join(pieces) == expected_content(50)
    await fake.wait_for_async(lambda s: s["streams_completed"] == 1)


async def test_litellm_mid_stream_failure_raises_after_exact_token_count(fake: FakeUpstream) -> None:
    from litellm.exceptions import MidStreamFallbackError  # slow import, see above

    response = await _litellm_stream(fake, {"fake": {"fail_after": 3}})
    pieces: list[str] = []
    with pytest.raises(MidStreamFallbackError):
        async for chunk in response:
            pieces.extend(choice.delta.content or "" for choice in chunk.choices)

    assert "".join(pieces) == expected_content(3)
    await fake.wait_for_async(lambda s: s["streams_aborted"] == 1)


async def test_litellm_aclose_on_abandoned_stream_disconnects_upstream(fake: FakeUpstream) -> None:
    response = await _litellm_stream(fake, ENDLESS)
    received = 0
    async for _chunk in response:
        received += 1
        if received == 3:
            break
    # The recipe: CustomStreamWrapper.aclose() (also what `async with` calls).
    # Its sync close() only closes a coroutine it never awaits, so the
    # connection stays open until garbage collection. The socket itself is
    # closed in a later loop callback, hence wait_for_async.
    await response.aclose()

    stats = await fake.wait_for_async(_disconnected)
    assert stats["streams_completed"] == 0


async def test_litellm_cancelled_consumer_disconnects_upstream(fake: FakeUpstream) -> None:
    async def consume_forever() -> None:
        response = await _litellm_stream(fake, ENDLESS)
        async with response:
            async for _chunk in response:
                pass

    task = asyncio.create_task(consume_forever())
    await fake.wait_for_async(lambda s: s["active_streams"] == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await fake.wait_for_async(_disconnected)


def test_cli_flags_map_to_server_defaults() -> None:
    args = parse_args(["--port", "8090", "--tokens", "200", "--token-delay-ms", "20", "--model", "a", "--model", "b"])

    assert (args.host, args.port, args.tokens, args.token_delay_ms, args.first_token_delay_ms) == (
        "127.0.0.1",
        8090,
        200,
        20.0,
        0.0,
    )
    assert args.models == ["a", "b"]
