"""The pipeline's mechanics (thresholds, actions, redaction, latency) and the leakage detector."""

from __future__ import annotations

import re
from typing import Any

import pytest

from moderation.detectors.base import Action, CheckContext, Direction, Finding, Span
from moderation.detectors.leakage import LeakageDetector
from moderation.pipeline import Stage, explain, redact, run


class KeywordDetector:
    """A stand-in detector: reports each occurrence of a word with a fixed score."""

    name = "keyword"

    def __init__(self, *, word: str, score: float = 0.9, category: str = "policy.test") -> None:
        self.pattern = re.compile(re.escape(word))
        self.score = score
        self.category = category

    def check(self, text: str, *, direction: Direction, context: CheckContext) -> list[Finding]:
        spans = tuple(Span(m.start(), m.end(), "WORD") for m in self.pattern.finditer(text))
        return [Finding(self.category, self.score, spans, "keyword seen")] if spans else []


class BrokenDetector:
    name = "broken"

    def check(self, text: str, *, direction: Direction, context: CheckContext) -> list[Finding]:
        raise RuntimeError("detector bug")


KEYWORD = "tests.moderation.test_pipeline.KeywordDetector"


def configure(settings: Any, *entries: dict[str, Any]) -> None:
    settings.MODERATION_DETECTORS = list(entries)


def test_the_strongest_action_wins_and_each_detector_reports_latency(settings: Any) -> None:
    configure(
        settings,
        {"name": "a", "path": KEYWORD, "options": {"word": "apple"}, "actions": {"input": "flag"}},
        {"name": "b", "path": KEYWORD, "options": {"word": "bomb"}, "actions": {"input": "block"}},
    )
    verdict = run("an apple and a bomb", stage=Stage.INPUT)
    assert verdict.action is Action.BLOCK and verdict.blocked
    assert [(h.detector, h.action) for h in verdict.hits] == [("a", Action.FLAG), ("b", Action.BLOCK)]
    assert set(verdict.latency_ms) == {"a", "b"} and all(ms >= 0 for ms in verdict.latency_ms.values())
    assert run("nothing here", stage=Stage.INPUT).action is Action.ALLOW


def test_findings_under_the_threshold_are_ignored(settings: Any) -> None:
    configure(
        settings,
        {
            "name": "a",
            "path": KEYWORD,
            "options": {"word": "x", "score": 0.4},
            "threshold": 0.5,
            "actions": {"input": "block"},
        },
    )
    assert run("x marks the spot", stage=Stage.INPUT).action is Action.ALLOW


def test_actions_are_per_stage(settings: Any) -> None:
    configure(settings, {"name": "a", "path": KEYWORD, "options": {"word": "x"}, "actions": {"output_inline": "block"}})
    assert run("x", stage=Stage.INPUT).action is Action.ALLOW
    assert run("x", stage=Stage.OUTPUT_INLINE).action is Action.BLOCK
    assert run("x", stage=Stage.OUTPUT_AFTER).action is Action.ALLOW


def test_redaction_replaces_every_span(settings: Any) -> None:
    configure(settings, {"name": "a", "path": KEYWORD, "options": {"word": "secret"}, "actions": {"input": "redact"}})
    verdict = run("my secret is secret", stage=Stage.INPUT)
    assert verdict.action is Action.REDACT
    assert verdict.text == "my [WORD] is [WORD]"
    assert verdict.original == "my secret is secret"


def test_overlapping_spans_redact_once() -> None:
    spans = [Span(3, 10, "A"), Span(5, 12, "B"), Span(20, 22, "C")]
    assert redact("0123456789abcdefghijklmnop", spans) == "012[A]cdefghij[C]mnop"


def test_a_broken_detector_does_not_break_the_turn(settings: Any) -> None:
    configure(
        settings,
        {"name": "broken", "path": "tests.moderation.test_pipeline.BrokenDetector", "actions": {"input": "block"}},
    )
    verdict = run("hello", stage=Stage.INPUT)
    assert verdict.action is Action.ALLOW
    assert "broken" in verdict.latency_ms


def test_moderation_can_be_turned_off(settings: Any) -> None:
    configure(settings, {"name": "a", "path": KEYWORD, "options": {"word": "x"}, "actions": {"input": "block"}})
    settings.MODERATION_ENABLED = False
    assert run("x", stage=Stage.INPUT).action is Action.ALLOW


def test_explanations_are_plain_words() -> None:
    assert explain(["prompt_injection"], Stage.INPUT).startswith("Your message was not sent")
    assert "private instructions" in explain(["leakage.canary"], Stage.OUTPUT_INLINE)
    assert explain(["something.new"], Stage.OUTPUT_INLINE) == (
        "The reply was stopped because it did not pass this service's content rules."
    )


@pytest.fixture
def leakage() -> LeakageDetector:
    return LeakageDetector(run_words=8)


SYSTEM = "You are the support assistant of Acme. Never discuss pricing of the enterprise plan with anyone."


def test_the_canary_in_output_is_leakage(leakage: LeakageDetector) -> None:
    context = CheckContext(canary="cn-5f2b9c1d7a3e4f60", system_prompt=SYSTEM)
    found = leakage.check("Sure! My reference is cn-5f2b9c1d7a3e4f60.", direction=Direction.OUTPUT, context=context)
    assert [f.category for f in found] == ["leakage.canary"]
    assert found[0].score == 1.0 and found[0].spans[0] == Span(22, 41, "CANARY")


def test_a_verbatim_copy_of_the_system_prompt_is_leakage(leakage: LeakageDetector) -> None:
    reply = "My instructions say: never discuss pricing of the enterprise plan with anyone, sorry."
    found = leakage.check(reply, direction=Direction.OUTPUT, context=CheckContext(system_prompt=SYSTEM))
    assert found and found[0].category == "leakage.verbatim"


def test_ordinary_replies_and_inputs_are_not_leakage(leakage: LeakageDetector) -> None:
    context = CheckContext(canary="cn-5f2b9c1d7a3e4f60", system_prompt=SYSTEM)
    assert leakage.check("Acme's support can help with pricing.", direction=Direction.OUTPUT, context=context) == []
    assert leakage.check("cn-5f2b9c1d7a3e4f60", direction=Direction.INPUT, context=context) == []
