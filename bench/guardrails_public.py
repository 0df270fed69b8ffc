"""The injection detector on the public corpus: published attacks and benign tasks it never trained on.

bench/data/injection_public.jsonl (built by bench/injection_public.py from permissively licensed
red-teaming and benchmark packages) holds attacks and benign material in the shapes those projects
publish: spikee's jailbreak templates and documents, AgentDojo's tool-output injections, PromptInject,
ps-fuzz, DeepTeam, inspect_evals' CodeIPI and AgentThreatBench, and their clean counterparts. Nothing
of it is in the reference set, the training set or the head, so this is a second clean measure, of a
different kind from the written holdouts: other people's attacks, in other people's words, with their
label noise (a benign AgentDojo task that happens to say "ignore" is scored as written).

Reported per group: how many attacks the detector flags at its default threshold, and how many benign
lines it flags. The turn's vector is given, as in a real turn.

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


def write_report(table: dict[str, dict[str, int]], threshold: float) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"guardrails-public-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.md"
    total = {key: sum(cell[key] for cell in table.values()) for key in ("attacks", "caught", "benign", "flagged")}
    lines = [
        f"# Injection detector on the public corpus ({dt.datetime.now(dt.UTC).isoformat(timespec='seconds')})",
        "",
        f"bench/data/injection_public.jsonl; threshold {threshold}. See bench/guardrails_public.py.",
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
    ]
    path.write_text("\n".join(lines))
    return path


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    import django

    django.setup()
    from moderation.detectors.injection import InjectionDetector

    rows = load()
    threshold = InjectionDetector.default_threshold
    table = by_group(rows, score(rows), threshold)
    print(json.dumps(table))
    print(f"report: {write_report(table, threshold)}")


if __name__ == "__main__":
    main()
