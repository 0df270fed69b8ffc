"""The OpenAI-compatible HTTP API: `POST /v1/chat/completions` and `GET /v1/models` (docs/api.md).

Thin, like the chat socket: authenticate the bearer key, parse the body, apply the send rate
limit, and hand the turn to the web chat's own pipeline (conversations/services/api_turns.py →
turn_prepare, turn_launch). The reply is read from the generation in this process through a local
queue, so a streamed token costs one small string format and one write here: no channel-layer
round trip, no ORM, no re-encoding of anything but the chunk's own text.

A streamed response starts when the first text (or the end) arrives, so a refusal that happens
before any text (a budget, the LLM queue's timeout, an upstream error) is still an HTTP error with
the right status. A client that goes away stops the generation, which closes the upstream request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from chatproject.db_threads import on_db_thread
from chatproject.llm.config import configured_models, resolve_model
from chatproject.llm.types import LLMError
from conversations.events import DeltaEvent, DoneEvent
from conversations.limits.ratelimit import RateLimited, client_ip_from_meta, send_admit_async
from conversations.services.api_keys import Authenticated, AuthenticationFailed, api_key_authenticate
from conversations.services.api_turns import ApiTurn, api_turn_prepare
from conversations.services.messages import TurnRejected
from conversations.services.turns import Generation, PreparedTurn, turn_launch
from memory.context import Turn

logger = logging.getLogger(__name__)

# One shared encoder: json.dumps with options builds a new encoder per call (measurable per token).
_encode: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_STARTED: Final = int(time.time())

STORE_HEADER: Final = "X-Parley-Store"
CONVERSATION_HEADER: Final = "X-Parley-Conversation"
TRUE_VALUES: Final = frozenset({"1", "true", "yes", "on"})
FALSE_VALUES: Final = frozenset({"0", "false", "no", "off", ""})
SYSTEM_ROLES: Final = frozenset({"system", "developer"})
CHAT_ROLES: Final = frozenset({"user", "assistant"})
TEXT_PART_TYPES: Final = frozenset({"text", "input_text"})

# The error `type` OpenAI's clients show, by HTTP status.
_ERROR_TYPES: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}

# HTTP status of each product error code (the codes of TurnRejected, LLMError and done frames).
_CODE_STATUS: Final = {
    "blocked": 403,
    "blocked_output": 403,
    "suspended": 403,
    "not_found": 404,
    "busy": 409,
    "message_too_long": 413,
    "budget_exceeded": 429,
    "queue_timeout": 503,
    # The provider's own rate limit is not the client's doing: the service is busy.
    "rate_limited": 503,
    "interrupted": 503,
    "upstream_timeout": 504,
    "context_length": 400,
    "internal": 500,
}


class ApiError(Exception):
    """An error to answer in OpenAI's format: `{"error": {"message", "type", "code", "param"}}`."""

    def __init__(
        self, status: int, message: str, *, code: str, param: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.retry_after = retry_after

    def payload(self) -> dict[str, dict[str, str | None]]:
        error_type = _ERROR_TYPES.get(self.status, "server_error" if self.status >= 500 else "invalid_request_error")
        if self.code == "budget_exceeded":
            error_type = "insufficient_quota"
        return {"error": {"message": self.message, "type": error_type, "param": self.param, "code": self.code}}

    def response(self) -> JsonResponse:
        response = JsonResponse(self.payload(), status=self.status)
        if self.retry_after is not None:
            response["Retry-After"] = str(self.retry_after)
        if self.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="api"'
        return response


def _invalid(message: str, *, param: str | None = None, code: str = "invalid_request") -> ApiError:
    return ApiError(400, message, code=code, param=param)


def error_for_code(code: str, message: str, *, status: int | None = None, retry_after: int | None = None) -> ApiError:
    return ApiError(status or _CODE_STATUS.get(code, 400), message, code=code, retry_after=retry_after)


# --- authentication ------------------------------------------------------------------------------


async def _authenticate(request: HttpRequest) -> Authenticated:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if not header:
        raise ApiError(
            401, "You didn't provide an API key: send it as `Authorization: Bearer <key>`.", code="missing_api_key"
        )
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "Send the API key as `Authorization: Bearer <key>`.", code="invalid_api_key")
    try:
        return await on_db_thread(api_key_authenticate)(secret=secret.strip())
    except AuthenticationFailed as exc:
        raise ApiError(401, exc.message, code="invalid_api_key") from None


# --- parsing a chat-completions request --------------------------------------------------------


@dataclass(frozen=True)
class ChatRequest:
    turn: ApiTurn
    stream: bool
    include_usage: bool


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text_of(content: object, param: str) -> str:
    """A message's text: a string, or OpenAI's list of content parts when every part is text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for index, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in TEXT_PART_TYPES or not isinstance(part.get("text"), str):
                raise _invalid(
                    'Only text content is supported: each content part must be {"type": "text", "text": ...}.',
                    param=f"{param}[{index}]",
                    code="unsupported_content",
                )
            texts.append(part["text"])
        return "\n".join(texts)
    raise _invalid("A message's content must be a string or a list of text parts.", param=param)


def _messages(value: object) -> tuple[str, tuple[Turn, ...], str]:
    """(instructions, history, the last user message) from the `messages` list."""
    if not isinstance(value, list) or not value:
        raise _invalid("`messages` must be a non-empty list.", param="messages")
    instructions: list[str] = []
    turns: list[Turn] = []
    for index, message in enumerate(value):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise _invalid("Each message must be an object with a role and content.", param=param)
        role = message.get("role")
        if not isinstance(role, str) or role not in SYSTEM_ROLES | CHAT_ROLES:
            shown = role if isinstance(role, str) else type(role).__name__
            raise _invalid(
                f"Unsupported role {str(shown)[:40]!r}: use system, developer, user or assistant (no tools).",
                param=f"{param}.role",
                code="unsupported_role",
            )
        text = _text_of(message.get("content"), f"{param}.content")
        if role in SYSTEM_ROLES:
            if text.strip():
                instructions.append(text)
        else:
            turns.append(Turn(role, text))
    if not turns or turns[-1].role != "user":
        raise _invalid(
            "The last user or assistant message must be the user's: it is the one answered.", param="messages"
        )
    return "\n\n".join(instructions), tuple(turns[:-1]), turns[-1].content


def _optional_bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _invalid(f"`{name}` must be true or false.", param=name)
    return value


def _max_tokens(body: dict[str, Any], model_cap: int) -> int | None:
    """The reply's cap: max_completion_tokens or max_tokens, never above the model's own cap."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not _is_int(value) or value < 1:
            raise _invalid(f"`{name}` must be a positive integer.", param=name)
        return min(int(value), model_cap)
    return None


def _unsupported(body: dict[str, Any]) -> None:
    """Refuse what would silently change the meaning of the answer; other parameters are ignored."""
    n = body.get("n")
    if n is not None and (not _is_int(n) or n != 1):
        raise _invalid(
            "Only one choice per request is supported (`n` must be 1).", param="n", code="unsupported_parameter"
        )
    for name in ("tools", "functions"):
        if body.get(name):
            raise _invalid(f"`{name}` (tool calling) is not supported.", param=name, code="unsupported_parameter")
    if body.get("tool_choice") not in (None, "none"):
        raise _invalid("`tool_choice` is not supported.", param="tool_choice", code="unsupported_parameter")
    if body.get("logprobs") not in (None, False):
        raise _invalid("`logprobs` is not supported.", param="logprobs", code="unsupported_parameter")
    response_format = body.get("response_format")
    if response_format is not None and response_format != {"type": "text"}:
        raise _invalid(
            "Only the text response format is supported.", param="response_format", code="unsupported_parameter"
        )


def _store_header(value: str | None) -> bool:
    if value is None:
        return False
    flag = value.strip().lower()
    if flag not in TRUE_VALUES | FALSE_VALUES:
        raise _invalid(f"{STORE_HEADER} must be true or false.", param=STORE_HEADER)
    return flag in TRUE_VALUES


def _conversation_header(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise _invalid(f"{CONVERSATION_HEADER} must be a conversation id.", param=CONVERSATION_HEADER) from None


def parse_chat_request(raw: bytes, *, store: str | None = None, conversation: str | None = None) -> ChatRequest:
    """Validate a request body (and the product's two headers) into the turn to run.

    Raises ApiError (400) naming the offending parameter. Parameters that cannot change what the
    pipeline does (temperature, top_p, seed, stop, user, ...) are accepted and ignored.
    """
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _invalid("The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.", code="invalid_json")
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise _invalid("You must provide a model: one of the names `GET /v1/models` lists.", param="model")
    try:
        spec = resolve_model(name)
    except LLMError:
        raise _invalid(
            f"The model {name[:100]!r} is not served here; see `GET /v1/models`.", param="model", code="model_not_found"
        ) from None
    instructions, history, content = _messages(body.get("messages"))
    stream = _optional_bool(body, "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _invalid("`stream_options` must be an object.", param="stream_options")
    include_usage = bool(options) and _optional_bool(options or {}, "include_usage")
    _unsupported(body)
    return ChatRequest(
        turn=ApiTurn(
            model=spec.name,
            content=content,
            instructions=instructions,
            history=history,
            max_tokens=_max_tokens(body, spec.max_output_tokens),
            store=_store_header(store),
            conversation_id=_conversation_header(conversation),
        ),
        stream=stream,
        include_usage=include_usage and stream,
    )


def _read_body(request: HttpRequest) -> bytes:
    limit = int(settings.API_MAX_REQUEST_BYTES)
    too_large = ApiError(
        413, f"The request body is larger than this server accepts ({limit:,} bytes).", code="request_too_large"
    )
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    data = request.read(limit + 1)
    if len(data) > limit:
        raise too_large
    return data


# --- answers -------------------------------------------------------------------------------------


def _finish_reason(generation: Generation, done: DoneEvent) -> str:
    if done["status"] == "blocked":
        return "content_filter"
    return generation.finish_reason or "stop"


def _usage(done: DoneEvent) -> dict[str, int]:
    usage = done["usage"] or {"prompt_tokens": 0, "completion_tokens": 0}
    return {
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
        "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"],
    }


UNEXPECTED_END: Final = "The reply ended before it was finished."


def _failure(done: DoneEvent | None) -> ApiError | None:
    """The HTTP error for a reply that ended without a usable answer, or None if it has one: a
    whole reply, one stopped (from the web chat), or the part that passed the output guardrails."""
    if done is None:
        return ApiError(500, UNEXPECTED_END, code="internal")
    status = done["status"]
    if status in ("complete", "stopped") or (status == "blocked" and done["content"]):
        return None
    error = done.get("error") or {"code": status, "message": UNEXPECTED_END, "retryable": True}
    return error_for_code(error["code"], error["message"], status=_CODE_STATUS.get(error["code"], 502))


@dataclass(frozen=True)
class _Reply:
    completion_id: str
    created: int
    model: str
    headers: dict[str, str]


class _Chunks:
    """The SSE events of one streamed reply. Everything but the text is encoded once, up front."""

    DONE: Final = b"data: [DONE]\n\n"

    def __init__(self, reply: _Reply, *, include_usage: bool) -> None:
        head = _encode(
            {
                "id": reply.completion_id,
                "object": "chat.completion.chunk",
                "created": reply.created,
                "model": reply.model,
                "system_fingerprint": None,
            }
        )[:-1]
        self._head = head
        usage = ',"usage":null' if include_usage else ""
        self._open = f'data: {head}{usage},"choices":[{{"index":0,"delta":'.encode()
        self._close = b',"logprobs":null,"finish_reason":null}]}\n\n'

    def role(self) -> bytes:
        return self._open + b'{"role":"assistant","content":""}' + self._close

    def text(self, text: str) -> bytes:
        return self._open + b'{"content":' + _encode(text).encode() + b"}" + self._close

    def finish(self, reason: str) -> bytes:
        return self._open + b"{}" + f',"logprobs":null,"finish_reason":{_encode(reason)}}}]}}\n\n'.encode()

    def usage(self, usage: dict[str, int]) -> bytes:
        return f'data: {self._head},"choices":[],"usage":{_encode(usage)}}}\n\n'.encode()

    @staticmethod
    def error(error: ApiError) -> bytes:
        """OpenAI's way to fail a stream that has started: an event holding only an error."""
        return b"data: " + _encode(error.payload()).encode() + b"\n\n"


async def _events(
    generation: Generation,
    frames: asyncio.Queue[DeltaEvent | DoneEvent | None],
    first: DeltaEvent | DoneEvent | None,
    chunks: _Chunks,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    """The response body. If the client goes away (Django cancels the response or closes this
    iterator), the generation is stopped: the upstream request is closed, the text kept."""
    ended = False
    try:
        yield chunks.role()
        frame = first
        while frame is not None and frame["type"] == "delta":
            yield chunks.text(frame["text"])
            frame = await frames.get()
        ended = True
        failure = _failure(frame)
        if failure is not None or frame is None:
            yield _Chunks.error(failure or ApiError(500, UNEXPECTED_END, code="internal"))
            return
        yield chunks.finish(_finish_reason(generation, frame))
        if include_usage:
            yield chunks.usage(_usage(frame))
        yield chunks.DONE
    finally:
        if not ended:
            generation.request_stop()


async def _first_frame(
    generation: Generation, frames: asyncio.Queue[DeltaEvent | DoneEvent | None]
) -> DeltaEvent | DoneEvent | None:
    """The first delta or the end, or the text published before we listened as one delta."""
    snapshot = generation.snapshot()
    if snapshot["seq"]:
        return {
            "type": "delta",
            "conversation_id": snapshot["conversation_id"],
            "message_id": snapshot["message_id"],
            "seq": snapshot["seq"],
            "text": snapshot["content"],
        }
    return await frames.get()


async def _until_done(frames: asyncio.Queue[DeltaEvent | DoneEvent | None]) -> DoneEvent | None:
    while True:
        frame = await frames.get()
        if frame is None or frame["type"] == "done":
            return frame


def _completion(reply: _Reply, generation: Generation, done: DoneEvent) -> JsonResponse:
    body = {
        "id": reply.completion_id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": done["content"], "refusal": None},
                "logprobs": None,
                "finish_reason": _finish_reason(generation, done),
            }
        ],
        "usage": _usage(done),
    }
    response = JsonResponse(body)
    for name, value in reply.headers.items():
        response[name] = value
    return response


async def _answer(generation: Generation, reply: _Reply, chat: ChatRequest) -> HttpResponseBase:
    frames = generation.listen()
    try:
        if not chat.stream:
            done = await _until_done(frames)
            failure = _failure(done)
            if failure is not None or done is None:
                return (failure or ApiError(500, UNEXPECTED_END, code="internal")).response()
            return _completion(reply, generation, done)
        first = await _first_frame(generation, frames)
    except asyncio.CancelledError:
        generation.request_stop()  # the client went away before the answer started
        raise
    if first is None or first["type"] == "done":
        failure = _failure(first)
        if failure is not None:
            return failure.response()
    response = StreamingHttpResponse(
        _events(generation, frames, first, _Chunks(reply, include_usage=chat.include_usage), chat.include_usage),
        content_type="text/event-stream; charset=utf-8",
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy must pass each event on at once
    for name, value in reply.headers.items():
        response[name] = value
    return response


def _rejected(exc: TurnRejected) -> ApiError:
    return error_for_code(exc.code, exc.message, retry_after=exc.retry_after if exc.code == "budget_exceeded" else None)


async def _prepare(request: HttpRequest) -> tuple[ChatRequest, PreparedTurn]:
    """Authenticate, parse, admit and prepare the turn; every refusal as an ApiError."""
    caller = await _authenticate(request)
    chat = parse_chat_request(
        _read_body(request),
        store=request.headers.get(STORE_HEADER),
        conversation=request.headers.get(CONVERSATION_HEADER),
    )
    try:
        # Before any database work, as the chat socket does: a flood costs one Redis call each.
        await send_admit_async(user_id=caller.user.pk, ip=client_ip_from_meta(request.META))
        prepared = await on_db_thread(api_turn_prepare)(user=caller.user, turn=chat.turn)
    except RateLimited as exc:
        raise ApiError(429, exc.message, code="rate_limit_exceeded", retry_after=exc.retry_after) from None
    except TurnRejected as exc:
        raise _rejected(exc) from None
    except LLMError as exc:
        raise error_for_code(exc.code, exc.message, status=exc.status) from None
    return chat, prepared


@csrf_exempt
async def chat_completions(request: HttpRequest) -> HttpResponseBase:
    """`POST /v1/chat/completions`, streamed (SSE) or not."""
    if request.method != "POST":
        return ApiError(405, "Use POST for /v1/chat/completions.", code="method_not_allowed").response()
    try:
        chat, prepared = await _prepare(request)
        generation = await turn_launch(prepared)
    except ApiError as exc:
        return exc.response()
    except Exception:
        logger.exception("an API turn failed")
        return ApiError(500, "Something went wrong on the server. Try again.", code="internal").response()
    if generation is None:
        return ApiError(403, prepared.input_verdict.explanation(), code="blocked").response()
    conversation = prepared.start.conversation
    headers = {} if conversation.deleted_at is not None else {CONVERSATION_HEADER: str(conversation.pk)}
    reply = _Reply(
        completion_id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=prepared.model, headers=headers
    )
    return await _answer(generation, reply, chat)


def _model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": _STARTED, "owned_by": str(settings.SITE_NAME).lower()}


async def models_list(request: HttpRequest) -> HttpResponseBase:
    """`GET /v1/models`: the models this deployment serves, the default first."""
    if request.method != "GET":
        return ApiError(405, "Use GET for /v1/models.", code="method_not_allowed").response()
    try:
        await _authenticate(request)
    except ApiError as exc:
        return exc.response()
    return JsonResponse({"object": "list", "data": [_model_object(spec.name) for spec in configured_models()]})


async def model_detail(request: HttpRequest, model: str) -> HttpResponseBase:
    """`GET /v1/models/<name>`."""
    if request.method != "GET":
        return ApiError(405, "Use GET for /v1/models/<model>.", code="method_not_allowed").response()
    try:
        await _authenticate(request)
    except ApiError as exc:
        return exc.response()
    if model not in {spec.name for spec in configured_models()}:
        return ApiError(404, f"The model {model[:100]!r} is not served here.", code="model_not_found").response()
    return JsonResponse(_model_object(model))


@csrf_exempt
async def not_found(request: HttpRequest, path: str = "") -> HttpResponseBase:
    """Any other /v1/ path, answered in the API's format rather than as an HTML page."""
    return ApiError(404, f"Unknown endpoint /v1/{path[:100]}.", code="unknown_endpoint").response()
