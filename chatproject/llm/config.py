"""The models this deployment serves, read from settings (LLM_MODEL, LLM_MODELS, ...)."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings

from chatproject.llm.types import LLMError, ModelSpec

# Context windows of the families people run most, for when neither litellm nor the operator says.
OFFLINE_CONTEXT_WINDOW = 8192


def _spec_from_entry(entry: dict[str, Any]) -> ModelSpec:
    litellm_model = str(entry.get("model") or entry.get("litellm_model") or "")
    if not litellm_model:
        raise ValueError(f"LLM_MODELS entry without a model: {entry!r}")
    known = {"name", "model", "litellm_model", "api_base", "api_key", "context_window", "max_output_tokens"}
    return ModelSpec(
        name=str(entry.get("name") or litellm_model),
        litellm_model=litellm_model,
        api_base=str(entry.get("api_base") or ""),
        api_key=str(entry.get("api_key") or ""),
        context_window=int(entry.get("context_window") or 0),
        max_output_tokens=int(entry.get("max_output_tokens") or settings.LLM_MAX_OUTPUT_TOKENS),
        extra={k: v for k, v in entry.items() if k not in known},
    )


def _default_entry() -> dict[str, Any]:
    return {
        "name": settings.LLM_MODEL,
        "model": settings.LLM_MODEL,
        "api_base": settings.LLM_API_BASE,
        "api_key": settings.LLM_API_KEY,
        "context_window": settings.LLM_CONTEXT_WINDOW,
    }


@cache
def configured_models() -> tuple[ModelSpec, ...]:
    """Every model served, the default first. Cached: settings do not change in a running process."""
    declared = [_spec_from_entry(entry) for entry in settings.LLM_MODELS]
    # LLM_MODEL may name one of the declared models; otherwise it is a model of its own.
    default = next((spec for spec in declared if spec.name == settings.LLM_MODEL), None)
    specs: dict[str, ModelSpec] = {}
    for spec in [default or _spec_from_entry(_default_entry()), *declared]:
        specs.setdefault(spec.name, spec)
    return tuple(specs.values())


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
