"""The gateway's fast path: OpenAI-compatible streams read straight off the socket.

litellm costs 0.6–1.1 ms of CPU per streamed chunk (an SDK object per chunk, a rebuilt reply for
its logging, a cross-thread wake-up per chunk), about 1,000 chunks/s per core: less than two
hundred concurrent replies produce. Reading the same server-sent events here costs tens of
microseconds per chunk. So a model with one deployment whose provider speaks OpenAI's chat
completions API (`openai/…`, `hosted_vllm/…` with an `api_base`) is streamed here, and litellm
keeps everything else: other providers, the Router (several deployments, fallbacks, cooldowns),
non-streamed calls, token counting and prices. LLM_FAST_PATH=false sends every model through
litellm.

What a caller sees is the same either way (gateway.stream): text pieces, then usage and the
finish reason; the same LLMError codes for the same failures; closing the generator closes the
upstream connection, so a provider stops generating when the user stops.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.parse
import urllib.request
import weakref
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp

from chatproject.llm.types import LLMError, ModelSpec, Usage

logger = logging.getLogger(__name__)

# Providers read here, with the environment variable litellm takes their key from when the
# configuration gives none (so a deployment behaves the same on either path).
PROVIDER_KEY_ENV: Final = {"openai": "OPENAI_API_KEY", "hosted_vllm": "HOSTED_VLLM_API_KEY"}
# Request fields of OpenAI's chat completions API an LLM_MODELS entry may set (sent as they are).
BODY_PARAMS: Final = frozenset(
    {
        "temperature",
        "top_p",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "response_format",
        "reasoning_effort",
        "top_k",
        "min_p",
        "repetition_penalty",
    }
)
# litellm's own options that this path honours the same way.
OPTION_KEYS: Final = frozenset({"extra_headers", "extra_body", "num_retries", "timeout"})
# Bytes of an error body kept for the log and the message.
ERROR_BODY_LIMIT: Final = 4096
RETRY_BACKOFF_SECONDS: Final = 0.25
CONTEXT_LENGTH_HINTS: Final = ("context_length_exceeded", "maximum context length", "context length", "too many tokens")


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how one model's requests go on the fast path."""

    url: str
    model: str
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)
    retries: int = 0
    timeout: float | None = None
    # The proxy from the environment (HTTPS_PROXY, NO_PROXY…), read once per target, not per request.
    proxy: str | None = None


@dataclass(slots=True)
class StreamResult:
    """What a stream left besides its text."""

    produced: list[str] = field(default_factory=list)
    usage: Usage | None = None
    finish_reason: str | None = None


# Targets by model: settings do not change in a running process (the spec is kept beside its
# target so that a reused id() can never match another spec).
_targets: dict[int, tuple[ModelSpec, Target | None]] = {}


def target_for(spec: ModelSpec) -> Target | None:
    """The fast-path target of a model, or None when litellm must serve it (several deployments
    or fallbacks, another provider, no explicit server address, or options only litellm knows)."""
    known = _targets.get(id(spec))
    if known is not None and known[0] is spec:
        return known[1]
    target = _target(spec)
    _targets[id(spec)] = (spec, target)
    return target


def _target(spec: ModelSpec) -> Target | None:
    if spec.is_routed or not spec.api_base:
        return None
    provider, _, model = spec.litellm_model.partition("/")
    if provider not in PROVIDER_KEY_ENV or not model:
        return None
    extra = dict(spec.extra)
    if any(key not in BODY_PARAMS and key not in OPTION_KEYS for key in extra):
        return None
    api_key = spec.api_key or os.environ.get(PROVIDER_KEY_ENV[provider], "")
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    extra_headers = extra.get("extra_headers") or {}
    extra_body = extra.get("extra_body") or {}
    if not isinstance(extra_headers, dict) or not isinstance(extra_body, dict):
        return None
    headers.update({str(k): str(v) for k, v in extra_headers.items()})
    body = {key: value for key, value in extra.items() if key in BODY_PARAMS}
    body.update(extra_body)
    try:
        retries = max(0, int(str(extra.get("num_retries") or 0)))
        timeout = float(str(extra["timeout"])) if extra.get("timeout") else None
    except ValueError:
        return None  # litellm reports a malformed option its own way
    url = _completions_url(spec.api_base)
    return Target(
        url=url, model=model, headers=headers, body=body, retries=retries, timeout=timeout, proxy=_proxy_for(url)
    )


def _proxy_for(url: str) -> str | None:
    parts = urllib.parse.urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme) or None


def _completions_url(api_base: str) -> str:
    base = api_base.rstrip("/")
    return base if base.endswith("/chat/completions") else f"{base}/chat/completions"


# --- one HTTP client per event loop ----------------------------------------------------------------

_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = weakref.WeakKeyDictionary()


def _session() -> aiohttp.ClientSession:
    """The running loop's client: its connection pool keeps upstream connections open between
    replies (no TCP or TLS handshake per turn). No pool limit: the LLM queue bounds concurrency."""
    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
        session = aiohttp.ClientSession(connector=connector)
        _sessions[loop] = session
    return session


async def close_sessions() -> None:
    """Close the running loop's client (a test's loop, a server shutting down)."""
    loop = asyncio.get_running_loop()
    session = _sessions.pop(loop, None)
    if session is not None:
        await session.close()


# --- streaming --------------------------------------------------------------------------------------


async def stream_text(
    target: Target, request: dict[str, Any], result: StreamResult, *, timeout: float
) -> AsyncGenerator[str, None]:
    """The text pieces of one streamed reply; `result` holds its usage and finish reason after.

    `request` holds the call's own fields (messages, max_tokens, user); None values are left out.
    Closing the generator closes the connection instead of returning it to the pool, so the
    server sees the client go.
    """
    body = {**target.body, **{key: value for key, value in request.items() if value is not None}}
    body.update(model=target.model, stream=True, stream_options={"include_usage": True})
    response = await _open(target, json.dumps(body).encode(), target.timeout or timeout)
    try:
        async for text in _read_events(response, result):
            yield text
    except LLMError:
        raise
    except TimeoutError as exc:
        raise LLMError("upstream_timeout", "The model took too long to answer.", retryable=True, status=504) from exc
    except (aiohttp.ClientError, ValueError) as exc:
        logger.warning("model stream failed: %s: %s", type(exc).__name__, exc)
        raise _broken() from exc
    finally:
        response.close()
    if result.finish_reason is None:
        # A stream that ends without a finish reason was cut, not finished.
        raise LLMError("upstream_cut", "The model's stream ended unexpectedly.", retryable=True)


async def _open(target: Target, payload: bytes, timeout: float) -> aiohttp.ClientResponse:
    """POST the request and wait for its headers, retrying refusals worth retrying."""
    # sock_read bounds each wait for data, not the reply: a long reply may stream for minutes,
    # a stalled one fails after `timeout`.
    limits = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
    attempt = 0
    while True:
        try:
            response = await _session().post(
                target.url, data=payload, headers=target.headers, timeout=limits, proxy=target.proxy
            )
            if response.status < 400:
                return response
            error = await _status_error(response)
        except TimeoutError as exc:
            error = LLMError("upstream_timeout", "The model took too long to answer.", retryable=True, status=504)
            error.__cause__ = exc
        except aiohttp.ClientError as exc:
            logger.warning("model request failed: %s: %s", type(exc).__name__, exc)
            error = _broken()
            error.__cause__ = exc
        if not error.retryable or attempt >= target.retries:
            raise error
        attempt += 1
        await asyncio.sleep(RETRY_BACKOFF_SECONDS * attempt)


def _broken() -> LLMError:
    return LLMError("upstream_error", "The model stopped answering because of an error. Try again.", retryable=True)


async def _status_error(response: aiohttp.ClientResponse) -> LLMError:
    """The product error for an HTTP refusal, as gateway.translate_error maps litellm's."""
    try:
        raw = await response.content.read(ERROR_BODY_LIMIT)
    except aiohttp.ClientError:
        raw = b""
    finally:
        response.close()
    detail = _error_detail(raw)
    status = response.status
    logger.warning("model request refused: HTTP %s: %s", status, detail[:300])
    if status == 429:
        return LLMError("rate_limited", "The model provider is busy. Try again shortly.", retryable=True, status=429)
    if status in (408, 504):
        return LLMError("upstream_timeout", "The model took too long to answer.", retryable=True, status=504)
    if status in (401, 403):
        return LLMError("upstream_auth", "The server's model credentials were refused.", retryable=False, status=502)
    if status in (400, 404, 413, 422):
        if any(hint in detail.lower() for hint in CONTEXT_LENGTH_HINTS):
            return LLMError(
                "context_length", "The conversation is too long for this model.", retryable=False, status=400
            )
        return LLMError("upstream_bad_request", "The model rejected the request.", retryable=False, status=502)
    return LLMError(
        "upstream_error", "The model stopped answering because of an error. Try again.", retryable=True, status=status
    )


def _error_detail(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    try:
        error = json.loads(text).get("error")
    except (ValueError, AttributeError):
        return text
    if isinstance(error, dict):
        return " ".join(str(error.get(key) or "") for key in ("code", "type", "message")).strip()
    return str(error or text)


async def _read_events(response: aiohttp.ClientResponse, result: StreamResult) -> AsyncGenerator[str, None]:
    """Server-sent events, parsed by hand: whatever bytes arrived are split into lines at once,
    so a burst of chunks costs one wake-up, not one per line."""
    pending = b""
    async for data in response.content.iter_any():
        lines = (pending + data).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if not line.startswith(b"data:"):
                continue  # blank separators, comments (": keep-alive"), event names
            payload = line[5:].strip()
            if payload == b"[DONE]":
                return
            text = _take_chunk(json.loads(payload), result)
            if text:
                result.produced.append(text)
                yield text


def _take_chunk(chunk: dict[str, Any], result: StreamResult) -> str | None:
    """One chunk's text; its usage and finish reason go to `result`."""
    if chunk.get("error"):
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else error
        logger.warning("model stream reported an error: %s", str(message)[:300])
        raise _broken()
    usage = chunk.get("usage")
    if usage and usage.get("completion_tokens") is not None:
        result.usage = Usage(int(usage.get("prompt_tokens") or 0), int(usage["completion_tokens"] or 0))
    choices = chunk.get("choices")
    if not choices:
        return None
    choice = choices[0]
    if choice.get("finish_reason"):
        result.finish_reason = choice["finish_reason"]
    delta = choice.get("delta")
    return delta.get("content") if delta else None
