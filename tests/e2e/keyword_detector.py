"""A guardrail detector for browser tests: it finds one configured word, case-insensitively.

Configured through MODERATION_DETECTORS like any detector, e.g.
`{"path": "tests.e2e.keyword_detector.KeywordDetector", "options": {"word": "forbidden-word"},
"actions": {"input": "block"}}`, so a test can make the live server block a message it chooses.
"""

from __future__ import annotations

import re

from moderation.detectors.base import CheckContext, Direction, Finding, Span


class KeywordDetector:
    name = "keyword"

    def __init__(self, *, word: str, category: str = "prompt_injection") -> None:
        if not word:
            raise ValueError("KeywordDetector needs a word to look for.")
        self.word = word
        self.category = category
        self._pattern = re.compile(re.escape(word), re.IGNORECASE)

    def check(self, text: str, *, direction: Direction, context: CheckContext) -> list[Finding]:
        return [
            Finding(self.category, 0.99, (Span(match.start(), match.end(), "KEYWORD"),), "keyword")
            for match in self._pattern.finditer(text)
        ]
