"""The one interface to language models: stream, complete, count tokens, know the window.

litellm does provider translation, token counting and cost. It is imported lazily (3–7 s) and once
per process; `warm_up()` lets a server pay that before its first request instead of during it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from chatproject.llm import openai_stream
from chatproject.llm.config import (
    OFFLINE_CONTEXT_WINDOW,
    RouterSettings,
    configured_models,
    deployment_by_id,
    resolve_model,
    router_settings,
)
from chatproject.llm.types import (
    ChatMessage,
    Delta,
    Deployment,
    LLMError,
    ModelSpec,
    PromptMessage,
    Usage,
    message_image_count,
    message_text,
)

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


async def _imported() -> None:
    """Wait for litellm's import off the event loop: a first turn right after a process starts
    would otherwise hold the loop for seconds, and with it every socket and heartbeat of the node."""
    if _litellm is None:
        await asyncio.to_thread(_llm)


def warm_up() -> None:
    """Import litellm in a background thread so the first chat turn does not wait for it."""
    threading.Thread(target=_llm, name="litellm-import", daemon=True).start()


def _target_kwargs(spec: ModelSpec) -> dict[str, Any]:
    """Where a direct call goes: the model's one deployment (the Router knows its own)."""
    kwargs: dict[str, Any] = {"model": spec.litellm_model}
    if spec.api_base:
        kwargs["api_base"] = spec.api_base
    if spec.api_key:
        kwargs["api_key"] = spec.api_key
    kwargs.update(spec.extra)
    return kwargs


def _timeout() -> float:
    from django.conf import settings

    return float(settings.LLM_REQUEST_TIMEOUT)


@dataclass
class _StreamState(openai_stream.StreamResult):
    """What a stream left behind besides its text (its text, usage and finish reason, as the fast
    path records them), and who answered."""

    answered_by: str = ""
    priced_as: str = ""


async def stream(
    messages: Sequence[ChatMessage | PromptMessage],
    *,
    model: str | None = None,
    user: str = "",
    purpose: str = "chat",
    max_tokens: int | None = None,
) -> AsyncGenerator[Delta, None]:
    """Yield the reply piece by piece; the last Delta has finish_reason, usage and the model that
    answered.

    Closing the generator (aclose, or cancelling the task iterating it) closes the upstream HTTP
    stream, so a provider stops generating (and billing) when the user stops.
    """
    spec = resolve_model(model)
    await _imported()
    request = {
        "messages": list(messages),
        "max_tokens": max_tokens or spec.max_output_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": user or None,
        "metadata": {"purpose": purpose},
    }
    state = _StreamState(answered_by=spec.litellm_model, priced_as=spec.litellm_model)
    started = time.monotonic()
    target = _fast_target(spec)
    if target is not None:
        pieces = _fast_pieces(target, request, state)
    elif spec.is_routed:
        pieces = _routed_pieces(spec, request, state)
    else:
        pieces = _direct_pieces({**request, **_target_kwargs(spec)}, state)
    async with contextlib.aclosing(pieces):
        async for text in pieces:
            yield Delta(text=text)
    usage = state.usage or Usage(
        count_tokens(messages, spec.name), count_text_tokens("".join(state.produced), spec.name)
    )
    usage = Usage(usage.prompt_tokens, usage.completion_tokens, _cost(state.priced_as, usage))
    logger.debug("stream %s finished in %.0f ms", state.answered_by, (time.monotonic() - started) * 1000)
    yield Delta(finish_reason=state.finish_reason, usage=usage, model=state.answered_by)


def _fast_target(spec: ModelSpec) -> openai_stream.Target | None:
    from django.conf import settings

    return openai_stream.target_for(spec) if settings.LLM_FAST_PATH else None


async def _fast_pieces(
    target: openai_stream.Target, request: dict[str, Any], state: _StreamState
) -> AsyncGenerator[str, None]:
    """An OpenAI-compatible server read directly (chatproject/llm/openai_stream.py): litellm's
    per-chunk cost is most of a relay's CPU at a few hundred concurrent replies."""
    call = {key: request[key] for key in ("messages", "max_tokens", "user")}
    texts = openai_stream.stream_text(target, call, state, timeout=_timeout())
    async with contextlib.aclosing(texts):
        async for text in texts:
            yield text


async def _direct_pieces(call: dict[str, Any], state: _StreamState) -> AsyncGenerator[str, None]:
    """One deployment: litellm is called directly, with no Router bookkeeping per request."""
    try:
        response = await _llm().acompletion(**call, timeout=_timeout())
    except Exception as exc:  # litellm raises many types; all become one product error
        raise translate_error(exc) from exc
    async with contextlib.aclosing(_relay(response, state)) as texts:
        async for text in texts:
            yield text


async def _relay(response: Any, state: _StreamState) -> AsyncGenerator[str, None]:
    """The text of a litellm stream, noting its usage and finish reason; always closes it."""
    try:
        async for chunk in response:
            chunk_usage = getattr(chunk, "usage", None)
            if chunk_usage is not None and getattr(chunk_usage, "completion_tokens", None) is not None:
                state.usage = Usage(int(chunk_usage.prompt_tokens or 0), int(chunk_usage.completion_tokens or 0))
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            text = choice.delta.content if choice.delta is not None else None
            if choice.finish_reason:
                state.finish_reason = choice.finish_reason
            if text:
                state.produced.append(text)
                yield text
    except Exception as exc:
        raise translate_error(exc) from exc
    finally:
        await _close_quietly(response)
    if state.finish_reason is None:
        # A stream that ends without a finish reason was cut, not finished.
        raise LLMError("upstream_cut", "The model's stream ended unexpectedly.", retryable=True)


# --- the Router: several deployments, retries, fallbacks, cooldowns ---------------------------------

_router_lock = threading.Lock()
_router_built: tuple[tuple[ModelSpec, ...], RouterSettings, Any] | None = None


def _router() -> Any:
    """litellm's Router over every served model, built once per configuration and process.

    Its cooldowns and load figures live in this process: each node learns of a failing deployment
    from its own requests.
    """
    global _router_built
    models, options = configured_models(), router_settings()
    with _router_lock:
        built = _router_built
        if built is None or built[0] is not models or built[1] != options:
            _llm()
            from litellm import Router

            router = Router(
                model_list=[_router_entry(d) for spec in models for d in spec.deployments],
                fallbacks=[{spec.name: list(spec.fallbacks)} for spec in models if spec.fallbacks],
                routing_strategy=options.strategy,
                num_retries=options.retries,
                allowed_fails=options.allowed_fails,
                cooldown_time=options.cooldown_seconds,
                timeout=options.timeout,
            )
            built = _router_built = (models, options, router)
    return built[2]


def _router_entry(deployment: Deployment) -> dict[str, Any]:
    params: dict[str, Any] = {"model": deployment.litellm_model, **deployment.extra}
    if deployment.api_base:
        params["api_base"] = deployment.api_base
    if deployment.api_key:
        params["api_key"] = deployment.api_key
    return {"model_name": deployment.model_name, "litellm_params": params, "model_info": {"id": deployment.id}}


async def _routed_pieces(spec: ModelSpec, request: dict[str, Any], state: _StreamState) -> AsyncGenerator[str, None]:
    """Stream through the Router. It retries and falls back on errors met while a request opens;
    a stream that fails before its first token is taken over here (see `_Failover`). After the
    first token a failure ends the reply: a second answer is never spliced onto the first."""
    router = _router()
    failover = _Failover(spec=spec, router=router, retries_left=router_settings().retries)
    group = spec.name
    while True:
        try:
            response = await router.acompletion(model=group, **request)
        except Exception as exc:  # the Router has spent its retries and fallbacks
            raise translate_error(exc) from exc
        try:
            # aclosing: closing this generator (the user stopped) must close the upstream stream now.
            async with contextlib.aclosing(_relay(response, state)) as texts:
                async for text in texts:
                    yield text
            _note_answer(state, response)
            return
        except LLMError as error:
            failed = _answering_deployment(response)
            if state.produced or not error.retryable or failed is None:
                raise
            next_group = failover.after(failed, error)
            if next_group is None:
                raise
            logger.warning(
                "deployment %s failed before its first token (%s); trying %s", failed.id, error.code, next_group
            )
            group = next_group


def _answering_deployment(response: Any) -> Deployment | None:
    # The Router stamps the id of the deployment that served a response (and re-stamps it when a
    # fallback takes a stream over) in litellm's hidden params.
    hidden = getattr(response, "_hidden_params", None) or {}
    deployment_id = hidden.get("model_id")
    return deployment_by_id(str(deployment_id)) if deployment_id else None


def _note_answer(state: _StreamState, response: Any) -> None:
    deployment = _answering_deployment(response)
    if deployment is not None:
        state.answered_by = deployment.label
        state.priced_as = deployment.litellm_model


@dataclass
class _Failover:
    """Where a routed stream goes after a deployment failed it before its first token.

    litellm's Router retries and falls back on errors it meets while a request opens (a refusal,
    a connection error, no response headers in time). A deployment that answered with headers and
    then stalled or dropped before any text fails later, in litellm's stream wrapper, which (in the
    pinned version, measured) neither retries such a failure on the same model nor falls back on a
    timeout, and cools the deployment down only for some errors. So the gateway carries on: the
    deployment is cooled down at once (every such failure costs a person a whole timeout), the
    same model is asked again while it has a deployment in rotation and retries are left, then
    the model's fallbacks in order.
    """

    spec: ModelSpec
    router: Any
    retries_left: int
    attempts: int = 0

    def after(self, failed: Deployment, error: LLMError) -> str | None:
        self.attempts += 1
        self._cool_down(failed, error)
        chain = [self.spec.name, *self.spec.fallbacks]
        # Bounded even if the fallbacks of a fallback lead back to a model already tried.
        if self.attempts > len(chain) + router_settings().retries:
            return None
        if self.retries_left > 0 and self._in_rotation(failed.model_name):
            self.retries_left -= 1
            return failed.model_name
        position = chain.index(failed.model_name) if failed.model_name in chain else len(chain)
        return next((name for name in chain[position + 1 :] if self._in_rotation(name)), None)

    def _cool_down(self, failed: Deployment, error: LLMError) -> None:
        self.router.health().cooldowns.add_deployment_to_cooldown(
            failed.id, error, error.status, router_settings().cooldown_seconds
        )

    def _in_rotation(self, model_name: str) -> bool:
        ids = [d.id for d in resolve_model(model_name).deployments]
        cooling = {deployment_id for deployment_id, _ in self.router.health().cooldowns.get_active_cooldowns(ids, None)}
        return any(deployment_id not in cooling for deployment_id in ids)


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
    await _imported()
    request = {
        "messages": messages,
        "max_tokens": max_tokens or spec.max_output_tokens,
        "user": user or None,
        "metadata": {"purpose": purpose},
    }
    priced_as = spec.litellm_model
    try:
        if spec.is_routed:
            # Without a stream the Router's own retries and fallbacks cover every failure.
            response = await _router().acompletion(model=spec.name, **request)
            answered = _answering_deployment(response)
            priced_as = answered.litellm_model if answered is not None else priced_as
        else:
            response = await _llm().acompletion(**request, **_target_kwargs(spec), timeout=_timeout())
    except Exception as exc:
        raise translate_error(exc) from exc
    text = response.choices[0].message.content or ""
    raw = getattr(response, "usage", None)
    usage = Usage(int(getattr(raw, "prompt_tokens", 0) or 0), int(getattr(raw, "completion_tokens", 0) or 0))
    return text, Usage(usage.prompt_tokens, usage.completion_tokens, _cost(priced_as, usage))


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


def count_tokens(messages: Sequence[ChatMessage | PromptMessage], model: str | None = None) -> int:
    """Prompt tokens as the model's tokenizer counts them (litellm falls back to cl100k).

    A request's count is the sum of its messages' counts less the reply priming each single-message
    count includes, so each message is tokenized once and remembered: building a prompt asks about
    the same history turns on every turn of a conversation. An image counts IMAGE_TOKEN_ESTIMATE:
    providers bill images by their own tiling, which no local tokenizer knows.
    """
    litellm_model = resolve_model(model).litellm_model
    if not messages:
        return 0
    counts = [_message_tokens(litellm_model, m["role"], message_text(m)) for m in messages]
    images = sum(message_image_count(m) for m in messages)
    return sum(counts) - REPLY_PRIMING_TOKENS * (len(counts) - 1) + images * _image_tokens()


def _image_tokens() -> int:
    from django.conf import settings

    return int(settings.IMAGE_TOKEN_ESTIMATE)


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
    """Tokens the model accepts: the operator's override, else litellm's model map (the smallest
    window among its deployments, since any of them may answer)."""
    spec = resolve_model(model)
    if spec.context_window:
        return spec.context_window
    litellm_models = {d.litellm_model for d in spec.deployments} or {spec.litellm_model}
    return min(_known_window(litellm_model) for litellm_model in litellm_models)


def _known_window(litellm_model: str) -> int:
    if litellm_model.startswith("offline/"):
        return OFFLINE_CONTEXT_WINDOW
    try:
        info = _llm().get_model_info(litellm_model)
        window = info.get("max_input_tokens") or info.get("max_tokens")
        return int(window) if window else OFFLINE_CONTEXT_WINDOW
    except Exception:
        return OFFLINE_CONTEXT_WINDOW


def cost_of(spec: ModelSpec, usage: Usage) -> float:
    return _cost(spec.litellm_model, usage)


def _cost(litellm_model: str, usage: Usage) -> float:
    if litellm_model.startswith("offline/"):
        return 0.0
    try:
        prompt_cost, completion_cost = _llm().cost_per_token(
            model=litellm_model,
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
    from litellm.types.router import RouterRateLimitError

    if isinstance(exc, RouterRateLimitError):
        # Every deployment of the model (and of its fallbacks) is cooling down after failures.
        wait = int(getattr(exc, "cooldown_time", 0) or 0)
        return LLMError(
            "model_unavailable",
            f"This model is failing on every server right now. Try again in {max(wait, 1)} s.",
            retryable=True,
            status=503,
        )
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
