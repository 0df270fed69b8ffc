"""Concurrent chat streams through the product, with the upstream read directly as the baseline.

One run starts the fake OpenAI-compatible upstream (bench/fake_upstream.py, in its own process:
`--tokens` per reply, `--token-delay-ms` apart) and a daphne serving the product against a
benchmark database, with the model pointed at the fake. The whole pipeline stays on: the send rate
limits and the LLM queue (limits far above the load, so they run but never refuse), a token budget
(a plan with limits no run can reach), the guardrails, the context builder, persistence and the
channel layer. Follow-up work goes to a Celery queue no worker reads, dropped after the run: it
belongs to other processes in production.

For each transport (`ws`: the web chat's socket; `sse`: `POST /v1/chat/completions`) it measures,
from the client's side, N concurrent streams, each user on its own connection:

- first the upstream read directly by the same client, N streams: the baseline of this run;
- then the product: time to first token (p50/p95/p99), tokens delivered per second (all tokens
  received / wall time of the phase), errors, lost or duplicated tokens (the fake's reply is
  deterministic) and, over the socket, gaps and repeats in the delta numbering;
- then the database: every reply persisted `complete`, with the whole text and, over the socket,
  the last delta number the client saw;
- daphne's and the fake's CPU time and daphne's peak RSS during the phase, and the client's own
  CPU (a client near one core means the client, not the server, set the pace).

Each run prints one JSON line with both phases and the ratios (tokens/s product over direct, time
to first token added at p50 and p99). `--matrix` runs the issue's matrix and writes a Markdown
report to bench/results/ (see bench/load_report.py); `--profile` records daphne with py-spy.

    python -m bench.load --transport ws --streams 10 --token-delay-ms 20
    python -m bench.load --matrix [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import aiohttp

from bench.fake_upstream import expected_content

ROOT: Final = Path(__file__).resolve().parent.parent
RESULTS: Final = ROOT / "bench" / "results"
DEFAULT_DATABASE_URL: Final = "postgres://postgres@127.0.0.1:5432/parley_bench"

Transport = Literal["ws", "sse"]
TRANSPORTS: Final[tuple[Transport, ...]] = ("ws", "sse")
MODEL_NAME: Final = "fake"
USER_PREFIX: Final = "bench-load-"
WARMUP_USER: Final = f"{USER_PREFIX}warmup"
PLAN_NAME: Final = "bench-load"
# Far above anything a run spends or sends: the checks run, none refuses.
UNREACHABLE_TOKENS: Final = 10**12
UNREACHABLE_RATE: Final = "100000000/60"
UNREACHABLE_CONCURRENCY: Final = 1_000_000
WARMUP_STREAMS: Final = 2
STARTUP_TIMEOUT_S: Final = 90.0
PROMPT: Final = "benchmark stream {index}: what is a monad?"

# The goal (issue 8): what a run is held to.
TARGET_TOKENS_RATIO: Final = 0.95
TARGET_ADDED_P50_MS: Final = 50.0
TARGET_ADDED_P99_MS: Final = 250.0
TARGET_SINGLE_STREAM_ADDED_MS: Final = 10.0


@dataclass(frozen=True)
class RunConfig:
    """One point of the matrix: the fake's reply and the load put on it."""

    streams: int
    token_delay_ms: float
    tokens: int = 200
    # Streams each client runs one after the other; more give a single stream enough samples.
    rounds: int = 1
    # Starts spread evenly over this many seconds (0: all at once, as a burst).
    ramp_s: float = 0.0

    def __post_init__(self) -> None:
        if self.streams < 1 or self.tokens < 1 or self.rounds < 1:
            raise ValueError("streams, tokens and rounds must be at least 1")
        if self.token_delay_ms < 0 or self.ramp_s < 0:
            raise ValueError("token_delay_ms and ramp_s must be >= 0")

    @property
    def stream_timeout_s(self) -> float:
        # Ten times the reply's own length, and room for a long line of turns at startup.
        return 60.0 + 10 * self.tokens * self.token_delay_ms / 1000 + self.streams * 0.2


def rounds_for(streams: int, min_samples: int) -> int:
    """Rounds that give at least `min_samples` times to first token (a lone stream needs several)."""
    return max(1, math.ceil(min_samples / streams))


# --- what one stream saw ------------------------------------------------------------------------


@dataclass
class StreamResult:
    started: float
    ended: float = 0.0
    ttft_ms: float | None = None
    text: str = ""
    error: str | None = None
    # Delta numbering over the socket: gaps (lost) and numbers not above the last (repeated).
    lost_deltas: int = 0
    duplicated_deltas: int = 0
    message_id: int | None = None
    last_seq: int = 0


def token_audit(text: str, tokens: int) -> tuple[int, int, bool]:
    """(lost, duplicated, exact) for a reassembled reply of the fake: `tok0 tok1 ... tok{n-1} `."""
    seen: dict[int, int] = {}
    for word in text.split():
        if word.startswith("tok") and word[3:].isdigit():
            index = int(word[3:])
            seen[index] = seen.get(index, 0) + 1
    lost = sum(1 for index in range(tokens) if index not in seen)
    duplicated = sum(count - 1 for count in seen.values())
    return lost, duplicated, text == expected_content(tokens)


def delivered_tokens(text: str) -> int:
    # Every token of the fake ends with one space: counting spaces costs nothing per chunk.
    return text.count(" ")


class StreamClient(Protocol):
    async def open(self) -> None: ...

    async def stream(self, index: int) -> StreamResult: ...

    async def close(self) -> None: ...


# --- SSE: the upstream itself and the product's /v1 endpoint --------------------------------------


class StreamFailed(Exception):
    pass


async def sse_contents(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """The `delta.content` of each chat.completion.chunk, until `[DONE]`; an error event raises."""
    async for line in response.content:
        if not line.startswith(b"data: "):
            continue
        payload = line[6:].strip()
        if payload == b"[DONE]":
            return
        event = json.loads(payload)
        if "error" in event:
            raise StreamFailed(f"error event: {event['error']}")
        choices = event.get("choices")
        if choices:
            content = choices[0].get("delta", {}).get("content")
            if content:
                yield content
    raise StreamFailed("the stream ended without [DONE]")


class SseClient:
    """One client of an OpenAI-compatible streaming endpoint (the fake, or the product's /v1)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, model: str, api_key: str, timeout_s: float) -> None:
        self.session = session
        self.url = url
        self.model = model
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def stream(self, index: int) -> StreamResult:
        body = {
            "model": self.model,
            "stream": True,
            "messages": [{"role": "user", "content": PROMPT.format(index=index)}],
        }
        result = StreamResult(started=time.perf_counter())
        parts: list[str] = []
        try:
            async with self.session.post(self.url, json=body, headers=self.headers, timeout=self.timeout) as response:
                if response.status != 200:
                    raise StreamFailed(f"HTTP {response.status}: {(await response.text())[:200]}")
                async for content in sse_contents(response):
                    if result.ttft_ms is None:
                        result.ttft_ms = (time.perf_counter() - result.started) * 1000
                    parts.append(content)
        except (StreamFailed, aiohttp.ClientError, TimeoutError, ValueError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"[:300]
        result.ended = time.perf_counter()
        result.text = "".join(parts)
        return result


# --- the web chat's WebSocket -------------------------------------------------------------------


class WsClient:
    """One browser tab: a socket logged in with a session cookie, one new conversation per stream."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, cookie: str, timeout_s: float) -> None:
        self.session = session
        self.base_url = base_url
        self.cookie = cookie
        self.timeout_s = timeout_s
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def open(self) -> None:
        headers = {"Cookie": f"sessionid={self.cookie}", "Origin": self.base_url}
        ws_url = self.base_url.replace("http://", "ws://", 1) + "/ws/chat/"
        self.ws = await self.session.ws_connect(ws_url, headers=headers, max_msg_size=0, heartbeat=None)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def stream(self, index: int) -> StreamResult:
        result = StreamResult(started=time.perf_counter())
        parts: list[str] = []
        try:
            if self.ws is None or self.ws.closed:
                await self.open()
            assert self.ws is not None
            result.started = time.perf_counter()
            await self.ws.send_str(json.dumps({"type": "send", "content": PROMPT.format(index=index)}))
            async with asyncio.timeout(self.timeout_s):
                await self._receive_reply(self.ws, result, parts)
        except (StreamFailed, aiohttp.ClientError, TimeoutError, ValueError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"[:300]
        result.ended = time.perf_counter()
        result.text = "".join(parts)
        return result

    @staticmethod
    async def _receive_reply(ws: aiohttp.ClientWebSocketResponse, result: StreamResult, parts: list[str]) -> None:
        while True:
            message = await ws.receive()
            if message.type is not aiohttp.WSMsgType.TEXT:
                raise StreamFailed(f"socket closed or sent {message.type.name}")
            frame = json.loads(message.data)
            kind = frame.get("type")
            if kind == "delta":
                if result.ttft_ms is None:
                    result.ttft_ms = (time.perf_counter() - result.started) * 1000
                seq = frame["seq"]
                if seq <= result.last_seq:
                    result.duplicated_deltas += 1
                    continue
                result.lost_deltas += seq - result.last_seq - 1
                result.last_seq = seq
                result.message_id = frame["message_id"]
                parts.append(frame["text"])
            elif kind == "done":
                result.message_id = frame["message_id"]
                if frame["status"] != "complete":
                    raise StreamFailed(f"reply ended {frame['status']}: {frame.get('error')}")
                if frame["content"] != "".join(parts):
                    raise StreamFailed("done.content differs from the deltas received")
                return
            elif kind == "error":
                raise StreamFailed(f"error frame: {frame.get('code')}: {frame.get('message')}")


# --- running N clients at once ------------------------------------------------------------------


@dataclass
class Phase:
    """Every stream of one phase (direct or product) and what the client spent on them."""

    config: RunConfig
    results: list[StreamResult] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0
    client_cpu_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        tokens = self.config.tokens
        ttfts = [r.ttft_ms for r in self.results if r.ttft_ms is not None]
        audits = [token_audit(r.text, tokens) for r in self.results]
        errors = [r.error for r in self.results if r.error]
        wall = max(self.ended - self.started, 1e-9)
        delivered = sum(delivered_tokens(r.text) for r in self.results)
        return {
            "streams": len(self.results),
            "errors": len(errors),
            "error_samples": sorted(set(errors))[:3],
            "ttft_ms": distribution(ttfts),
            "tokens_delivered": delivered,
            "wall_s": round(wall, 3),
            "tokens_per_s": round(delivered / wall, 1),
            "lost_tokens": sum(a[0] for a in audits),
            "duplicated_tokens": sum(a[1] for a in audits),
            "inexact_replies": sum(1 for a in audits if not a[2]),
            "lost_deltas": sum(r.lost_deltas for r in self.results),
            "duplicated_deltas": sum(r.duplicated_deltas for r in self.results),
            "client_cpu_percent": round(100 * self.client_cpu_s / wall, 1),
        }


def percentile(samples: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    ordered = sorted(samples)
    rank = q / 100 * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def distribution(samples: Sequence[float]) -> dict[str, float | int | None]:
    if not samples:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    return {
        "n": len(samples),
        "p50": round(percentile(samples, 50), 2),
        "p95": round(percentile(samples, 95), 2),
        "p99": round(percentile(samples, 99), 2),
        "max": round(max(samples), 2),
    }


async def _worker(
    client: StreamClient, index: int, config: RunConfig, start_at: float, out: list[StreamResult]
) -> None:
    delay = start_at - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)
    for round_number in range(config.rounds):
        out.append(await client.stream(index * config.rounds + round_number))


async def run_phase(clients: Sequence[StreamClient], config: RunConfig) -> Phase:
    """Open every client, then start their streams together (or over `ramp_s`) and wait for all."""
    phase = Phase(config=config)
    await asyncio.gather(*(client.open() for client in clients))
    try:
        cpu_before = time.process_time()
        phase.started = time.perf_counter()
        step = config.ramp_s / len(clients)
        await asyncio.gather(
            *(
                _worker(client, index, config, phase.started + index * step, phase.results)
                for index, client in enumerate(clients)
            )
        )
        phase.ended = time.perf_counter()
        phase.client_cpu_s = time.process_time() - cpu_before
    finally:
        await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
    return phase


def _session() -> aiohttp.ClientSession:
    # No pool limit: every stream gets its own connection, as N separate people would.
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None))


async def direct_phase(upstream_url: str, config: RunConfig) -> Phase:
    async with _session() as session:
        url = f"{upstream_url}/v1/chat/completions"
        clients = [SseClient(session, url, "fake-model", "x", config.stream_timeout_s) for _ in range(config.streams)]
        return await run_phase(clients, config)


async def product_phase(server_url: str, transport: Transport, users: Sequence[BenchUser], config: RunConfig) -> Phase:
    async with _session() as session:
        clients: list[StreamClient]
        if transport == "ws":
            clients = [WsClient(session, server_url, user.cookie, config.stream_timeout_s) for user in users]
        else:
            url = f"{server_url}/v1/chat/completions"
            clients = [SseClient(session, url, MODEL_NAME, user.api_key, config.stream_timeout_s) for user in users]
        return await run_phase(clients, config)


# --- processes: the fake upstream and daphne ----------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ProcessMeter:
    """CPU seconds and resident memory of one process: psutil when installed, else /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            import psutil
        except ImportError:
            self._process: Any = None
        else:
            self._process = psutil.Process(pid)

    def _processes(self) -> list[Any]:
        """The server and its worker processes (uvicorn --workers forks them)."""
        return [self._process, *self._process.children(recursive=True)]

    def cpu_seconds(self) -> float:
        if self._process is not None:
            return float(sum(sum(p.cpu_times()[:2]) for p in self._processes()))
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # utime and stime are fields 14 and 15 of stat(5); after the name, 11 and 12 (0-based).
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        if self._process is not None:
            return int(sum(p.memory_info().rss for p in self._processes()))
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0


@dataclass
class Usage:
    cpu_s: float = 0.0
    wall_s: float = 0.0
    rss_peak_bytes: int = 0

    def summary(self) -> dict[str, float]:
        return {
            "cpu_s": round(self.cpu_s, 2),
            "cpu_percent": round(100 * self.cpu_s / max(self.wall_s, 1e-9), 1),
            "rss_peak_mb": round(self.rss_peak_bytes / 2**20, 1),
        }


@contextlib.contextmanager
def measured(meter: ProcessMeter, every_s: float = 0.2) -> Iterator[Usage]:
    """CPU used and the highest RSS seen while the block runs (sampled from a thread)."""
    usage = Usage()
    stop = threading.Event()

    def sample() -> None:
        while True:
            with contextlib.suppress(OSError, ValueError):
                usage.rss_peak_bytes = max(usage.rss_peak_bytes, meter.rss_bytes())
            if stop.wait(every_s):
                return

    sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    cpu_before, wall_before = meter.cpu_seconds(), time.perf_counter()
    sampler.start()
    try:
        yield usage
    finally:
        stop.set()
        sampler.join()
        usage.cpu_s = meter.cpu_seconds() - cpu_before
        usage.wall_s = time.perf_counter() - wall_before


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def meter(self) -> ProcessMeter:
        return ProcessMeter(self.process.pid)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def _wait_until_listening(server: Server, port: int) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on {port} after {STARTUP_TIMEOUT_S:.0f}s:\n{server.log_tail()}")
        try:
            code = server.process.wait(timeout=0.1)  # also the pause between attempts
        except subprocess.TimeoutExpired:
            continue
        raise RuntimeError(f"the server exited with code {code} before listening:\n{server.log_tail()}")


@contextlib.contextmanager
def started(command: Sequence[str], env: Mapping[str, str], port: int, log: Path) -> Iterator[Server]:
    """Start a server process, wait until it listens, stop it (SIGTERM, then SIGKILL) afterwards."""
    with log.open("wb") as out:
        process = subprocess.Popen(list(command), cwd=ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT)
    server = Server(process=process, url=f"http://127.0.0.1:{port}", log=log)
    try:
        _wait_until_listening(server, port)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def fake_upstream_command(port: int, config: RunConfig) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.fake_upstream",
        "--port",
        str(port),
        "--tokens",
        str(config.tokens),
        "--token-delay-ms",
        str(config.token_delay_ms),
    ]


SERVERS: Final = ("daphne", "uvicorn")


@dataclass(frozen=True)
class ServerKind:
    """The ASGI server under test and its worker processes (uvicorn only: daphne runs one)."""

    name: str = "daphne"
    workers: int = 1

    def __post_init__(self) -> None:
        if self.name not in SERVERS or self.workers < 1 or (self.name == "daphne" and self.workers != 1):
            raise ValueError(f"{self.name} with {self.workers} workers: daphne runs one process (--workers 1)")

    @property
    def label(self) -> str:
        return self.name if self.workers == 1 else f"{self.name} ×{self.workers}"


def daphne_command(port: int) -> list[str]:
    return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "chatproject.asgi:application"]


def server_command(kind: ServerKind, port: int) -> list[str]:
    if kind.name == "daphne":
        return daphne_command(port)
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(kind.workers),
        "--no-access-log",
        "--no-proxy-headers",
        "--log-level",
        "warning",
        "chatproject.asgi:application",
    ]


@dataclass(frozen=True)
class Environment:
    """Where the product under test keeps its state."""

    database_url: str
    redis_url: str
    secret_key: str
    # Prefix of every Redis key of the run (channel layer, rate limits, LLM queue) and its Celery queue.
    prefix: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}")


def product_env(environment: Environment, upstream_url: str) -> dict[str, str]:
    """The product's settings for a run: production-like, every check on, nothing refusing."""
    model = {
        "name": MODEL_NAME,
        "model": "openai/fake-model",
        "api_base": f"{upstream_url}/v1",
        "api_key": "bench",
        "max_concurrency": UNREACHABLE_CONCURRENCY,
    }
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "chatproject.settings",
        "DEBUG": "false",
        "SECRET_KEY": environment.secret_key,
        "DATABASE_URL": environment.database_url,
        "REDIS_URL": environment.redis_url,
        "CHANNEL_LAYER_PREFIX": environment.prefix,
        "REDIS_KEY_PREFIX": environment.prefix,
        "CELERY_QUEUE": environment.prefix,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "LOG_LEVEL": "WARNING",
        "LLM_MODEL": MODEL_NAME,
        "LLM_MODELS": json.dumps([model]),
        "RATE_LIMIT_SEND_USER": UNREACHABLE_RATE,
        "RATE_LIMIT_SEND_IP": UNREACHABLE_RATE,
    }


@contextlib.contextmanager
def py_spy(pid: int, output: Path, *, idle: bool = False) -> Iterator[None]:
    """Sample a running process (and its workers) with py-spy (collapsed stacks) while the block
    runs; with `idle`, waiting threads are sampled too (wall-clock time: where turns wait, not
    only what burns CPU)."""
    command = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--nonblocking", "--output", str(output)]
    command += ["--rate", os.environ.get("BENCH_PROFILE_RATE", "100")]
    command.append("--subprocesses")
    if idle:
        command.append("--idle")
    spy_binary = Path(sys.executable).with_name("py-spy")
    if spy_binary.exists():
        command[0] = str(spy_binary)
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        # py-spy writes its output when interrupted, as after Ctrl-C.
        spy.send_signal(signal.SIGINT)
        _, stderr = spy.communicate(timeout=60)
        if not output.exists():
            raise RuntimeError(f"py-spy wrote no profile: {stderr.decode(errors='replace')[-1000:]}")


# --- the benchmark database -----------------------------------------------------------------------


@dataclass(frozen=True)
class BenchUser:
    user_id: int
    cookie: str
    api_key: str


def bench_users(count: int, *, name_prefix: str = USER_PREFIX) -> list[BenchUser]:
    """`count` users on a plan no run can exhaust, each with a session and a fresh API key."""
    return [_bench_user(f"{name_prefix}{index}") for index in range(count)]


def _bench_user(username: str) -> BenchUser:
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User

    from conversations.models import ApiKey, Plan, UserPlan
    from conversations.services.api_keys import api_key_create, api_keys_revoke

    plan, _ = Plan.objects.update_or_create(
        name=PLAN_NAME,
        defaults={
            "label": "Benchmark",
            "daily_token_limit": UNREACHABLE_TOKENS,
            "monthly_token_limit": UNREACHABLE_TOKENS,
        },
    )
    user, _ = User.objects.get_or_create(username=username)
    UserPlan.objects.update_or_create(user=user, defaults={"plan": plan})
    # Each run makes a key; the old ones go so a user never reaches the per-user limit of keys.
    api_keys_revoke(keys=ApiKey.objects.filter(user=user))
    _, secret = api_key_create(user=user, name="benchmark")
    session = import_module(settings.SESSION_ENGINE).SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return BenchUser(user_id=user.pk, cookie=str(session.session_key), api_key=secret)


def fresh_connection() -> None:
    """Drop a database connection that has gone stale or been closed while a phase ran (minutes
    without a query); the next query opens a new one."""
    from django.db import close_old_connections

    close_old_connections()


def last_message_id() -> int:
    from django.db.models import Max

    from conversations.models import Message

    return int(Message.objects.aggregate(top=Max("pk"))["top"] or 0)


def persisted_check(*, users: Sequence[BenchUser], after_id: int, phase: Phase) -> dict[str, Any]:
    """Every reply of the phase is a `complete` row holding the whole text (and, for the socket,
    numbered up to the last delta the client saw)."""
    from conversations.models import Message

    rows = list(
        Message.objects.filter(
            conversation__owner_id__in=[user.user_id for user in users], role=Message.Role.ASSISTANT, pk__gt=after_id
        ).values_list("pk", "status", "content", "seq")
    )
    expected_text = expected_content(phase.config.tokens)
    seen_seq = {r.message_id: r.last_seq for r in phase.results if r.message_id is not None}
    complete = sum(1 for _, status, content, _ in rows if status == "complete" and content == expected_text)
    seq_mismatch = sum(1 for pk, _, _, seq in rows if pk in seen_seq and seen_seq[pk] != seq)
    expected = len(phase.results)
    return {
        "expected": expected,
        "rows": len(rows),
        "complete": complete,
        "still_streaming": sum(1 for _, status, _, _ in rows if status == "streaming"),
        "seq_mismatch": seq_mismatch,
        "ok": len(rows) == expected == complete and seq_mismatch == 0,
    }


def setup_database(database_url: str) -> None:
    """Create the benchmark database if it is missing, point Django at it and migrate it."""
    import psycopg

    name = database_url.rsplit("/", 1)[1].split("?", 1)[0]
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            connection.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def cleanup_redis(environment: Environment) -> None:
    """Drop the run's Celery queue (follow-up work nobody will do) and every key under its prefix."""
    import redis

    client = redis.Redis.from_url(environment.redis_url)
    try:
        keys = [environment.prefix, *client.scan_iter(match=f"{environment.prefix}:*", count=1000)]
        client.delete(*keys)
    finally:
        client.close()


# --- one run ------------------------------------------------------------------------------------


def ratios(direct: dict[str, Any], product: dict[str, Any]) -> dict[str, float | None]:
    def added(q: str) -> float | None:
        mine, theirs = product["ttft_ms"][q], direct["ttft_ms"][q]
        return None if mine is None or theirs is None else round(mine - theirs, 2)

    return {
        "tokens_per_s": round(product["tokens_per_s"] / direct["tokens_per_s"], 3) if direct["tokens_per_s"] else None,
        "ttft_added_p50_ms": added("p50"),
        "ttft_added_p99_ms": added("p99"),
    }


def targets(
    config: RunConfig, product: dict[str, Any], ratio: dict[str, Any], persisted: dict[str, Any]
) -> dict[str, bool]:
    """The issue's goal, judged on this run (a lone stream is held to the single-stream target)."""
    clean = (
        product["errors"] == 0
        and product["lost_tokens"] == product["duplicated_tokens"] == 0
        and product["lost_deltas"] == product["duplicated_deltas"] == 0
        and persisted["ok"]
    )
    p50, p99 = ratio["ttft_added_p50_ms"], ratio["ttft_added_p99_ms"]
    met = {
        "tokens_ratio": (ratio["tokens_per_s"] or 0) >= TARGET_TOKENS_RATIO,
        "clean": clean,
    }
    if config.streams == 1:
        met["ttft_added_single"] = p50 is not None and p50 <= TARGET_SINGLE_STREAM_ADDED_MS
    else:
        met["ttft_added_p50"] = p50 is not None and p50 <= TARGET_ADDED_P50_MS
        met["ttft_added_p99"] = p99 is not None and p99 <= TARGET_ADDED_P99_MS
    return met


def _warm_up(
    server: Server, users: Sequence[BenchUser], transports: Sequence[Transport], config: RunConfig, streams: int
) -> None:
    """Streams that pay the server's first-use costs (litellm's import, the embedder's model)."""
    warm = replace(config, streams=1, rounds=streams, ramp_s=0.0)
    for transport in transports:
        phase = asyncio.run(product_phase(server.url, transport, users[:1], warm))
        failures = [r.error for r in phase.results if r.error]
        if failures:
            raise RuntimeError(f"warm-up over {transport} failed: {failures[0]}\n{server.log_tail()}")


def measure(
    server: Server,
    upstream: Server,
    transport: Transport,
    users: Sequence[BenchUser],
    config: RunConfig,
    profile: Path | None = None,
    profile_idle: bool = False,
    kind: ServerKind = ServerKind(),
) -> dict[str, Any]:
    """The direct baseline, then the product, for one transport; one JSON-able result."""
    # Other work on the machine shows here: a busy host's figures are not a quiet host's.
    load_before = os.getloadavg()[0]
    with measured(upstream.meter) as upstream_direct:
        direct = asyncio.run(direct_phase(upstream.url, config)).summary()
    fresh_connection()
    after_id = last_message_id()
    spying = py_spy(server.process.pid, profile, idle=profile_idle) if profile else contextlib.nullcontext()
    with spying, measured(server.meter) as server_usage, measured(upstream.meter) as upstream_product:
        phase = asyncio.run(product_phase(server.url, transport, users[: config.streams], config))
    product = phase.summary()
    fresh_connection()
    persisted = persisted_check(users=users[: config.streams], after_id=after_id, phase=phase)
    ratio = ratios(direct, product)
    return {
        "benchmark": "load",
        "transport": transport,
        "streams": config.streams,
        "token_delay_ms": config.token_delay_ms,
        "tokens": config.tokens,
        "rounds": config.rounds,
        "ramp_s": config.ramp_s,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(load_before, 2)},
        "direct": direct,
        "product": product,
        "ratios": ratio,
        "persisted": persisted,
        "server": {"name": kind.label, "workers": kind.workers, **server_usage.summary()},
        "upstream": {
            "direct_cpu_percent": upstream_direct.summary()["cpu_percent"],
            "product_cpu_percent": upstream_product.summary()["cpu_percent"],
        },
        "targets": targets(config, product, ratio, persisted),
        **({"profile": str(profile)} if profile else {}),
    }


def run(
    config: RunConfig,
    transports: Sequence[Transport],
    environment: Environment,
    *,
    profile_dir: Path | None = None,
    profile_idle: bool = False,
    warmup_streams: int = WARMUP_STREAMS,
    kind: ServerKind = ServerKind(),
) -> list[dict[str, Any]]:
    """Start the fake upstream and the server, warm up, measure each transport; stop everything.

    Django must be set up on `environment.database_url` (the users are written through the ORM).
    """
    fresh_connection()
    users = bench_users(config.streams)
    warmup_users = bench_users(1, name_prefix=WARMUP_USER)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-load-") as scratch:
        logs = Path(scratch)
        upstream_port, server_port = free_port(), free_port()
        try:
            with (
                started(
                    fake_upstream_command(upstream_port, config), os.environ, upstream_port, logs / "fake.log"
                ) as up,
                started(
                    server_command(kind, server_port),
                    product_env(environment, up.url),
                    server_port,
                    logs / "server.log",
                ) as server,
            ):
                # Each worker process pays its own first-use costs; connections land on any of them.
                _warm_up(server, warmup_users, transports, config, warmup_streams * kind.workers * 2 - 1)
                for transport in transports:
                    profile = None
                    if profile_dir is not None:
                        sampling = "wall" if profile_idle else "cpu"
                        point = f"{transport}-{config.streams}x{config.token_delay_ms:g}ms-{kind.name}{kind.workers}"
                        name = f"profile-{sampling}-{point}.txt"
                        profile = profile_dir / name
                    results.append(measure(server, up, transport, users, config, profile, profile_idle, kind))
        finally:
            cleanup_redis(environment)
    return results


# --- the matrix ---------------------------------------------------------------------------------

FULL_STREAMS: Final = (1, 10, 50, 200, 500)
QUICK_STREAMS: Final = (1, 10)
FULL_DELAYS: Final = (0.0, 20.0)
QUICK_DELAYS: Final = (20.0,)
FULL_MIN_SAMPLES: Final = 20
QUICK_MIN_SAMPLES: Final = 10


def matrix(
    streams: Sequence[int], delays: Sequence[float], tokens: int, min_samples: int, ramp_s: float
) -> list[RunConfig]:
    return [
        RunConfig(streams=n, token_delay_ms=delay, tokens=tokens, rounds=rounds_for(n, min_samples), ramp_s=ramp_s)
        for delay in delays
        for n in streams
    ]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    parser.add_argument("--matrix", action="store_true", help="the issue's matrix; writes a report")
    parser.add_argument("--quick", action="store_true", help="with --matrix: 1 and 10 streams, 20 ms only")
    parser.add_argument("--transport", choices=[*TRANSPORTS, "both"], default="both")
    parser.add_argument("--streams", type=int, nargs="+", help="concurrent streams (several: one run each)")
    parser.add_argument("--token-delay-ms", type=float, nargs="+", help="ms between the fake's tokens")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per reply (200)")
    parser.add_argument(
        "--min-samples",
        type=int,
        help="streams per run at least: a lone client runs several rounds (20; 10 with --quick)",
    )
    parser.add_argument("--ramp-s", type=float, default=0.0, help="spread the starts over this long (0: a burst)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--profile", type=Path, help="record daphne with py-spy into this directory")
    parser.add_argument("--profile-idle", action="store_true", help="with --profile: sample waiting threads too")
    parser.add_argument("--report", action="store_true", help="write a Markdown report (always with --matrix)")
    parser.add_argument("--server", choices=SERVERS, default="daphne", help="the ASGI server (daphne)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (uvicorn only; 1)")
    return parser.parse_args(argv)


def configs_from(args: argparse.Namespace) -> list[RunConfig]:
    quick = args.quick
    streams = args.streams or (QUICK_STREAMS if quick else FULL_STREAMS if args.matrix else (10,))
    delays = args.token_delay_ms or (QUICK_DELAYS if quick or not args.matrix else FULL_DELAYS)
    min_samples = args.min_samples or (QUICK_MIN_SAMPLES if quick else FULL_MIN_SAMPLES)
    return matrix(streams, delays, args.tokens, min_samples, args.ramp_s)


def raise_open_files_limit() -> None:
    """500 streams hold about 1,500 sockets across the client, daphne and the fake (children inherit
    the limit); many systems start processes with a soft limit of 1,024."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65_536
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    raise_open_files_limit()
    transports: tuple[Transport, ...] = TRANSPORTS if args.transport == "both" else (args.transport,)
    os.environ.setdefault("SECRET_KEY", "bench-load-" + uuid.uuid4().hex)
    os.environ["DEBUG"] = "false"
    setup_database(args.database_url)
    environment = Environment(
        database_url=args.database_url, redis_url=args.redis_url, secret_key=os.environ["SECRET_KEY"]
    )
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    for config in configs_from(args):
        for result in run(
            config,
            transports,
            environment,
            profile_dir=args.profile,
            profile_idle=args.profile_idle,
            kind=ServerKind(args.server, args.workers),
        ):
            print(json.dumps(result), flush=True)
            results.append(result)
    if args.matrix or args.report:
        from bench.load_report import headline_table, write_report

        print("\n".join(headline_table(results)))
        print(f"report: {write_report(results, quick=args.quick)}")


if __name__ == "__main__":
    main()
