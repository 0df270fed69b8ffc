"""Time from send to first delta over the real WebSocket, on a live daphne.

Runs two servers one after the other (the offline model; the fake OpenAI-compatible upstream over
HTTP through litellm), N turns each, every turn a new conversation, and in the same run measures
the upstream's own time to first token read directly, so the product's added latency is a
difference measured under the same conditions. Prints one JSON line and writes a Markdown report
to bench/results/.

    python -m bench.first_delta --turns 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WARM_UP_TURNS = 3


@dataclass
class Series:
    name: str
    samples_ms: list[float]

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.samples_ms)
        return {
            "n": len(ordered),
            "median_ms": round(statistics.median(ordered), 2),
            "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
            "min_ms": round(ordered[0], 2),
            "max_ms": round(ordered[-1], 2),
        }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def setup_django() -> str:
    """Migrate the configured database, make a bench user, return its session cookie."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    user, _ = User.objects.get_or_create(username="bench-first-delta")
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


@contextlib.contextmanager
def daphne(port: int, env: dict[str, str]) -> Iterator[None]:
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "chatproject.asgi:application"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield
    finally:
        process.terminate()
        process.wait(timeout=20)


async def first_delta_times(port: int, cookie: str, turns: int) -> list[float]:
    samples: list[float] = []
    headers = {"Cookie": f"sessionid={cookie}", "Origin": f"http://127.0.0.1:{port}"}
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"ws://127.0.0.1:{port}/ws/chat/", headers=headers) as ws,
    ):
        for turn in range(turns + WARM_UP_TURNS):
            started = time.perf_counter()
            await ws.send_json({"type": "send", "content": f"benchmark turn {turn}: what is a monad?"})
            first: float | None = None
            while True:
                frame = json.loads((await ws.receive(timeout=60)).data)
                if frame["type"] == "delta" and first is None:
                    first = (time.perf_counter() - started) * 1000
                if frame["type"] == "error":
                    raise RuntimeError(f"turn failed: {frame}")
                if frame["type"] == "done":
                    break
            if turn >= WARM_UP_TURNS and first is not None:
                samples.append(first)
    return samples


async def upstream_direct_times(url: str, turns: int) -> list[float]:
    samples: list[float] = []
    body = {"model": "fake-model", "stream": True, "messages": [{"role": "user", "content": "what is a monad?"}]}
    async with aiohttp.ClientSession() as session:
        for _ in range(turns):
            started = time.perf_counter()
            async with session.post(f"{url}/chat/completions", json=body) as response:
                first: float | None = None
                async for line in response.content:
                    if first is None and line.startswith(b"data: ") and b'"content":"tok' in line:
                        first = (time.perf_counter() - started) * 1000
                if first is not None:
                    samples.append(first)
    return samples


def drop_queue(queue: str) -> None:
    from chatproject.celery import app

    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(queue)


def run(turns: int) -> dict[str, Any]:
    from bench.fake_upstream import FakeUpstream

    cookie = setup_django()
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    common = {
        "CHANNEL_LAYER_PREFIX": queue,
        "LOG_LEVEL": "WARNING",
        # Follow-up work (embedding the reply, summaries, facts) belongs to Celery workers in their
        # own processes; queue it where no worker listens and drop it afterwards, so the web
        # process measured here does only what it does in production.
        "CELERY_QUEUE": queue,
    }
    results: dict[str, Any] = {"benchmark": "first_delta", "turns": turns, "at": dt.datetime.now(dt.UTC).isoformat()}
    port = free_port()
    with daphne(port, {**common, "OFFLINE_TOKEN_DELAY": "0.02"}):
        results["offline"] = Series("offline", asyncio.run(first_delta_times(port, cookie, turns))).summary()
    with FakeUpstream(tokens=20, token_delay_ms=20) as fake:
        env = {
            **common,
            "LLM_MODEL": "fake",
            "LLM_MODELS": json.dumps(
                [{"name": "fake", "model": "openai/fake-model", "api_base": fake.url, "api_key": "x"}]
            ),
        }
        port = free_port()
        with daphne(port, env):
            product = asyncio.run(first_delta_times(port, cookie, turns))
        direct = asyncio.run(upstream_direct_times(fake.url, turns))
    drop_queue(queue)
    results["fake_upstream_via_product"] = Series("product", product).summary()
    results["fake_upstream_direct"] = Series("direct", direct).summary()
    results["added_median_ms"] = round(
        results["fake_upstream_via_product"]["median_ms"] - results["fake_upstream_direct"]["median_ms"], 2
    )
    return results


def write_report(results: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"first_delta-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.md"
    rows = [
        ("offline model (in process)", results["offline"]),
        ("fake upstream through the product", results["fake_upstream_via_product"]),
        ("fake upstream read directly", results["fake_upstream_direct"]),
    ]
    lines = [
        f"# Send to first delta ({results['turns']} turns each, {results['at']})",
        "",
        "| path | median ms | p90 ms | min ms | max ms |",
        "|---|---|---|---|---|",
        *[f"| {name} | {s['median_ms']} | {s['p90_ms']} | {s['min_ms']} | {s['max_ms']} |" for name, s in rows],
        "",
        f"Added by the product over the upstream's own first token: {results['added_median_ms']} ms (median).",
        "",
    ]
    path.write_text("\n".join(lines))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=50)
    args = parser.parse_args()
    results = run(args.turns)
    print(json.dumps(results))
    print(f"report: {write_report(results)}")


if __name__ == "__main__":
    main()
