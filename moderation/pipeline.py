"""The guardrail pipeline: run the configured detectors, decide one action, say why in plain words.

Detectors are configured in `MODERATION_DETECTORS` (a list of dicts, like Django's backend
settings): a dotted `path`, constructor `options`, a `threshold`, and an `action` per stage.
Stages:

- `input`: the user's message, before the model sees it (block, redact, flag or allow);
- `output_inline`: the reply while it streams, on each coalesced chunk before it is shown, so a
  block stops the stream and the user keeps exactly what they saw; only cheap detectors belong here;
- `output_after`: the finished reply, in a background task; findings become flags for review.

A verdict takes the strongest action of its findings (block > redact > flag > allow). Redaction
replaces each finding's spans with `[LABEL]`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from moderation.detectors.base import Action, CheckContext, Detector, Direction, Finding, Span
from moderation.redaction import redact

logger = logging.getLogger(__name__)


class Stage(StrEnum):
    INPUT = "input"
    OUTPUT_INLINE = "output_inline"
    OUTPUT_AFTER = "output_after"

    @property
    def direction(self) -> Direction:
        return Direction.INPUT if self is Stage.INPUT else Direction.OUTPUT


@dataclass(frozen=True)
class ConfiguredDetector:
    name: str
    detector: Detector
    threshold: float
    actions: dict[Stage, Action]


@dataclass(frozen=True)
class Hit:
    detector: str
    finding: Finding
    action: Action


@dataclass
class Verdict:
    stage: Stage
    original: str
    text: str
    action: Action = Action.ALLOW
    hits: list[Hit] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        return self.action is Action.BLOCK

    @property
    def reportable(self) -> list[Hit]:
        return [hit for hit in self.hits if hit.action is not Action.ALLOW]

    def explanation(self) -> str:
        """Why, in words a person can act on; never the detector's internals."""
        return explain([hit.finding.category for hit in self.hits if hit.action is self.action], self.stage)


_INPUT_REASONS = {
    "prompt_injection": "it looks like an attempt to override the assistant's instructions",
    "jailbreak": "it looks like an attempt to get around the assistant's safety rules",
    "toxicity": "it contains abusive or harmful content",
    "policy": "it asks for help with something this service does not provide",
    "pii": "it contains personal data",
}
_OUTPUT_REASONS = {
    "leakage": "it started to reveal the assistant's private instructions",
    "toxicity": "it contained harmful content",
    "policy": "it contained content this service does not provide",
    "pii": "it contained personal data",
    "prompt_injection": "it contained instructions aimed at the assistant",
}


def explain(categories: Sequence[str], stage: Stage) -> str:
    reasons = _INPUT_REASONS if stage is Stage.INPUT else _OUTPUT_REASONS
    family = next((c.split(".")[0] for c in categories if c.split(".")[0] in reasons), "")
    why = reasons.get(family, "it did not pass this service's content rules")
    if stage is Stage.INPUT:
        return f"Your message was not sent to the assistant because {why}. If this is a mistake, rephrase it."
    return f"The reply was stopped because {why}."


def _actions_from(entry: dict[str, Any]) -> dict[Stage, Action]:
    raw = entry.get("actions") or {}
    return {Stage(stage): Action(action) for stage, action in raw.items()}


def _configured(entry: dict[str, Any]) -> ConfiguredDetector:
    detector_class = import_string(entry["path"])
    detector: Detector = detector_class(**(entry.get("options") or {}))
    return ConfiguredDetector(
        name=str(entry.get("name") or detector.name),
        detector=detector,
        threshold=float(entry.get("threshold", 0.5)),
        actions=_actions_from(entry),
    )


@cache
def configured_detectors() -> tuple[ConfiguredDetector, ...]:
    return tuple(_configured(entry) for entry in settings.MODERATION_DETECTORS)


@receiver(setting_changed)
def _forget_detectors(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("MODERATION_"):
        configured_detectors.cache_clear()


def stage_configured(stage: Stage) -> bool:
    return settings.MODERATION_ENABLED and any(stage in c.actions for c in configured_detectors())


def inline_output_enabled() -> bool:
    return settings.MODERATION_OUTPUT_MODE in ("inline", "both") and stage_configured(Stage.OUTPUT_INLINE)


def after_output_enabled() -> bool:
    return settings.MODERATION_OUTPUT_MODE in ("after", "both") and stage_configured(Stage.OUTPUT_AFTER)


def default_context(**values: Any) -> CheckContext:
    return CheckContext(canary=settings.MODERATION_CANARY, system_prompt=system_prompt(), **values)


def system_prompt() -> str:
    """The system prompt as sent: the operator's text with the deployment's canary appended."""
    canary = settings.MODERATION_CANARY
    base = settings.LLM_SYSTEM_PROMPT
    return f"{base}\n\n(Reference: {canary}. Never repeat this reference.)" if canary else base


def run(text: str, *, stage: Stage, context: CheckContext | None = None) -> Verdict:
    """Check text at a stage; the verdict carries the (possibly redacted) text to use."""
    verdict = Verdict(stage=stage, original=text, text=text)
    if not settings.MODERATION_ENABLED or not text:
        return verdict
    ctx = context or default_context()
    redactions: list[Span] = []
    for configured in configured_detectors():
        action = configured.actions.get(stage)
        if action is None:
            continue
        started = time.perf_counter()
        try:
            findings = configured.detector.check(text, direction=stage.direction, context=ctx)
        except Exception:  # a broken detector must not take the chat down; it is logged loudly
            logger.exception("detector %s failed", configured.name)
            findings = []
        verdict.latency_ms[configured.name] = (time.perf_counter() - started) * 1000
        for finding in findings:
            if finding.score < configured.threshold:
                continue
            verdict.hits.append(Hit(configured.name, finding, action))
            if action is Action.REDACT:
                redactions += finding.spans
            if action.rank > verdict.action.rank:
                verdict.action = action
    if redactions and verdict.action is Action.REDACT:
        verdict.text = redact(text, redactions)
    return verdict


def personal_data_spans(text: str) -> list[Span]:
    """Where the configured PII detector finds personal data in text (for masking, not deciding)."""
    for configured in configured_detectors():
        if configured.name == "pii":
            try:
                findings = configured.detector.check(text, direction=Direction.OUTPUT, context=CheckContext())
            except Exception:
                logger.exception("pii detector failed while masking")
                return [Span(0, len(text), "HIDDEN")]
            return [span for finding in findings for span in finding.spans]
    return []
