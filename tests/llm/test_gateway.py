"""The gateway over real HTTP (litellm → the fake OpenAI-compatible server) and in process."""

from __future__ import annotations

from typing import Any

import pytest

from chatproject.llm import gateway
from chatproject.llm.config import configured_models, resolve_model
from chatproject.llm.offline import compose_reply
from chatproject.llm.types import LLMError

HELLO = [{"role": "user", "content": "hello"}]


async def collect(model: str | None = None, **kwargs: Any) -> tuple[str, Any]:
    text, last = [], None
    async for delta in gateway.stream(HELLO, model=model, **kwargs):  # type: ignore[arg-type]
        text.append(delta.text)
        last = delta
    return "".join(text), last


async def test_the_offline_model_streams_a_deterministic_reply() -> None:
    text, last = await collect()
    assert text == compose_reply(HELLO)
    assert last.finish_reason == "stop"
    assert last.usage.completion_tokens > 0
    assert last.model == "offline/parley-mini"


async def test_it_streams_over_http_in_order_with_usage(upstream_model: Any) -> None:
    text, last = await collect()
    assert text == "".join(f"tok{i} " for i in range(20))
    assert (last.usage.prompt_tokens > 0, last.usage.completion_tokens) == (True, 20)
    assert upstream_model.stats()["streams_completed"] == 1


async def test_an_upstream_error_status_becomes_a_product_error(upstream_model: Any, settings: Any) -> None:
    settings.LLM_MODELS[0]["extra_headers"] = {"x-fake-status": "500"}
    configured_models.cache_clear()
    with pytest.raises(LLMError) as caught:
        await collect()
    assert caught.value.code == "upstream_error"
    assert caught.value.retryable


async def test_a_rate_limited_upstream_is_reported_as_retryable(upstream_model: Any, settings: Any) -> None:
    settings.LLM_MODELS[0]["extra_headers"] = {"x-fake-status": "429"}
    settings.LLM_MODELS[0]["num_retries"] = 0
    configured_models.cache_clear()
    with pytest.raises(LLMError) as caught:
        await collect()
    assert (caught.value.code, caught.value.retryable, caught.value.status) == ("rate_limited", True, 429)


async def test_a_cut_stream_raises_after_the_text_it_delivered(upstream_model: Any, settings: Any) -> None:
    settings.LLM_MODELS[0]["extra_headers"] = {"x-fake-fail-after": "3"}
    configured_models.cache_clear()
    received: list[str] = []
    with pytest.raises(LLMError):
        async for delta in gateway.stream(HELLO):  # type: ignore[arg-type]
            received.append(delta.text)
    assert "".join(received) == "tok0 tok1 tok2 "


async def test_closing_the_stream_closes_the_upstream_request(upstream_model: Any, settings: Any) -> None:
    settings.LLM_MODELS[0]["extra_headers"] = {"x-fake-tokens": "1000", "x-fake-token-delay-ms": "10"}
    configured_models.cache_clear()
    stream = gateway.stream(HELLO)  # type: ignore[arg-type]
    first = await anext(stream)
    assert first.text == "tok0 "
    await stream.aclose()
    stats = await upstream_model.wait_for_async(lambda s: s["client_disconnects"] >= 1, timeout=10)
    assert stats["client_disconnects"] == 1
    assert stats["streams_completed"] == 0


def test_unknown_models_are_a_client_error() -> None:
    with pytest.raises(LLMError) as caught:
        resolve_model("no-such-model")
    assert (caught.value.code, caught.value.status) == ("unknown_model", 400)


def test_context_window_comes_from_the_operator_then_litellm(settings: Any) -> None:
    assert gateway.context_window() == 8192
    settings.LLM_MODEL = "openai/gpt-4o-mini"
    settings.LLM_MODELS = []
    configured_models.cache_clear()
    assert gateway.context_window() == 128000
    settings.LLM_CONTEXT_WINDOW = 4096
    configured_models.cache_clear()
    assert gateway.context_window() == 4096


def test_token_counts_use_the_models_tokenizer() -> None:
    assert gateway.count_text_tokens("hello world") == 2
    assert gateway.count_tokens(HELLO) > gateway.count_text_tokens("hello")  # type: ignore[arg-type]


def test_a_requests_count_is_the_sum_of_its_messages() -> None:
    import litellm

    messages = [
        {"role": "system", "content": "You are helpful. " * 20},
        {"role": "user", "content": "What is a monad, in plain words?"},
        {"role": "assistant", "content": "A monad is a way to chain computations that carry context."},
        {"role": "user", "content": "Give an example in Python, please."},
    ]
    assert gateway.count_tokens(messages) == litellm.token_counter(model="gpt-3.5-turbo", messages=messages)  # type: ignore[arg-type]
