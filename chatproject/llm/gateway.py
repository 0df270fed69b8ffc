"""The one interface to language models: stream, complete, count tokens, know the window.

litellm does provider translation, token counting and cost. It is imported lazily (3–7 s) and once
per process; `warm_up()` lets a server pay that before its first request instead of during it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncGenerator
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from chatproject.llm.config import OFFLINE_CONTEXT_WINDOW, resolve_model
from chatproject.llm.types import ChatMessage, Delta, LLMError, ModelSpec, Usage

if TYPE_CHECKING:
    from types import ModuleType

logger = logging.getLogger(__name__)

_litellm: ModuleType | None = None
_import_lock = threading.Lock()


def _llm() -> ModuleType:
    """litellm, imported and configured once per process."""
    global _litellm
    if _litellm is None:
        with _import_lock:
            if _litellm is None:
                import litellm

                from chatproject.llm.offline import OfflineLLM

                litellm.custom_provider_map = [{"provider": "offline", "custom_handler": OfflineLLM()}]
                litellm.suppress_debug_info = True
                litellm.drop_params = True
                litellm.telemetry = False
                _litellm = litellm
    return _litellm


def model_name(model: str | None = None) -> str:
    """The litellm model string behind a served model name (the default when None)."""
    return resolve_model(model).litellm_model


def warm_up() -> None:
    """Import litellm in a background thread so the first chat turn does not wait for it."""
    threading.Thread(target=_llm, name="litellm-import", daemon=True).start()


def _call_kwargs(spec: ModelSpec, messages: list[ChatMessage], max_tokens: int | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "model": spec.litellm_model,
        "messages": messages,
        "max_tokens": max_tokens or spec.max_output_tokens,
    }
    if spec.api_base:
        kwargs["api_base"] = spec.api_base
    if spec.api_key:
        kwargs["api_key"] = spec.api_key
    kwargs.update(spec.extra)
    return kwargs


def _timeout() -> float:
    from django.conf import settings

    return float(settings.LLM_REQUEST_TIMEOUT)


async def stream(
    messages: list[ChatMessage],
    *,
    model: str | None = None,
    user: str = "",
    purpose: str = "chat",
    max_tokens: int | None = None,
) -> AsyncGenerator[Delta, None]:
    """Yield the reply piece by piece; the last Delta has finish_reason and usage.

    Closing the generator (aclose, or cancelling the task iterating it) closes the upstream HTTP
    stream, so a provider stops generating (and billing) when the user stops.
    """
    spec = resolve_model(model)
    litellm = _llm()
    kwargs = _call_kwargs(spec, messages, max_tokens)
    started = time.monotonic()
    try:
        response = await litellm.acompletion(
            **kwargs,
            stream=True,
            stream_options={"include_usage": True},
            timeout=_timeout(),
            user=user or None,
            metadata={"purpose": purpose},
        )
    except Exception as exc:  # litellm raises many types; all become one product error
        raise translate_error(exc) from exc
    produced: list[str] = []
    usage: Usage | None = None
    finish_reason: str | None = None
    try:
        async for chunk in response:
            chunk_usage = getattr(chunk, "usage", None)
            if chunk_usage is not None and getattr(chunk_usage, "completion_tokens", None) is not None:
                usage = Usage(int(chunk_usage.prompt_tokens or 0), int(chunk_usage.completion_tokens or 0))
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            text = choice.delta.content if choice.delta is not None else None
            if choice.finish_reason:
                finish_reason = choice.finish_reason
            if text:
                produced.append(text)
                yield Delta(text=text)
    except Exception as exc:
        raise translate_error(exc) from exc
    finally:
        await _close_quietly(response)
    if finish_reason is None:
        # A stream that ends without a finish reason was cut, not finished.
        raise LLMError("upstream_cut", "The model's stream ended unexpectedly.", retryable=True)
    final_usage = usage or Usage(count_tokens(messages, spec.name), count_text_tokens("".join(produced), spec.name))
    final_usage = Usage(final_usage.prompt_tokens, final_usage.completion_tokens, cost_of(spec, final_usage))
    logger.debug("stream %s finished in %.0f ms", spec.name, (time.monotonic() - started) * 1000)
    yield Delta(finish_reason=finish_reason, usage=final_usage, model=spec.litellm_model)


async def complete(
    messages: list[ChatMessage],
    *,
    model: str | None = None,
    user: str = "",
    purpose: str = "chat",
    max_tokens: int | None = None,
) -> tuple[str, Usage]:
    """The whole reply at once, for background work (summaries, fact extraction)."""
    spec = resolve_model(model)
    litellm = _llm()
    try:
        response = await litellm.acompletion(
            **_call_kwargs(spec, messages, max_tokens),
            timeout=_timeout(),
            user=user or None,
            metadata={"purpose": purpose},
        )
    except Exception as exc:
        raise translate_error(exc) from exc
    text = response.choices[0].message.content or ""
    raw = getattr(response, "usage", None)
    usage = Usage(int(getattr(raw, "prompt_tokens", 0) or 0), int(getattr(raw, "completion_tokens", 0) or 0))
    return text, Usage(usage.prompt_tokens, usage.completion_tokens, cost_of(spec, usage))


async def _close_quietly(response: Any) -> None:
    close = getattr(response, "aclose", None)
    if close is None:
        return
    try:
        await close()
    except Exception:  # closing is best effort: the reply is already decided
        logger.debug("closing the upstream stream failed", exc_info=True)


# Chat formats prime every request for the reply with a few tokens, once per request, not per message.
REPLY_PRIMING_TOKENS = 3


def count_tokens(messages: list[ChatMessage], model: str | None = None) -> int:
    """Prompt tokens as the model's tokenizer counts them (litellm falls back to cl100k).

    A request's count is the sum of its messages' counts less the reply priming each single-message
    count includes, so each message is tokenized once and remembered: building a prompt asks about
    the same history turns on every turn of a conversation.
    """
    litellm_model = resolve_model(model).litellm_model
    if not messages:
        return 0
    counts = [_message_tokens(litellm_model, m["role"], m["content"]) for m in messages]
    return sum(counts) - REPLY_PRIMING_TOKENS * (len(counts) - 1)


@lru_cache(maxsize=8192)
def _message_tokens(litellm_model: str, role: str, content: str) -> int:
    message: ChatMessage = {"role": role, "content": content}
    try:
        return int(_llm().token_counter(model=litellm_model, messages=[message]))
    except Exception:  # an unknown tokenizer must not break a turn: estimate instead
        return len(content) // 4 + 4 + REPLY_PRIMING_TOKENS


def count_text_tokens(text: str, model: str | None = None) -> int:
    if not text:
        return 0
    spec = resolve_model(model)
    try:
        return int(_llm().token_counter(model=spec.litellm_model, text=text))
    except Exception:
        return max(1, len(text) // 4)


def context_window(model: str | None = None) -> int:
    """Tokens the model accepts: the operator's override, else litellm's model map."""
    spec = resolve_model(model)
    if spec.context_window:
        return spec.context_window
    if spec.is_offline:
        return OFFLINE_CONTEXT_WINDOW
    try:
        info = _llm().get_model_info(spec.litellm_model)
        window = info.get("max_input_tokens") or info.get("max_tokens")
        return int(window) if window else OFFLINE_CONTEXT_WINDOW
    except Exception:
        return OFFLINE_CONTEXT_WINDOW


def cost_of(spec: ModelSpec, usage: Usage) -> float:
    if spec.is_offline:
        return 0.0
    try:
        prompt_cost, completion_cost = _llm().cost_per_token(
            model=spec.litellm_model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
        )
        return float(prompt_cost + completion_cost)
    except Exception:  # a model missing from the price map costs what the operator did not price
        return 0.0


def translate_error(exc: BaseException) -> LLMError:
    """Map provider exceptions onto the few cases the product explains differently."""
    if isinstance(exc, LLMError):
        return exc
    litellm = _llm()
    exceptions = litellm.exceptions
    status = int(getattr(exc, "status_code", 502) or 502)
    if isinstance(exc, exceptions.RateLimitError):
        return LLMError("rate_limited", "The model provider is busy. Try again shortly.", retryable=True, status=429)
    if isinstance(exc, exceptions.Timeout):
        return LLMError("upstream_timeout", "The model took too long to answer.", retryable=True, status=504)
    if isinstance(exc, exceptions.ContextWindowExceededError):
        return LLMError("context_length", "The conversation is too long for this model.", retryable=False, status=400)
    if isinstance(exc, exceptions.AuthenticationError):
        return LLMError("upstream_auth", "The server's model credentials were refused.", retryable=False, status=502)
    if isinstance(exc, exceptions.BadRequestError):
        return LLMError("upstream_bad_request", "The model rejected the request.", retryable=False, status=502)
    logger.warning("model call failed: %s: %s", type(exc).__name__, exc)
    return LLMError(
        "upstream_error", "The model stopped answering because of an error. Try again.", retryable=True, status=status
    )
