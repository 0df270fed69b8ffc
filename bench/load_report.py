"""The Markdown report of `python -m bench.load --matrix`: the issue's table with the product's rows
filled, the runs against the issue's goal, and every figure of every run.

The headline table is the issue's: 200 streams, 20 ms between tokens. A matrix without that point
(`--quick`) puts its largest 20 ms point there and says so.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from bench.load import RESULTS, TARGET_ADDED_P50_MS, TARGET_ADDED_P99_MS, TARGET_SINGLE_STREAM_ADDED_MS

HEADLINE_STREAMS: Final = 200
HEADLINE_DELAY_MS: Final = 20.0
TRANSPORT_NAMES: Final = {"ws": "the product over its WebSocket (web chat)", "sse": "the product over SSE (/v1)"}
# The other relays of the issue, measured on the same kind of machine with the same client and fake.
REFERENCE_ROWS: Final = (
    ("a minimal ASGI relay (uvicorn, aiohttp reading the SSE)", "53–117 ms", "135–184 ms", "~9,600"),
    ("the same relay on daphne", "~120 ms", "~1.4 s", "~8,200"),
    ("the same relay with httpx instead of aiohttp", "0.9–2 s", "6–9 s", "~4,300–4,800"),
    ("Open WebUI (its OpenAI-compatible endpoint)", "4.1–5.6 s", "5.6–6.8 s", "~4,300"),
)


def ms(value: float | None) -> str:
    if value is None:
        return "–"
    return (
        f"{value / 1000:.2f} s" if abs(value) >= 1000 else f"{value:.0f} ms" if abs(value) >= 10 else f"{value:.1f} ms"
    )


def rate(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def headline_runs(results: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The runs of the issue's point (200 streams, 20 ms), or the largest 20 ms point there is."""
    paced = [r for r in results if r["token_delay_ms"] == HEADLINE_DELAY_MS] or list(results)
    if not paced:
        return [], ""
    wanted = (
        HEADLINE_STREAMS if any(r["streams"] == HEADLINE_STREAMS for r in paced) else max(r["streams"] for r in paced)
    )
    runs = [r for r in paced if r["streams"] == wanted]
    delay = runs[0]["token_delay_ms"]
    note = (
        ""
        if wanted == HEADLINE_STREAMS and delay == HEADLINE_DELAY_MS
        else " (this matrix has no 200-stream, 20 ms point)"
    )
    return runs, f"{wanted} streams, {delay:g} ms between tokens{note}"


def headline_table(results: Sequence[dict[str, Any]]) -> list[str]:
    runs, point = headline_runs(results)
    lines = [
        f"## The issue's table: {point}",
        "",
        "| path | TTFT p50 | TTFT p99 | tokens/s delivered |",
        "|---|---|---|---|",
    ]
    for run in runs:
        direct, product = run["direct"], run["product"]
        lines.append(
            f"| the upstream read directly (baseline of the {run['transport']} run) | {ms(direct['ttft_ms']['p50'])} | "
            f"{ms(direct['ttft_ms']['p99'])} | {rate(direct['tokens_per_s'])} |"
        )
        lines.append(
            f"| **{TRANSPORT_NAMES[run['transport']]}, {server_name(run)}** | {ms(product['ttft_ms']['p50'])} | "
            f"{ms(product['ttft_ms']['p99'])} | {rate(product['tokens_per_s'])} |"
        )
    lines += [f"| {name} (issue 8, not this run) | {p50} | {p99} | {tps} |" for name, p50, p99, tps in REFERENCE_ROWS]
    return [*lines, ""]


def server_name(run: dict[str, Any]) -> str:
    return str(run["server"]["name"])


def verdict(run: dict[str, Any]) -> str:
    failed = [name for name, met in run["targets"].items() if not met]
    return "met" if not failed else "missed: " + ", ".join(failed)


def goal_table(results: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "## Against the goal",
        "",
        f"Tokens delivered ≥ 95% of the upstream's own; time to first token added p50 ≤ {TARGET_ADDED_P50_MS:g} ms, "
        f"p99 ≤ {TARGET_ADDED_P99_MS:g} ms (one stream alone: ≤ {TARGET_SINGLE_STREAM_ADDED_MS:g} ms); no error, "
        "no lost or duplicated delta, every reply persisted complete.",
        "",
        "| transport | streams | ms/token | tokens/s ratio | TTFT added p50 | TTFT added p99 | clean | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in results:
        ratio = run["ratios"]
        lines.append(
            f"| {run['transport']} | {run['streams']} | {run['token_delay_ms']:g} | {ratio['tokens_per_s']} | "
            f"{ms(ratio['ttft_added_p50_ms'])} | {ms(ratio['ttft_added_p99_ms'])} | "
            f"{'yes' if run['targets']['clean'] else 'no'} | {verdict(run)} |"
        )
    return [*lines, ""]


def detail_table(results: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "## Every run",
        "",
        "TTFT and tokens/s from the client's side; `lost/dup` count tokens (text) and, over the socket, "
        "delta numbers; `persisted` is complete rows with the whole text over replies; CPU is percent of one "
        "core over the product phase (every worker process of the server together).",
        "",
        "| transport | streams × rounds | ms/token | direct TTFT p50 / p99 | product TTFT p50 / p95 / p99 | "
        "direct tok/s | product tok/s | errors | lost/dup tokens | lost/dup deltas | persisted | "
        "server CPU | server RSS | fake CPU | client CPU | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in results:
        d, p, s = run["direct"], run["product"], run["persisted"]
        lines.append(
            f"| {run['transport']} | {run['streams']} × {run['rounds']} | {run['token_delay_ms']:g} | "
            f"{ms(d['ttft_ms']['p50'])} / {ms(d['ttft_ms']['p99'])} | "
            f"{ms(p['ttft_ms']['p50'])} / {ms(p['ttft_ms']['p95'])} / {ms(p['ttft_ms']['p99'])} | "
            f"{rate(d['tokens_per_s'])} | {rate(p['tokens_per_s'])} | {p['errors']} | "
            f"{p['lost_tokens']}/{p['duplicated_tokens']} | {p['lost_deltas']}/{p['duplicated_deltas']} | "
            f"{s['complete']}/{s['expected']} | {run['server']['cpu_percent']:.0f}% | "
            f"{run['server']['rss_peak_mb']:.0f} MB | {run['upstream']['product_cpu_percent']:.0f}% | "
            f"{p['client_cpu_percent']:.0f}% | {run['machine']['load_avg_1m']} |"
        )
    errors = sorted({sample for run in results for sample in run["product"]["error_samples"]})
    if errors:
        lines += ["", "Errors seen (first of each kind):", "", *[f"- `{error}`" for error in errors[:10]]]
    return [*lines, ""]


def render(results: Sequence[dict[str, Any]], *, quick: bool = False) -> str:
    at = results[0]["at"] if results else dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    tokens = sorted({r["tokens"] for r in results})
    header = [
        f"# Load: the product against the upstream read directly ({'quick matrix, ' if quick else ''}{at})",
        "",
        f"{results[0]['machine']['cpus'] if results else '?'} CPUs, Python {platform.python_version()}, "
        f"{', '.join(sorted({server_name(r) for r in results}))}. "
        f"The fake upstream streams {', '.join(map(str, tokens))} tokens per reply. Every product phase "
        "follows its own direct baseline, same client, same number of streams. `python -m bench.load "
        "--help` says how each figure is taken; docs/performance.md what they mean.",
        "",
    ]
    return "\n".join([*header, *headline_table(results), *goal_table(results), *detail_table(results)])


def write_report(results: Sequence[dict[str, Any]], *, quick: bool = False) -> Path:
    """Write the report and the raw JSON lines beside it; return the report's path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"load-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
    path = RESULTS / f"{stem}.md"
    path.write_text(render(results, quick=quick))
    (RESULTS / f"{stem}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    return path


# --- profiles (py-spy's collapsed stacks, from `python -m bench.load --profile DIR`) -----------------


def _frame_name(frame: str) -> str:
    """`func (path/file.py:123)` without its line: one entry per function, however many lines."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


# The server's main thread runs the event loop: every stack of it starts here. The other threads
# are the executor's (ORM work in sync_to_async, the embedder) and libraries' own.
MAIN_THREAD_ROOT: Final = "_run_module_as_main"


def profile_costs(path: Path, *, main_thread: bool | None = None) -> tuple[int, dict[str, int], dict[str, int]]:
    """(samples, inclusive samples per function, self samples per function) of a collapsed profile:
    of every thread, or only the event loop's (`main_thread=True`) or only the others' (False)."""
    total = 0
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        if main_thread is not None and stack.startswith(MAIN_THREAD_ROOT) is not main_thread:
            continue
        count = int(count_text)
        frames = [_frame_name(frame) for frame in stack.split(";")]
        total += count
        for name in set(frames):
            inclusive[name] = inclusive.get(name, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count
    return total, inclusive, own


def profile_summary(path: Path, top: int = 25) -> str:
    """The functions holding most samples, inclusive and self, for the event loop's thread and for
    the others, as percentages of that thread group's samples."""
    everything, _, _ = profile_costs(path)
    lines = [f"{path}: {everything} samples (idle time is not sampled)", ""]
    for title, main_thread in (("event loop (main thread)", True), ("other threads", False)):
        total, inclusive, own = profile_costs(path, main_thread=main_thread)
        lines += [f"## {title}: {total} samples, {100 * total / max(everything, 1):.0f}% of all", ""]
        for kind, costs in (("inclusive", inclusive), ("self", own)):
            ranked = sorted(costs.items(), key=lambda item: item[1], reverse=True)[:top]
            lines += [f"{kind}:", *[f"{100 * count / total:6.1f}%  {name}" for name, count in ranked], ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.load_report", description="Summarize py-spy profiles.")
    parser.add_argument("profiles", type=Path, nargs="+", help="collapsed stacks written by bench.load --profile")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    for path in args.profiles:
        print(profile_summary(path, args.top))


if __name__ == "__main__":
    main()
