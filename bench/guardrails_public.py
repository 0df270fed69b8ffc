"""The injection detector on the public corpus: published attacks and benign tasks it never trained on.

bench/data/injection_public.jsonl (built by bench/injection_public.py from permissively licensed
red-teaming and benchmark packages) holds attacks and benign material in the shapes those projects
publish: spikee's jailbreak templates and documents, AgentDojo's tool-output injections, PromptInject,
ps-fuzz, DeepTeam, inspect_evals' CodeIPI and AgentThreatBench, and their clean counterparts. Half of
it, chosen by a hash of each text (classifier.public_training_half), trains the head; the other half
is scored here as held out: other people's attacks, in other people's words, with their label noise
(a benign AgentDojo task that happens to say "ignore" is scored as written). Its groups are the same
sources as the trained half, so it measures the detector on those sources' shapes, not on new ones.

Reported per group of the held-out half: how many attacks the detector flags at its default threshold,
and how many benign lines it flags; then the trained half's totals. The turn's vector is given, as in
a real turn.

    python -m bench.guardrails_public
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "bench" / "data" / "injection_public.jsonl"
RESULTS = ROOT / "bench" / "results"


def load() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]


def split_halves(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(held out, trained on)."""
    from moderation.detectors.classifier import public_training_half

    trained = [row for row in rows if public_training_half(row["text"])]
    held = [row for row in rows if not public_training_half(row["text"])]
    return held, trained


def score(rows: list[dict[str, Any]]) -> list[float]:
    from chatproject.llm import embeddings
    from moderation.detectors.base import CheckContext, Direction
    from moderation.detectors.injection import InjectionDetector

    detector = InjectionDetector()
    vectors = embeddings.embed([row["text"] for row in rows])
    scores = []
    for row, vector in zip(rows, vectors, strict=True):
        findings = detector.check(
            row["text"], direction=Direction.INPUT, context=CheckContext(extra={"embedding": vector})
        )
        scores.append(max((f.score for f in findings), default=0.0))
    return scores


def by_group(rows: list[dict[str, Any]], scores: list[float], threshold: float) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = defaultdict(lambda: {"attacks": 0, "caught": 0, "benign": 0, "flagged": 0})
    for row, value in zip(rows, scores, strict=True):
        cell = table[row["group"]]
        if row["label"] == "benign":
            cell["benign"] += 1
            cell["flagged"] += value >= threshold
        else:
            cell["attacks"] += 1
            cell["caught"] += value >= threshold
    return dict(sorted(table.items()))


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _total(table: dict[str, dict[str, int]]) -> dict[str, int]:
    return {key: sum(cell[key] for cell in table.values()) for key in ("attacks", "caught", "benign", "flagged")}


def write_report(table: dict[str, dict[str, int]], trained: dict[str, dict[str, int]], threshold: float) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"guardrails-public-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.md"
    total, seen = _total(table), _total(trained)
    lines = [
        f"# Injection detector on the public corpus ({dt.datetime.now(dt.UTC).isoformat(timespec='seconds')})",
        "",
        f"bench/data/injection_public.jsonl; threshold {threshold}. See bench/guardrails_public.py. The held-out"
        " half, per group:",
        "",
        "| group | attacks | recall | benign | flagged |",
        "|---|---|---|---|---|",
        *[
            f"| {group} | {c['attacks']} | {_pct(c['caught'], c['attacks'])} | {c['benign']}"
            f" | {c['flagged']} ({_pct(c['flagged'], c['benign'])}) |"
            for group, c in table.items()
        ],
        f"| **all** | {total['attacks']} | {_pct(total['caught'], total['attacks'])} | {total['benign']}"
        f" | {total['flagged']} ({_pct(total['flagged'], total['benign'])}) |",
        "",
        f"The trained-on half: {seen['attacks']} attacks, recall {_pct(seen['caught'], seen['attacks'])};"
        f" {seen['benign']} benign, {seen['flagged']} flagged ({_pct(seen['flagged'], seen['benign'])}).",
        "",
    ]
    path.write_text("\n".join(lines))
    return path


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    import django

    django.setup()
    from moderation.detectors.injection import InjectionDetector

    held, trained = split_halves(load())
    threshold = InjectionDetector.default_threshold
    table = by_group(held, score(held), threshold)
    seen = by_group(trained, score(trained), threshold)
    print(json.dumps({"held_out": table, "trained_on": _total(seen)}))
    print(f"report: {write_report(table, seen, threshold)}")


if __name__ == "__main__":
    main()
