"""Throughput and memory of the configured embedder on chat-like sentences of 20–60 words.

Measures, in one fresh process: the model's load time (lazy imports, file checks, onnxruntime
session), the process RSS before and after loading and after use, and texts per second embedding
one text per call (the query path) and batches of 32 (the background path). Prints one JSON line
and writes a Markdown report to bench/results/.

    python -m bench.embeddings --texts 256 --threads 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WARM_UP_CALLS = 5

# Pieces of the messages people send a chat assistant, combined into sentences of 20–60 words.
OPENERS = [
    "Hi, quick question:",
    "I have been struggling with this all morning and",
    "Could you help me out here, because",
    "Following up on what we discussed yesterday,",
    "My manager asked me to sort this out today and",
    "Sorry if this is a silly question, but",
]
REQUESTS = [
    "how do I reset my password when the recovery email never arrives",
    "can you summarise the attached meeting notes and list the action items for the design team",
    "what is the difference between a process and a thread in an operating system",
    "please rewrite this paragraph so it sounds friendlier without losing the main point",
    "I need a vegetarian dinner recipe for six people that does not use any nuts",
    "why does my Python script run out of memory when it reads a large CSV file",
    "draft a short email to my landlord about the heating that has been broken since Monday",
    "explain how compound interest works using a savings account as the example",
    "which of these two laptops would be better for video editing on a tight budget",
    "translate the following note into Spanish and keep the tone informal",
]
DETAILS = [
    "I already tried restarting everything twice and clearing the cache in the browser.",
    "My daughter is allergic to peanuts, so that part really matters to us.",
    "The deadline is on Friday and the client is expecting a first draft before then.",
    "Keep it short, ideally under two hundred words, and avoid any technical jargon.",
    "We are using PostgreSQL fifteen on a small server with two cores and four gigabytes of memory.",
    "Last time you suggested something similar but it did not work for my situation at all.",
    "It should be suitable for someone who has never done anything like this before.",
    "If you need more information about the setup, just ask and I will paste it here.",
]


def chat_sentences(count: int, seed: int = 7) -> list[str]:
    """`count` distinct messages of 20–60 words, the same for every run."""
    rng = random.Random(seed)
    texts: list[str] = []
    seen: set[str] = set()
    while len(texts) < count:
        parts = [rng.choice(OPENERS), rng.choice(REQUESTS) + "?", *rng.sample(DETAILS, rng.randint(0, 3))]
        text = " ".join(parts)
        if 20 <= len(text.split()) <= 60 and text not in seen:
            seen.add(text)
            texts.append(text)
    return texts


def rss_mb(process: psutil.Process) -> float:
    return round(process.memory_info().rss / 2**20, 1)


def per_second(count: int, seconds: float) -> float:
    return round(count / seconds, 1)


def measure(texts: list[str], rounds: int) -> dict[str, Any]:
    from chatproject.llm import embeddings

    process = psutil.Process()
    rss_before = rss_mb(process)
    started = time.perf_counter()
    embeddings.preload()
    load_s = time.perf_counter() - started
    rss_loaded = rss_mb(process)

    for text in texts[:WARM_UP_CALLS]:
        embeddings.embed_one(text)
    embeddings.embed(texts[:32])

    latencies: list[float] = []
    for text in texts:
        call_started = time.perf_counter()
        embeddings.embed_one(text)
        latencies.append(time.perf_counter() - call_started)

    batched_s = []
    for _ in range(rounds):
        round_started = time.perf_counter()
        embeddings.embed(texts, batch_size=32)
        batched_s.append(time.perf_counter() - round_started)

    return {
        "model": embeddings.model_name(),
        "threads": _configured_threads(),
        "texts": len(texts),
        "words_mean": round(statistics.mean(len(text.split()) for text in texts), 1),
        "word_pieces_mean": word_pieces_mean(texts),
        "load_s": round(load_s, 3),
        "rss_before_load_mb": rss_before,
        "rss_after_load_mb": rss_loaded,
        "rss_after_use_mb": rss_mb(process),
        "batch1_texts_per_s": per_second(len(texts), sum(latencies)),
        "batch1_median_ms": round(statistics.median(latencies) * 1000, 2),
        "batch1_p90_ms": round(sorted(latencies)[int(0.9 * (len(latencies) - 1))] * 1000, 2),
        "batch32_texts_per_s": per_second(len(texts), statistics.median(batched_s)),
        "batch32_rounds": rounds,
    }


def word_pieces_mean(texts: list[str]) -> float | None:
    """Tokens per text as the local model counts them ([CLS] and [SEP] included)."""
    from chatproject.llm import embeddings

    engine = embeddings.backend()
    if not isinstance(engine, embeddings.MiniLMOnnxBackend):
        return None
    tokenizer = engine._loaded().tokenizer
    return round(statistics.mean(len(tokenizer.encode(text).ids) for text in texts), 1)


def _configured_threads() -> int:
    from django.conf import settings

    return int(settings.EMBEDDING_THREADS)


def write_report(results: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"embeddings-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.md"
    r = results
    lines = [
        f"# Embeddings: {r['model']} ({r['at']})",
        "",
        f"{r['texts']} chat messages, {r['words_mean']} words ({r['word_pieces_mean']} word pieces) on average;"
        f" onnxruntime intra-op threads: {r['threads']}; {r['cpus']} CPUs, load average {r['load_average']}.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| batch 1: texts/s | {r['batch1_texts_per_s']} |",
        f"| batch 1: median / p90 ms per text | {r['batch1_median_ms']} / {r['batch1_p90_ms']} |",
        f"| batch 32: texts/s (median of {r['batch32_rounds']} rounds) | {r['batch32_texts_per_s']} |",
        f"| model load (imports, sha256 checks, session) | {r['load_s']} s |",
        f"| RSS before load | {r['rss_before_load_mb']} MB |",
        f"| RSS after load | {r['rss_after_load_mb']} MB |",
        f"| RSS after the runs above | {r['rss_after_use_mb']} MB |",
        "",
    ]
    path.write_text("\n".join(lines))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3, help="repetitions of the batch-32 pass")
    parser.add_argument("--threads", type=int, default=0, help="EMBEDDING_THREADS for this run (0: the setting)")
    args = parser.parse_args()
    if args.threads:
        os.environ["EMBEDDING_THREADS"] = str(args.threads)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    import django

    django.setup()
    results = measure(chat_sentences(args.texts), args.rounds)
    results |= {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "python": platform.python_version(),
    }
    print(json.dumps(results))
    print(f"report: {write_report(results)}")


if __name__ == "__main__":
    main()
