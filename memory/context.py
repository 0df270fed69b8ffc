"""The prompt sent to the model, fitted to its window (DESIGN.md §5).

A pure function over plain values: callers gather the rows, this decides what fits. Newest turns
win; the system prompt and the user's new message are always kept (the latter cut in the middle
if it alone exceeds the budget), so a provider never sees a request over its window.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from chatproject.llm.types import ChatMessage

TokenCounter = Callable[[list[ChatMessage]], int]
TRUNCATION_MARK = "\n\n[… middle of the message omitted to fit the model's context window …]\n\n"


@dataclass(frozen=True)
class Turn:
    role: str
    content: str


@dataclass
class ContextReport:
    window: int
    budget: int
    tokens_used: int = 0
    included_turns: int = 0
    dropped_turns: int = 0
    truncated_user_message: bool = False
    tiers: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BuiltContext:
    messages: list[ChatMessage]
    report: ContextReport


def _fit_text(text: str, role: str, budget: int, count: TokenCounter) -> str:
    """The longest head+tail of text that fits budget tokens, found by bisection on characters."""
    if count([{"role": role, "content": text}]) <= budget:
        return text
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        half = mid // 2
        candidate = text[:half] + TRUNCATION_MARK + text[len(text) - (mid - half) :]
        if count([{"role": role, "content": candidate}]) <= budget:
            low = mid
        else:
            high = mid - 1
    half = low // 2
    return text[:half] + TRUNCATION_MARK + text[len(text) - (low - half) :]


def build_context(
    *,
    system_prompt: str,
    history: Sequence[Turn],
    user_message: str,
    window: int,
    reserved_output: int,
    count: TokenCounter,
) -> BuiltContext:
    budget = max(window - reserved_output, 64)
    report = ContextReport(window=window, budget=budget)
    system: ChatMessage = {"role": "system", "content": system_prompt}
    used = count([system])
    user_text = _fit_text(user_message, "user", max(budget - used, 16), count)
    report.truncated_user_message = user_text != user_message
    user: ChatMessage = {"role": "user", "content": user_text}
    user_tokens = count([user])
    used += user_tokens
    recent: list[ChatMessage] = []
    recent_tokens = 0
    for turn in reversed(history):
        candidate: ChatMessage = {"role": turn.role, "content": turn.content}
        cost = count([candidate])
        if used + recent_tokens + cost > budget:
            break
        recent.append(candidate)
        recent_tokens += cost
    recent.reverse()
    report.included_turns = len(recent)
    report.dropped_turns = len(history) - len(recent)
    report.tiers = {"system": used - user_tokens, "recent": recent_tokens, "user": user_tokens}
    report.tokens_used = used + recent_tokens
    return BuiltContext(messages=[system, *recent, user], report=report)
