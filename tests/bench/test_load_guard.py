"""A regression guard on streaming: the load benchmark (bench/load.py) at a size CI can afford.

10 concurrent streams of 60 tokens, 20 ms apart, over the WebSocket and over the OpenAI-compatible
SSE endpoint, on a live daphne with the whole pipeline on. The product must deliver at least a set
fraction of the tokens per second the same client gets from the upstream read directly in the same
run: a ratio, so a slow or busy machine slows both sides and the guard holds; what it catches is the
product itself getting slower per token or per turn (work per token on the event loop, ORM on the
token path, a lost coalescing). The replies must also arrive whole and be stored whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from bench.fake_upstream import expected_content
from bench.load import (
    TRANSPORTS,
    Environment,
    RunConfig,
    ServerKind,
    distribution,
    ratios,
    run,
    server_command,
    token_audit,
)
from bench.load_report import profile_costs, render
from tests.conftest import test_database_url

# Starts spread over one reply's length, as people arrive, rather than a burst: a burst of ten turns
# measures mostly how turns queue for admission, which swings with the host's load (the full
# benchmark measures bursts). Both phases use the same schedule.
GUARD = RunConfig(streams=10, token_delay_ms=20, tokens=60, ramp_s=1.2)
# Set from the product as it stands: 0.93 (socket) and 0.94 (SSE) on a quiet 2-core host, where
# turns prepared on one thread instead of a pool measured 0.75 and below; the margin is for a
# busier host. Raise it as the relay gets faster (issue 8's goal is 0.95 at 200 streams).
MIN_TOKENS_RATIO = 0.8


@pytest.fixture(scope="module")
def guard_runs(django_db_setup: None, django_db_blocker: Any) -> dict[str, dict[str, Any]]:
    """One fake upstream, one daphne, both transports: each with its own direct baseline."""
    environment = Environment(
        database_url=test_database_url(), redis_url=settings.REDIS_URL, secret_key=settings.SECRET_KEY
    )
    with django_db_blocker.unblock():
        results = run(GUARD, TRANSPORTS, environment, warmup_streams=1)
    return {result["transport"]: result for result in results}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_product_delivers_tokens_at_a_fraction_of_the_upstreams_own_rate(
    guard_runs: dict[str, dict[str, Any]], transport: str
) -> None:
    result = guard_runs[transport]

    assert result["direct"]["errors"] == 0, json.dumps(result["direct"])
    assert result["ratios"]["tokens_per_s"] >= MIN_TOKENS_RATIO, json.dumps(result)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_reply_arrives_whole_and_is_stored_whole(guard_runs: dict[str, dict[str, Any]], transport: str) -> None:
    result = guard_runs[transport]
    product = result["product"]

    assert product["errors"] == 0, product["error_samples"]
    assert product["tokens_delivered"] == GUARD.streams * GUARD.tokens
    assert (product["lost_tokens"], product["duplicated_tokens"], product["inexact_replies"]) == (0, 0, 0)
    assert (product["lost_deltas"], product["duplicated_deltas"]) == (0, 0)
    assert result["persisted"] == {
        "expected": GUARD.streams,
        "rows": GUARD.streams,
        "complete": GUARD.streams,
        "still_streaming": 0,
        "seq_mismatch": 0,
        "ok": True,
    }


# --- the benchmark's own arithmetic (no server) -----------------------------------------------------


def test_the_token_audit_tells_lost_and_repeated_tokens_from_an_exact_reply() -> None:
    assert token_audit(expected_content(5), 5) == (0, 0, True)
    assert token_audit("tok0 tok1 tok3 tok4 ", 5) == (1, 0, False)
    assert token_audit("tok0 tok1 tok1 tok2 tok3 tok4 ", 5) == (0, 1, False)


def test_percentiles_interpolate_and_an_empty_phase_has_none() -> None:
    assert distribution([10.0, 20.0, 30.0, 40.0, 50.0]) == {"n": 5, "p50": 30.0, "p95": 48.0, "p99": 49.6, "max": 50.0}
    assert distribution([])["p99"] is None


def _phase(ttft_p50: float, ttft_p99: float, tokens_per_s: float) -> dict[str, Any]:
    return {
        "streams": 200,
        "errors": 0,
        "error_samples": [],
        "ttft_ms": {"n": 200, "p50": ttft_p50, "p95": ttft_p99, "p99": ttft_p99, "max": ttft_p99},
        "tokens_delivered": 40_000,
        "wall_s": 4.2,
        "tokens_per_s": tokens_per_s,
        "lost_tokens": 0,
        "duplicated_tokens": 0,
        "inexact_replies": 0,
        "lost_deltas": 0,
        "duplicated_deltas": 0,
        "client_cpu_percent": 30.0,
    }


def test_the_server_under_test_is_daphne_alone_or_uvicorn_with_workers() -> None:
    assert ServerKind().label == "daphne"
    command = server_command(ServerKind("uvicorn", 2), 8123)
    assert command[1:3] == ["-m", "uvicorn"] and command[command.index("--workers") + 1] == "2"
    # The product reads X-Forwarded-For itself (TRUSTED_PROXIES): the server must not rewrite it.
    assert "--no-proxy-headers" in command
    with pytest.raises(ValueError, match="daphne runs one process"):
        ServerKind("daphne", 2)


def test_the_report_fills_the_issues_table_with_the_products_rows() -> None:
    direct, product = _phase(30.0, 60.0, 9400.0), _phase(75.0, 1400.0, 4700.0)
    ratio = ratios(direct, product)
    result = {
        "transport": "ws",
        "streams": 200,
        "token_delay_ms": 20.0,
        "tokens": 200,
        "rounds": 1,
        "at": "2026-01-01T00:00:00+00:00",
        "machine": {"cpus": 2, "load_avg_1m": 0.5},
        "direct": direct,
        "product": product,
        "ratios": ratio,
        "persisted": {"expected": 200, "rows": 200, "complete": 200, "still_streaming": 0, "seq_mismatch": 0},
        "server": {"name": "uvicorn ×2", "workers": 2, "cpu_percent": 95.0, "rss_peak_mb": 600.0},
        "upstream": {"product_cpu_percent": 20.0},
        "targets": {"tokens_ratio": False, "clean": True, "ttft_added_p50": True, "ttft_added_p99": False},
    }

    report = render([result])

    assert ratio == {"tokens_per_s": 0.5, "ttft_added_p50_ms": 45.0, "ttft_added_p99_ms": 1340.0}
    assert "## The issue's table: 200 streams, 20 ms between tokens\n" in report
    assert "| **the product over its WebSocket (web chat), uvicorn ×2** | 75 ms | 1.40 s | 4,700 |" in report
    assert "2 CPUs, Python" in report and "uvicorn ×2. The fake upstream streams 200 tokens" in report
    assert "| the upstream read directly (baseline of the ws run) | 30 ms | 60 ms | 9,400 |" in report
    assert "missed: tokens_ratio, ttft_added_p99" in report


def test_a_profile_is_split_between_the_event_loop_and_other_threads(tmp_path: Path) -> None:
    profile = tmp_path / "profile.txt"
    profile.write_text(
        "_run_module_as_main (<frozen runpy>:198);relay (gateway.py:10);parse (sse.py:3) 6\n"
        "_run_module_as_main (<frozen runpy>:198);relay (gateway.py:12) 2\n"
        "_bootstrap (threading.py:1002);turn_prepare (turns.py:40) 4\n"
    )

    total, inclusive, own = profile_costs(profile, main_thread=True)

    assert (total, inclusive["relay (gateway.py)"], own["parse (sse.py)"]) == (8, 8, 6)
    assert profile_costs(profile, main_thread=False)[0] == 4
    assert profile_costs(profile)[0] == 12
