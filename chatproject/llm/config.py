"""The models this deployment serves, read from settings (LLM_MODEL, LLM_MODELS, LLM_ROUTER_*).

An LLM_MODELS entry is a served model with one deployment. Entries that share a `name` are
deployments of one model, and so is each item of an entry's `"deployments"` list (an item's keys
override the entry's, so common ones are written once). A model with several deployments, or with
`"fallbacks"` (names of other served models), is served through litellm's Router.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from chatproject.llm.types import Deployment, LLMError, ModelSpec

# Context windows of the families people run most, for when neither litellm nor the operator says.
OFFLINE_CONTEXT_WINDOW = 8192

# Keys that describe the served model; every other key of an entry describes its deployments.
# Keys the product reads itself; any other key of an entry is passed to litellm with each request.
MODEL_KEYS = frozenset(
    {"name", "context_window", "max_output_tokens", "fallbacks", "deployments", "max_concurrency", "vision"}
)
DEPLOYMENT_KEYS = frozenset({"id", "model", "litellm_model", "api_base", "api_key"})
# litellm's routing strategies (litellm.types.litellm_params.RoutingStrategyName), spelled out here
# so a typo is reported when the configuration is read, not on the first chat turn.
ROUTING_STRATEGIES = (
    "simple-shuffle",
    "least-busy",
    "usage-based-routing",
    "usage-based-routing-v2",
    "latency-based-routing",
    "cost-based-routing",
)


@dataclass(frozen=True, slots=True)
class RouterSettings:
    strategy: str
    retries: int
    allowed_fails: int
    cooldown_seconds: float
    timeout: float


def router_settings() -> RouterSettings:
    """LLM_ROUTER_* settings, checked: a bad value is a clear error, not a Router traceback."""
    strategy = str(settings.LLM_ROUTER_STRATEGY)
    if strategy not in ROUTING_STRATEGIES:
        raise ImproperlyConfigured(
            f"LLM_ROUTER_STRATEGY={strategy!r} is not a routing strategy; use one of {', '.join(ROUTING_STRATEGIES)}."
        )
    values = RouterSettings(
        strategy=strategy,
        retries=int(settings.LLM_ROUTER_RETRIES),
        allowed_fails=int(settings.LLM_ROUTER_ALLOWED_FAILS),
        cooldown_seconds=float(settings.LLM_ROUTER_COOLDOWN_SECONDS),
        timeout=float(settings.LLM_ROUTER_TIMEOUT),
    )
    if values.retries < 0 or values.allowed_fails < 0 or values.cooldown_seconds < 0:
        raise ImproperlyConfigured(
            "LLM_ROUTER_RETRIES, LLM_ROUTER_ALLOWED_FAILS and LLM_ROUTER_COOLDOWN_SECONDS cannot be negative."
        )
    if values.timeout <= 0:
        raise ImproperlyConfigured("LLM_ROUTER_TIMEOUT must be a positive number of seconds.")
    return values


def _deployment(model_name: str, number: int, fields: dict[str, Any]) -> Deployment:
    litellm_model = str(fields.get("model") or fields.get("litellm_model") or "")
    if not litellm_model:
        raise ImproperlyConfigured(f"LLM_MODELS: a deployment of {model_name!r} has no model: {fields!r}")
    return Deployment(
        id=str(fields.get("id") or f"{model_name}-{number}"),
        model_name=model_name,
        litellm_model=litellm_model,
        api_base=str(fields.get("api_base") or ""),
        api_key=str(fields.get("api_key") or ""),
        extra={k: v for k, v in fields.items() if k not in DEPLOYMENT_KEYS and k not in MODEL_KEYS},
    )


def _entry_deployments(entry: dict[str, Any], model_name: str, first_number: int) -> list[Deployment]:
    shared = {k: v for k, v in entry.items() if k not in MODEL_KEYS}
    listed = entry.get("deployments")
    if listed is None:
        return [_deployment(model_name, first_number, shared)]
    if not isinstance(listed, list) or not listed or not all(isinstance(item, dict) for item in listed):
        raise ImproperlyConfigured(f'LLM_MODELS: "deployments" of {model_name!r} must be a non-empty list of objects.')
    return [_deployment(model_name, first_number + i, {**shared, **item}) for i, item in enumerate(listed)]


def _first(entries: list[dict[str, Any]], key: str) -> Any:
    return next((entry[key] for entry in entries if entry.get(key)), None)


def _fallbacks(model_name: str, entries: list[dict[str, Any]]) -> tuple[str, ...]:
    names = _first(entries, "fallbacks") or []
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(isinstance(name, str) and name for name in names):
        raise ImproperlyConfigured(f'LLM_MODELS: "fallbacks" of {model_name!r} must be a list of model names.')
    return tuple(dict.fromkeys(names))


def _concurrency_value(model_name: str, raw: object) -> int:
    try:
        value = int(str(raw))
    except ValueError:
        value = -1
    if value < 0:
        raise ImproperlyConfigured(f'LLM_MODELS: "max_concurrency" of {model_name!r} must be a whole number >= 0.')
    return value


def _max_concurrency(model_name: str, entries: list[dict[str, Any]]) -> int | None:
    """The model's LLM-queue limit: the sum of its deployments' `max_concurrency` (each server
    takes what it can serve; the Router spreads the work over them), set on an entry for all of
    its deployments or on each item of its `deployments` list. None: LLM_QUEUE_MAX_CONCURRENCY."""
    per_deployment: list[object] = []
    for entry in entries:
        listed = entry.get("deployments")
        items = listed if isinstance(listed, list) else [{}]
        per_deployment += [item.get("max_concurrency", entry.get("max_concurrency")) for item in items]
    given = [raw for raw in per_deployment if raw is not None]
    if not given:
        return None
    if len(given) != len(per_deployment):
        raise ImproperlyConfigured(
            f'LLM_MODELS: set "max_concurrency" on every deployment of {model_name!r}, or on none.'
        )
    return sum(_concurrency_value(model_name, raw) for raw in given)


def _spec(model_name: str, entries: list[dict[str, Any]]) -> ModelSpec:
    deployments: list[Deployment] = []
    for entry in entries:
        deployments += _entry_deployments(entry, model_name, len(deployments) + 1)
    first = deployments[0]
    return ModelSpec(
        name=model_name,
        litellm_model=first.litellm_model,
        api_base=first.api_base,
        api_key=first.api_key,
        context_window=int(_first(entries, "context_window") or 0),
        max_output_tokens=int(_first(entries, "max_output_tokens") or settings.LLM_MAX_OUTPUT_TOKENS),
        max_concurrency=_max_concurrency(model_name, entries),
        extra=first.extra,
        deployments=tuple(deployments),
        fallbacks=_fallbacks(model_name, entries),
        # The offline model reads images (it acknowledges them), so images work with no key.
        vision=_first(entries, "vision") is True or first.litellm_model.startswith("offline/"),
    )


def _entry_name(entry: object) -> str:
    if not isinstance(entry, dict):
        raise ImproperlyConfigured(f"LLM_MODELS entries must be JSON objects, not {entry!r}.")
    name = str(entry.get("name") or entry.get("model") or entry.get("litellm_model") or "")
    if not name:
        raise ImproperlyConfigured(f"LLM_MODELS entry without a name or a model: {entry!r}")
    return name


def _declared(entries: list[Any]) -> list[ModelSpec]:
    """One spec per name, in the order names first appear; same-name entries are deployments."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        grouped.setdefault(_entry_name(entry), []).append(entry)
    return [_spec(name, group) for name, group in grouped.items()]


def _default_entry() -> dict[str, Any]:
    return {
        "name": settings.LLM_MODEL,
        "model": settings.LLM_MODEL,
        "api_base": settings.LLM_API_BASE,
        "api_key": settings.LLM_API_KEY,
        "context_window": settings.LLM_CONTEXT_WINDOW,
        "vision": bool(settings.LLM_VISION),
    }


def _check(specs: tuple[ModelSpec, ...]) -> None:
    names = {spec.name for spec in specs}
    seen: set[str] = set()
    for spec in specs:
        for deployment in spec.deployments:
            if deployment.id in seen:
                raise ImproperlyConfigured(f"LLM_MODELS: the deployment id {deployment.id!r} is used twice.")
            seen.add(deployment.id)
        for fallback in spec.fallbacks:
            if fallback == spec.name or fallback not in names:
                raise ImproperlyConfigured(
                    f"LLM_MODELS: {spec.name!r} falls back to {fallback!r}, which is not another served model."
                )


@cache
def configured_models() -> tuple[ModelSpec, ...]:
    """Every model served, the default first. Cached: settings do not change in a running process."""
    declared = _declared(list(settings.LLM_MODELS))
    # LLM_MODEL may name one of the declared models; otherwise it is a model of its own.
    default = next((spec for spec in declared if spec.name == settings.LLM_MODEL), None)
    specs: dict[str, ModelSpec] = {}
    for spec in [default or _spec(settings.LLM_MODEL, [_default_entry()]), *declared]:
        specs.setdefault(spec.name, spec)
    models = tuple(specs.values())
    _check(models)
    return models


def default_model() -> ModelSpec:
    return configured_models()[0]


def resolve_model(name: str | None) -> ModelSpec:
    """The spec for a model name users pick; unknown names are a client error, not a fallback."""
    if not name:
        return default_model()
    for spec in configured_models():
        if spec.name == name:
            return spec
    raise LLMError("unknown_model", f"The model {name!r} is not served here.", retryable=False, status=400)


def deployment_by_id(deployment_id: str) -> Deployment | None:
    for spec in configured_models():
        for deployment in spec.deployments:
            if deployment.id == deployment_id:
                return deployment
    return None
