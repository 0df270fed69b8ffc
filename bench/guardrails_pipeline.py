"""Latency the input guardrails add to a turn: the whole configured pipeline, as a turn runs it.

A turn embeds the user's message once (retrieval needs the vector anyway) and hands it to the
detectors; this measures the pipeline with that vector given (what guardrails add) and, for the
record, the embedding itself. Messages come from the evaluation sets under bench/data/, so short
chat prompts and long pasted documents are both in the mix.

    python -m bench.guardrails_pipeline --rounds 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "results"


def load_texts() -> list[str]:
    texts: list[str] = []
    for path in sorted(DATA.glob("*_eval.jsonl")):
        texts += [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]
    return texts


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(texts: list[str], rounds: int) -> dict[str, Any]:
    from chatproject.llm import embeddings
    from moderation.pipeline import Stage, default_context, run

    vectors = embeddings.embed(texts)  # computed once, as each turn does before its guardrails
    pipeline_ms: list[float] = []
    embed_ms: list[float] = []
    per_detector: dict[str, list[float]] = {}
    run(texts[0], stage=Stage.INPUT)  # loads every detector and its reference data
    for _ in range(rounds):
        for text, vector in zip(texts, vectors, strict=True):
            started = time.perf_counter()
            verdict = run(text, stage=Stage.INPUT, context=default_context(extra={"embedding": vector}))
            pipeline_ms.append((time.perf_counter() - started) * 1000)
            for name, ms in verdict.latency_ms.items():
                per_detector.setdefault(name, []).append(ms)
    for text in texts[:200]:
        started = time.perf_counter()
        embeddings.embed_one(text)
        embed_ms.append((time.perf_counter() - started) * 1000)
    return {
        "benchmark": "guardrails_pipeline",
        "at": dt.datetime.now(dt.UTC).isoformat(),
        "messages": len(texts),
        "checks": len(pipeline_ms),
        "pipeline_p50_ms": round(statistics.median(pipeline_ms), 2),
        "pipeline_p95_ms": round(percentile(pipeline_ms, 0.95), 2),
        "embedding_p50_ms": round(statistics.median(embed_ms), 2),
        "embedding_p95_ms": round(percentile(embed_ms, 0.95), 2),
        "detectors": {
            name: {"p50_ms": round(statistics.median(v), 2), "p95_ms": round(percentile(v, 0.95), 2)}
            for name, v in sorted(per_detector.items())
        },
        "load_average": os.getloadavg()[0],
    }


def write_report(results: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"guardrails-pipeline-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.md"
    rows = [f"| {name} | {v['p50_ms']} | {v['p95_ms']} |" for name, v in results["detectors"].items()]
    path.write_text(
        "\n".join(
            [
                f"# Input guardrails latency ({results['checks']} checks of {results['messages']} messages)",
                "",
                "| what | p50 ms | p95 ms |",
                "|---|---|---|",
                f"| whole input pipeline (vector given) | {results['pipeline_p50_ms']} "
                f"| {results['pipeline_p95_ms']} |",
                *rows,
                f"| the message's embedding (computed once per turn) | {results['embedding_p50_ms']} "
                f"| {results['embedding_p95_ms']} |",
                "",
                f"Load average during the run: {results['load_average']:.2f} (2 cores).",
                "",
            ]
        )
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    import django

    django.setup()
    results = measure(load_texts(), args.rounds)
    print(json.dumps(results))
    print(f"report: {write_report(results)}")


if __name__ == "__main__":
    main()
