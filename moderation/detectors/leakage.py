"""System-prompt leakage: the deployment's canary, or long verbatim runs of the system prompt.

The system prompt carries a per-deployment canary (a random-looking token with no meaning). A
model never has a reason to repeat it, so seeing it in output means the prompt is being echoed,
whatever the attack that caused it. Paraphrased leaks do not carry the canary; long word runs
copied from the system prompt catch most of the rest.
"""

from __future__ import annotations

import re
from functools import lru_cache

from moderation.detectors.base import CheckContext, Direction, Finding, Span

_WORDS = re.compile(r"\w+", re.UNICODE)


class LeakageDetector:
    name = "leakage"

    def __init__(self, *, run_words: int = 12) -> None:
        # A run of this many consecutive system-prompt words in a reply is a copy, not a coincidence.
        self.run_words = run_words

    def check(self, text: str, *, direction: Direction, context: CheckContext) -> list[Finding]:
        if direction is not Direction.OUTPUT:
            return []
        findings: list[Finding] = []
        if context.canary:
            findings += self._canary(text, context.canary)
        if context.system_prompt and not findings:
            findings += self._verbatim_runs(text, context.system_prompt)
        return findings

    def _canary(self, text: str, canary: str) -> list[Finding]:
        spans = tuple(Span(m.start(), m.end(), "CANARY") for m in re.finditer(re.escape(canary), text))
        if not spans:
            return []
        return [Finding("leakage.canary", 1.0, spans, "the reply repeats the system prompt's canary")]

    def _verbatim_runs(self, text: str, system_prompt: str) -> list[Finding]:
        prompt_runs = _prompt_runs(system_prompt, self.run_words)
        if not prompt_runs:
            return []
        words = [(m.group().lower(), m.start(), m.end()) for m in _WORDS.finditer(text)]
        spans: list[Span] = []
        for i in range(len(words) - self.run_words + 1):
            window = tuple(w for w, _, _ in words[i : i + self.run_words])
            if window in prompt_runs:
                spans.append(Span(words[i][1], words[i + self.run_words - 1][2], "SYSTEM_PROMPT"))
        if not spans:
            return []
        copied = min(1.0, 0.6 + 0.05 * len(spans))
        return [Finding("leakage.verbatim", copied, tuple(spans), f"{len(spans)} runs copied from the system prompt")]


@lru_cache(maxsize=8)
def _prompt_runs(prompt: str, size: int) -> frozenset[tuple[str, ...]]:
    """Every run of `size` consecutive words of the system prompt (computed once per prompt)."""
    words = [w.lower() for w in _WORDS.findall(prompt)]
    return frozenset(tuple(words[i : i + size]) for i in range(len(words) - size + 1))
