"""The one interface every guardrail detector implements (DESIGN.md §7).

A detector looks at one text in one direction and reports findings: what it saw (a category),
how sure it is (a score in 0..1) and where (character spans, used for redaction and for masking
in the review queue). It does not decide what happens: the pipeline compares the score with the
detector's configured threshold and applies the configured action.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Direction(StrEnum):
    INPUT = "input"  # what a user sends, checked before the model sees it
    OUTPUT = "output"  # what the model writes, checked while or after it streams


class Action(StrEnum):
    """Ordered from mildest to strongest; a verdict takes the strongest of its findings."""

    ALLOW = "allow"
    FLAG = "flag"
    REDACT = "redact"
    BLOCK = "block"

    @property
    def rank(self) -> int:
        return ACTION_RANK[self]


ACTION_RANK = {Action.ALLOW: 0, Action.FLAG: 1, Action.REDACT: 2, Action.BLOCK: 3}


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    label: str  # what the span is, as shown in a redaction: "EMAIL", "CARD", "API_KEY", ...


@dataclass(frozen=True, slots=True)
class Finding:
    category: str  # "prompt_injection", "pii.email", "toxicity.harassment", "leakage", ...
    score: float  # 0..1, comparable with the detector's threshold
    spans: tuple[Span, ...] = ()
    detail: str = ""  # a short explanation for moderators (never shown to the user verbatim)


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What a detector may know besides the text. Nothing here is required."""

    user_id: int | None = None
    conversation_id: str | None = None
    # The deployment's canary, which the system prompt carries and no output may repeat.
    canary: str = ""
    system_prompt: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Detector(Protocol):
    """Configured once per process from settings; `check` must be thread-safe and offline."""

    name: str

    def check(self, text: str, *, direction: Direction, context: CheckContext) -> list[Finding]: ...
