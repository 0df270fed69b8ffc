"""Plain values the gateway returns; no provider objects leak past it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypedDict


class ChatMessage(TypedDict):
    role: str
    content: str


class PromptMessage(TypedDict):
    """A message as sent to a model: text, or OpenAI-style parts when a user message carries images:
    [{"type": "text", "text": …}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,…"}}]"""

    role: str
    content: str | list[dict[str, Any]]


def message_text(message: ChatMessage | PromptMessage) -> str:
    """The text of a message, whether its content is a string or a list of parts."""
    content = message["content"]
    if isinstance(content, str):
        return content
    return "\n".join(str(part.get("text", "")) for part in content if part.get("type") == "text")


def message_image_count(message: ChatMessage | PromptMessage) -> int:
    content = message["content"]
    return 0 if isinstance(content, str) else sum(1 for part in content if part.get("type") == "image_url")


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
    # The model that answered: its litellm model, or `<litellm model>@<deployment id>` when the
    # Router chose one of several deployments (or a fallback), so the message and the ledger name it.
    model: str | None = None


@dataclass(frozen=True, slots=True)
class Deployment:
    """One place a served model runs (a server, a region, an account): litellm's Router balances
    the requests for a model over its deployments and cools down one that fails."""

    id: str
    model_name: str  # the served model it is a deployment of
    litellm_model: str
    api_base: str = ""
    api_key: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How a message and the ledger name the deployment that answered: `openai/gpt-4o@eu-1`."""
        return f"{self.litellm_model}@{self.id}"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model this deployment serves, as users name it, and how litellm reaches it.

    `litellm_model`, `api_base`, `api_key` and `extra` are those of the first deployment: what
    token counting and pricing read, and the whole story for a model with one deployment.
    """

    name: str
    litellm_model: str
    api_base: str = ""
    api_key: str = ""
    context_window: int = 8192
    max_output_tokens: int = 1024
    # Generations of this model at once across all nodes (the LLM queue); None: LLM_QUEUE_MAX_CONCURRENCY.
    max_concurrency: int | None = None
    extra: dict[str, object] = field(default_factory=dict)
    deployments: tuple[Deployment, ...] = ()
    # Other served models (by name) that answer, in order, when every deployment of this one fails.
    fallbacks: tuple[str, ...] = ()
    # Whether it reads images (an LLM_MODELS entry's `"vision": true`); a turn with images sent to a
    # model without vision is refused before anything is stored.
    vision: bool = False

    @property
    def is_offline(self) -> bool:
        return self.litellm_model.startswith("offline/")

    @property
    def is_routed(self) -> bool:
        """Several deployments or fallbacks go through litellm's Router; one deployment is called
        directly (the Router's bookkeeping costs a little on every request)."""
        return len(self.deployments) > 1 or bool(self.fallbacks)


class LLMError(Exception):
    """A failed model call, in terms the product can show a person."""

    def __init__(self, code: str, message: str, *, retryable: bool, status: int = 502) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.status = status
