"""OpenAI-compatible fake LLM upstream for tests and benchmarks.

The server speaks just enough of the OpenAI HTTP API (``/v1/models`` and
``/v1/chat/completions``, streaming and not) that litellm or the ``openai`` SDK
can be pointed at it, so the real HTTP + SSE path is exercised instead of a
mocked client. Replies are deterministic (``"tok0 tok1 ... "``) so a client can
check that nothing was lost, duplicated or reordered.

Behaviour is configured by server defaults and can be overridden per request,
either with ``x-fake-*`` headers or with a ``"fake"`` object in the JSON body
(for clients that can only add body fields, e.g. litellm's ``extra_body``).
Precedence: server defaults < body ``"fake"`` < headers.

In-process use (tests)::

    with FakeUpstream(tokens=5) as fake:
        client = AsyncOpenAI(base_url=fake.url, api_key="x")
        ...
        fake.wait_for(lambda s: s["client_disconnects"] == 1)

Stand-alone use (benchmarks)::

    python -m bench.fake_upstream --port 8090 --tokens 200 --token-delay-ms 20
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from types import TracebackType
from typing import Any, Final, Literal, Self, TypedDict

from aiohttp import web

DEFAULT_MODEL: Final = "fake-model"
DEFAULT_TOKENS: Final = 20
DEFAULT_HOST: Final = "127.0.0.1"

JSONObject = dict[str, Any]

# One shared encoder: json.dumps() with non-default separators builds a new
# encoder on every call, which is measurable at 10k chunks/s. Compact
# separators match what OpenAI puts on the wire.
_encode_json: Final = json.JSONEncoder(separators=(",", ":")).encode

_SSE_HEADERS: Final = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
}
_DONE_EVENT: Final = b"data: [DONE]\n\n"

StreamOutcome = Literal["completed", "aborted", "client_disconnect", "cancelled"]


class FakeStats(TypedDict):
    """Counter snapshot returned by ``GET /fake/stats`` and ``FakeUpstream.stats()``."""

    requests: int
    streams_started: int
    streams_completed: int
    streams_aborted: int
    client_disconnects: int
    active_streams: int


class ConfigError(ValueError):
    """A per-request override that cannot be honoured (answered with HTTP 400)."""


@dataclass(frozen=True, slots=True)
class FakeConfig:
    """How the simulated model behaves for one request."""

    tokens: int = DEFAULT_TOKENS
    first_token_delay_ms: float = 0.0
    token_delay_ms: float = 0.0
    # Abort the connection after this many content tokens (None: never).
    fail_after: int | None = None
    # Answer with this HTTP error status instead of a completion (None: never).
    status: int | None = None

    def validate(self) -> Self:
        if self.tokens < 0:
            raise ConfigError("tokens must be >= 0")
        if self.first_token_delay_ms < 0 or self.token_delay_ms < 0:
            raise ConfigError("delays must be >= 0")
        if self.fail_after is not None and self.fail_after < 0:
            raise ConfigError("fail_after must be >= 0")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ConfigError("status must be an HTTP error status (400-599)")
        return self


_INT_FIELDS: Final = frozenset({"tokens", "fail_after", "status"})
_NULLABLE_FIELDS: Final = frozenset({"fail_after", "status"})
_CONFIG_FIELDS: Final = tuple(f.name for f in fields(FakeConfig))
HEADER_PREFIX: Final = "x-fake-"


def _coerce_override(name: str, value: object) -> int | float | None:
    # Headers always arrive as strings and JSON bodies may carry numbers or
    # strings, so both go through one parser to behave identically.
    if value is None and name in _NULLABLE_FIELDS:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"fake override {name!r} must be a number, got {value!r}")
    try:
        if name in _INT_FIELDS:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        return float(value)
    except ValueError as exc:
        raise ConfigError(f"fake override {name!r} is not a valid number: {value!r}") from exc


def _body_overrides(fake: object) -> dict[str, int | float | None]:
    if fake is None:
        return {}
    if not isinstance(fake, dict):
        raise ConfigError('"fake" must be a JSON object')
    overrides: dict[str, int | float | None] = {}
    for raw_key, value in fake.items():
        key = str(raw_key).replace("-", "_")
        if key not in _CONFIG_FIELDS:
            raise ConfigError(f"unknown fake option {raw_key!r}; known: {', '.join(_CONFIG_FIELDS)}")
        overrides[key] = _coerce_override(key, value)
    return overrides


def _header_overrides(headers: Mapping[str, str]) -> dict[str, int | float | None]:
    overrides: dict[str, int | float | None] = {}
    for name in _CONFIG_FIELDS:
        raw = headers.get(HEADER_PREFIX + name.replace("_", "-"))
        if raw is not None and raw.strip():
            overrides[name] = _coerce_override(name, raw.strip())
    return overrides


def resolve_config(defaults: FakeConfig, body_fake: object, headers: Mapping[str, str]) -> FakeConfig:
    """Apply body ``"fake"`` overrides, then header overrides, to the server defaults."""
    merged = {**_body_overrides(body_fake), **_header_overrides(headers)}
    # replace() is typed loosely on purpose: the values were coerced per field above.
    return replace(defaults, **merged).validate()  # type: ignore[arg-type]


# --------------------------------------------------------------------------- state


@dataclass(slots=True)
class _Counters:
    requests: int = 0
    streams_started: int = 0
    streams_completed: int = 0
    streams_aborted: int = 0
    client_disconnects: int = 0
    active_streams: int = 0

    def snapshot(self) -> FakeStats:
        return FakeStats(
            requests=self.requests,
            streams_started=self.streams_started,
            streams_completed=self.streams_completed,
            streams_aborted=self.streams_aborted,
            client_disconnects=self.client_disconnects,
            active_streams=self.active_streams,
        )


class UpstreamState:
    """Counters and the last request, shared by the server loop and test threads.

    Every change notifies a ``threading.Condition`` so tests can block until a
    condition holds instead of sleeping and polling.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._counters = _Counters()
        self._last_request: JSONObject | None = None

    def record_request(self, body: JSONObject | None) -> None:
        with self._cond:
            self._counters.requests += 1
            if body is not None:
                self._last_request = body
            self._cond.notify_all()

    def stream_started(self) -> None:
        with self._cond:
            self._counters.streams_started += 1
            self._counters.active_streams += 1
            self._cond.notify_all()

    def stream_finished(self, outcome: StreamOutcome) -> None:
        with self._cond:
            self._counters.active_streams -= 1
            if outcome == "completed":
                self._counters.streams_completed += 1
            elif outcome == "aborted":
                self._counters.streams_aborted += 1
            elif outcome == "client_disconnect":
                self._counters.client_disconnects += 1
            # "cancelled" (server shutdown) is only visible through active_streams.
            self._cond.notify_all()

    def stats(self) -> FakeStats:
        with self._cond:
            return self._counters.snapshot()

    def reset(self) -> FakeStats:
        """Zero the counters; active_streams is kept because those streams still run."""
        with self._cond:
            self._counters = _Counters(active_streams=self._counters.active_streams)
            self._last_request = None
            self._cond.notify_all()
            return self._counters.snapshot()

    def last_request(self) -> JSONObject | None:
        with self._cond:
            # Deep copy so a test mutating the result cannot race the server.
            return copy.deepcopy(self._last_request)

    def wait_for(self, predicate: Callable[[FakeStats], bool], timeout: float = 5.0) -> FakeStats:
        """Block until ``predicate(stats)`` is true; raise TimeoutError otherwise."""
        with self._cond:
            satisfied = self._cond.wait_for(lambda: predicate(self._counters.snapshot()), timeout)
            snapshot = self._counters.snapshot()
        if not satisfied:
            raise TimeoutError(f"fake upstream condition not met within {timeout}s; stats={snapshot}")
        return snapshot


# ------------------------------------------------------------------ reply model


def token_text(index: int) -> str:
    """The deterministic content of token ``index`` (``"tok0 "``, ``"tok1 "`` ...)."""
    return f"tok{index} "


def expected_content(tokens: int) -> str:
    """The full reply a client should reassemble from ``tokens`` tokens."""
    return "".join(token_text(i) for i in range(tokens))


def _message_words(messages: object) -> int:
    # A rough prompt_tokens: whitespace-separated words of every text part.
    if not isinstance(messages, list):
        return 0
    words = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            words += len(content.split())
        elif isinstance(content, list):
            for part in content:
                text = part.get("text") if isinstance(part, dict) else None
                if isinstance(text, str):
                    words += len(text.split())
    return words


def _completion_limit(body: JSONObject) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


@dataclass(frozen=True, slots=True)
class ReplyPlan:
    """Everything needed to produce one reply, resolved before any I/O."""

    completion_id: str
    created: int
    model: str
    tokens: int
    finish_reason: str
    prompt_tokens: int
    include_usage: bool
    config: FakeConfig

    @classmethod
    def from_request(cls, body: JSONObject, config: FakeConfig, default_model: str) -> ReplyPlan:
        limit = _completion_limit(body)
        truncated = limit is not None and limit < config.tokens
        stream_options = body.get("stream_options")
        model = body.get("model")
        return cls(
            completion_id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=model if isinstance(model, str) and model else default_model,
            tokens=limit if truncated and limit is not None else config.tokens,
            finish_reason="length" if truncated else "stop",
            prompt_tokens=_message_words(body.get("messages")),
            include_usage=isinstance(stream_options, dict) and stream_options.get("include_usage") is True,
            config=config,
        )

    def usage(self, completion_tokens: int) -> JSONObject:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        }

    def completion(self) -> JSONObject:
        return {
            "id": self.completion_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": expected_content(self.tokens), "refusal": None},
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": self.usage(self.tokens),
        }

    def chunk_template(self) -> JSONObject:
        chunk: JSONObject = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": None}],
        }
        if self.include_usage:
            # OpenAI sends "usage": null on every chunk but the last when usage was asked for.
            chunk["usage"] = None
        return chunk


def _sse_event(payload: JSONObject) -> bytes:
    return f"data: {_encode_json(payload)}\n\n".encode()


_ERROR_KINDS: Final[dict[int, tuple[str, str | None]]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def error_response(status: int, message: str) -> web.Response:
    """An error in OpenAI's format, so SDKs map it to their usual exception types."""
    error_type, code = _ERROR_KINDS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return web.json_response(body, status=status)


# ------------------------------------------------------------------ HTTP layer


@dataclass(frozen=True, slots=True)
class ServerSettings:
    defaults: FakeConfig
    models: tuple[str, ...]


STATE_KEY: Final = web.AppKey("fake_upstream_state", UpstreamState)
SETTINGS_KEY: Final = web.AppKey("fake_upstream_settings", ServerSettings)


def _client_gone(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _abort_connection(request: web.BaseRequest) -> None:
    # close() rather than abort(): close() still flushes what was already
    # written, so the client sees exactly `fail_after` tokens before the
    # connection drops without the terminating chunk or [DONE].
    transport = request.transport
    if transport is not None:
        transport.close()


async def _sleep_until(loop: asyncio.AbstractEventLoop, deadline: float) -> None:
    # Absolute deadlines instead of sleeping a fixed delay per token: sleep
    # overshoot (~1 ms timer granularity) would otherwise accumulate and the
    # configured tokens/s would not be the rate actually delivered.
    delay = deadline - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def _read_json_body(request: web.Request) -> JSONObject:
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else None
    except ValueError as exc:
        raise ConfigError(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ConfigError("request body must be a JSON object")
    return body


async def _emit_stream(request: web.Request, resp: web.StreamResponse, plan: ReplyPlan) -> StreamOutcome:
    loop = asyncio.get_running_loop()
    config = plan.config
    chunk = plan.chunk_template()
    choice = chunk["choices"][0]

    choice["delta"] = {"role": "assistant", "content": ""}
    await resp.write(_sse_event(chunk))

    # One delta dict mutated in place: the per-token cost is one str format,
    # one encode and one write.
    content_delta: JSONObject = {"content": ""}
    choice["delta"] = content_delta
    start = loop.time() + config.first_token_delay_ms / 1000
    token_delay = config.token_delay_ms / 1000
    for index in range(plan.tokens):
        if index == config.fail_after:
            _abort_connection(request)
            return "aborted"
        await _sleep_until(loop, start + index * token_delay)
        content_delta["content"] = token_text(index)
        await resp.write(_sse_event(chunk))
    if config.fail_after == plan.tokens:
        # Failing after the last token but before finish_reason is still a failure.
        _abort_connection(request)
        return "aborted"

    choice["delta"] = {}
    choice["finish_reason"] = plan.finish_reason
    await resp.write(_sse_event(chunk))
    if plan.include_usage:
        chunk["choices"] = []
        chunk["usage"] = plan.usage(plan.tokens)
        await resp.write(_sse_event(chunk))
    await resp.write(_DONE_EVENT)
    return "completed"


async def _stream_reply(request: web.Request, state: UpstreamState, plan: ReplyPlan) -> web.StreamResponse:
    resp = web.StreamResponse(headers=_SSE_HEADERS)
    state.stream_started()
    outcome: StreamOutcome = "cancelled"
    try:
        await resp.prepare(request)
        outcome = await _emit_stream(request, resp, plan)
    except ConnectionError:
        # aiohttp raises ClientConnectionResetError from write() once the
        # client has gone; there is nobody left to send an error to.
        outcome = "client_disconnect"
    except asyncio.CancelledError:
        # With handler_cancellation=True aiohttp cancels the handler when the
        # client disconnects (even mid-sleep); a cancel while the transport is
        # still open is a server shutdown instead.
        outcome = "client_disconnect" if _client_gone(request) else "cancelled"
        raise
    finally:
        state.stream_finished(outcome)
    return resp


async def _complete_reply(request: web.Request, plan: ReplyPlan) -> web.StreamResponse:
    config = plan.config
    generation_ms = config.first_token_delay_ms + max(plan.tokens - 1, 0) * config.token_delay_ms
    if generation_ms > 0:
        await asyncio.sleep(generation_ms / 1000)
    if config.fail_after is not None and config.fail_after <= plan.tokens:
        # Without a stream the only way to fail "mid-generation" is to drop
        # the connection before any response bytes.
        _abort_connection(request)
        return web.StreamResponse()
    return web.json_response(plan.completion())


async def handle_chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    settings = request.app[SETTINGS_KEY]
    try:
        body = await _read_json_body(request)
    except ConfigError as exc:
        state.record_request(None)
        return error_response(400, str(exc))
    state.record_request(body)
    try:
        config = resolve_config(settings.defaults, body.get("fake"), request.headers)
    except ConfigError as exc:
        return error_response(400, str(exc))
    if config.status is not None:
        return error_response(config.status, f"Injected upstream failure (status {config.status})")
    plan = ReplyPlan.from_request(body, config, settings.models[0])
    if body.get("stream") is True:
        return await _stream_reply(request, state, plan)
    return await _complete_reply(request, plan)


async def handle_models(request: web.Request) -> web.Response:
    created = int(time.time())
    data = [
        {"id": model, "object": "model", "created": created, "owned_by": "fake"}
        for model in request.app[SETTINGS_KEY].models
    ]
    return web.json_response({"object": "list", "data": data})


async def handle_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].stats())


async def handle_reset(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].reset())


async def handle_last_request(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].last_request())


def create_app(
    defaults: FakeConfig | None = None,
    models: Sequence[str] = (DEFAULT_MODEL,),
    state: UpstreamState | None = None,
) -> web.Application:
    """Build the aiohttp application.

    Serve it with ``handler_cancellation=True`` (as ``FakeUpstream`` and the
    CLI do) so a client disconnect is noticed even while a delay is pending.
    """
    if not models:
        raise ValueError("at least one model id is required")
    app = web.Application()
    app[STATE_KEY] = state if state is not None else UpstreamState()
    app[SETTINGS_KEY] = ServerSettings(defaults=(defaults or FakeConfig()).validate(), models=tuple(models))
    app.router.add_get("/v1/models", handle_models)
    app.router.add_post("/v1/chat/completions", handle_chat_completions)
    app.router.add_get("/fake/stats", handle_stats)
    app.router.add_post("/fake/reset", handle_reset)
    app.router.add_get("/fake/last_request", handle_last_request)
    return app


# ------------------------------------------------------------- in-process runner


class FakeUpstream:
    """The fake server on its own event loop in a background thread.

    Its own loop and thread keep it independent of the test's loop, so a test
    may block (e.g. in ``wait_for``) without stalling the server.
    """

    def __init__(
        self,
        *,
        tokens: int = DEFAULT_TOKENS,
        first_token_delay_ms: float = 0.0,
        token_delay_ms: float = 0.0,
        fail_after: int | None = None,
        status: int | None = None,
        models: Sequence[str] = (DEFAULT_MODEL,),
        host: str = DEFAULT_HOST,
        port: int = 0,
        shutdown_timeout: float = 0.5,
    ) -> None:
        config = FakeConfig(
            tokens=tokens,
            first_token_delay_ms=first_token_delay_ms,
            token_delay_ms=token_delay_ms,
            fail_after=fail_after,
            status=status,
        )
        self.state = UpstreamState()
        self._app = create_app(config, models, self.state)
        self._host = host
        self._port = port
        self._shutdown_timeout = shutdown_timeout
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._startup_error: BaseException | None = None

    @property
    def port(self) -> int:
        if self._thread is None:
            raise RuntimeError("FakeUpstream is not started")
        return self._port

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` (for ``/fake/*``)."""
        return f"http://{self._host}:{self.port}"

    @property
    def url(self) -> str:
        """OpenAI base URL, ``http://127.0.0.1:PORT/v1``."""
        return f"{self.root_url}/v1"

    def start(self, timeout: float = 10.0) -> Self:
        if self._thread is not None:
            raise RuntimeError("FakeUpstream already started")
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="fake-upstream", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("fake upstream did not start in time")
        if self._startup_error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError("fake upstream failed to start") from self._startup_error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and stop_event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop_event.set)
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stats(self) -> FakeStats:
        return self.state.stats()

    def reset(self) -> FakeStats:
        return self.state.reset()

    def last_request(self) -> JSONObject | None:
        return self.state.last_request()

    def wait_for(self, predicate: Callable[[FakeStats], bool], timeout: float = 5.0) -> FakeStats:
        """Block the calling thread until ``predicate(stats)`` holds (TimeoutError otherwise).

        Refuses to run on a thread with a running event loop: asyncio
        finishes a socket close in a later loop callback, so blocking that
        loop would hide the very disconnect being waited for. Use
        ``wait_for_async`` there.
        """
        if _in_running_loop():
            raise RuntimeError("FakeUpstream.wait_for would block the running event loop; use wait_for_async")
        return self.state.wait_for(predicate, timeout)

    async def wait_for_async(
        self,
        predicate: Callable[[FakeStats], bool],
        # A plain timeout, not asyncio.timeout(): it must bound the worker
        # thread's wait, which cancelling this coroutine cannot interrupt.
        timeout: float = 5.0,
    ) -> FakeStats:
        """``wait_for`` for async tests: waits in a worker thread so the test's loop keeps running."""
        return await asyncio.to_thread(self.state.wait_for, predicate, timeout)

    def _run(self, ready: threading.Event) -> None:
        asyncio.run(self._serve(ready))

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        runner = web.AppRunner(
            self._app,
            handler_cancellation=True,
            access_log=None,
            shutdown_timeout=self._shutdown_timeout,
        )
        try:
            await runner.setup()
            await web.TCPSite(runner, self._host, self._port).start()
            self._port = _bound_port(runner)
        except BaseException as exc:  # reported to start()'s caller, then re-raised there
            self._startup_error = exc
            ready.set()
            await runner.cleanup()
            return
        ready.set()
        try:
            await self._stop_event.wait()
        finally:
            await runner.cleanup()


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _bound_port(runner: web.AppRunner) -> int:
    # Port 0 lets the OS pick a free port; read back which one it chose.
    address = runner.addresses[0]
    return int(address[1])


# ------------------------------------------------------------------------ CLI


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_upstream", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--tokens", type=int, default=DEFAULT_TOKENS)
    parser.add_argument("--first-token-delay-ms", type=float, default=0.0)
    parser.add_argument("--token-delay-ms", type=float, default=0.0)
    parser.add_argument("--fail-after", type=int, default=None)
    parser.add_argument("--status", type=int, default=None)
    parser.add_argument("--model", action="append", dest="models", help="model id to list (repeatable)")
    parser.add_argument("--access-log", action="store_true", help="log every request (slows benchmarks)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    defaults = FakeConfig(
        tokens=args.tokens,
        first_token_delay_ms=args.first_token_delay_ms,
        token_delay_ms=args.token_delay_ms,
        fail_after=args.fail_after,
        status=args.status,
    )
    app = create_app(defaults, args.models or [DEFAULT_MODEL])
    run_kwargs: dict[str, Any] = {} if args.access_log else {"access_log": None}
    web.run_app(app, host=args.host, port=args.port, handler_cancellation=True, **run_kwargs)


if __name__ == "__main__":
    main()
