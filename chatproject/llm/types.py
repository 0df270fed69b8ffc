"""Plain values the gateway returns; no provider objects leak past it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict


class ChatMessage(TypedDict):
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class Delta:
    """One piece of a streamed reply. The last one carries the finish reason and usage."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model this deployment serves, as users name it, and how litellm reaches it."""

    name: str
    litellm_model: str
    api_base: str = ""
    api_key: str = ""
    context_window: int = 8192
    max_output_tokens: int = 1024
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def is_offline(self) -> bool:
        return self.litellm_model.startswith("offline/")


class LLMError(Exception):
    """A failed model call, in terms the product can show a person."""

    def __init__(self, code: str, message: str, *, retryable: bool, status: int = 502) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.status = status
