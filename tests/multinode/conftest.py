"""Several nodes as one service: daphne processes and a Celery worker (with beat) started by the
tests on free ports, on the test database and one Redis, as production runs them (docs/deployment.md).

The processes get the settings that must be equal on every node (SECRET_KEY, the Redis prefixes,
the Celery queue), short heartbeat and stale windows so the reaper acts within seconds, and the
offline model at a pace that leaves time to act mid-reply. Clients are aiohttp WebSockets signed in
with a session cookie created in the test database.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from django.conf import settings
from django.contrib.auth.models import User

from tests.conftest import session_cookie_for, test_database_url

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 60.0
# Every process of a run shares these; a second run on the same Redis gets its own.
RUN_ID = uuid.uuid4().hex[:10]


@dataclass
class Process:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine loses power."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Node(Process):
    port: int = 0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat/"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def service_env() -> dict[str, str]:
    """The environment every node and the worker share."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatproject.settings",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "CHANNEL_LAYER_PREFIX": f"multinode-{RUN_ID}",
        "REDIS_KEY_PREFIX": f"multinode-{RUN_ID}",
        "CELERY_QUEUE": f"multinode-{RUN_ID}",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        # A reply of 150 pieces at 20 ms: time to watch it, leave it, or kill its node mid-way.
        "OFFLINE_TOKEN_DELAY": "0.02",
        "OFFLINE_PAD_TO_MAX": "true",
        "OFFLINE_MAX_WORDS": "150",
        # Checkpoints five times a second; a reply silent for 4 s belongs to a dead node (ten
        # heartbeats missed: room for a busy machine to stall a live node without it being reaped).
        "CHAT_CHECKPOINT_SECONDS": "0.2",
        "CHAT_HEARTBEAT_SECONDS": "0.4",
        "CHAT_STALE_STREAM_SECONDS": "4",
        "REAPER_INTERVAL_SECONDS": "0.5",
        # The guardrails are tested elsewhere; here they would only slow each node's first turn.
        "MODERATION_ENABLED": "false",
    }


def _spawn(name: str, command: list[str], log_dir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=service_env(), stdout=out, stderr=subprocess.STDOUT)
    return process, log


def start_node(name: str, log_dir: Path) -> Node:
    port = free_port()
    daphne = str(Path(sys.executable).with_name("daphne"))
    process, log = _spawn(name, [daphne, "-b", "127.0.0.1", "-p", str(port), "chatproject.asgi:application"], log_dir)
    return Node(name=name, process=process, log=log, port=port)


def start_worker(log_dir: Path) -> Process:
    queue = f"multinode-{RUN_ID}"
    command = [sys.executable, "-m", "celery", "-A", "chatproject", "worker", "-B", "-Q", queue]
    command += ["-c", "1", "-P", "solo", "-s", str(log_dir / "beat-schedule"), "-l", "info"]
    process, log = _spawn("worker", command, log_dir)
    return Process(name="worker", process=process, log=log)


def _wait_for(process: Process, ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"{process.name} did not {what} within {STARTUP_TIMEOUT_S:.0f}s:\n{process.log_tail()}")
        try:
            # Doubles as the pause between checks: returns only if the process exited.
            code = process.process.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"{process.name} exited with code {code} before it would {what}:\n{process.log_tail()}")


def wait_until_listening(node: Node) -> None:
    def listening() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", node.port), timeout=1.0):
                return True
        except OSError:
            return False

    _wait_for(node, listening, f"listen on {node.port}")


def wait_until_ready(worker: Process) -> None:
    _wait_for(worker, lambda: "ready." in worker.log.read_text(errors="replace"), "report ready")


async def warm_up(nodes: list[Node], cookie: str) -> None:
    """Start and stop a reply on each node, so each has loaded what a first reply loads (litellm,
    the embedder) before a test measures anything against a heartbeat."""

    async def one(session: aiohttp.ClientSession, node: Node) -> None:
        ws = await session.ws_connect(node.ws_url, headers=_headers(node, cookie))
        client = Client(ws, node)
        await client.send({"type": "send", "content": "warming up"})
        frames = await client.receive_until(
            lambda f: f["type"] in {"delta", "done", "error"}, timeout=STARTUP_TIMEOUT_S
        )
        first = frames[-1]
        if first["type"] == "delta":
            await client.send(
                {"type": "stop", "conversation_id": first["conversation_id"], "message_id": first["message_id"]}
            )
            await client.receive_until(lambda f: f["type"] == "done", timeout=STARTUP_TIMEOUT_S)
        await client.close()

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(one(session, node) for node in nodes))


def warm_up_with_a_user_of_its_own(nodes: list[Node], django_db_blocker: Any) -> None:
    with django_db_blocker.unblock():
        user = User.objects.create_user(username=f"warm-up-{uuid.uuid4().hex[:8]}", password=uuid.uuid4().hex)
        try:
            asyncio.run(warm_up(nodes, session_cookie_for(user)))
        finally:
            user.delete()


@dataclass
class Cluster:
    a: Node
    b: Node
    worker: Process
    log_dir: Path
    django_db_blocker: Any

    def revive(self) -> None:
        """Start node A again if a test killed it, so the tests do not depend on their order."""
        if self.a.process.poll() is not None:
            self.a = start_node("node-a", self.log_dir)
            wait_until_listening(self.a)
            warm_up_with_a_user_of_its_own([self.a], self.django_db_blocker)


def stop_all(processes: list[Process]) -> None:
    """Stop together: a process spends seconds collecting garbage on its way out."""
    for process in processes:
        if process.process.poll() is None:
            process.process.terminate()
    for process in processes:
        process.stop()


@pytest.fixture(scope="module")
def started_cluster(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """Two daphne nodes and one Celery worker with beat, started together and warmed up."""
    log_dir = tmp_path_factory.mktemp("multinode")
    started: list[Process] = []
    try:
        a = start_node("node-a", log_dir)
        started.append(a)
        b = start_node("node-b", log_dir)
        started.append(b)
        worker = start_worker(log_dir)
        started.append(worker)
        wait_until_listening(a)
        wait_until_listening(b)
        wait_until_ready(worker)
        warm_up_with_a_user_of_its_own([a, b], django_db_blocker)
        cluster = Cluster(a=a, b=b, worker=worker, log_dir=log_dir, django_db_blocker=django_db_blocker)
        yield cluster
        started[0] = cluster.a  # a revived node A is the one to stop
    finally:
        stop_all(started)


@pytest.fixture
def cluster(started_cluster: Cluster) -> Cluster:
    started_cluster.revive()
    return started_cluster


def _headers(node: Node, cookie: str) -> dict[str, str]:
    return {"Origin": node.origin, "Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"}


class Client:
    """A WebSocket client on one node, speaking the chat protocol's JSON frames."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, node: Node) -> None:
        self.ws = ws
        self.node = node

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(frame))

    async def receive(self, timeout: float = 30.0) -> dict[str, Any]:
        message = await self.ws.receive(timeout=timeout)
        if message.type != aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"expected a frame from {self.node.name}, got {message.type!r}")
        frame: dict[str, Any] = json.loads(message.data)
        return frame

    async def receive_until(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> list[dict]:
        """Every frame up to and including the first one matching predicate."""
        frames: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.receive(timeout=max(0.01, deadline - time.monotonic()))
            frames.append(frame)
            if predicate(frame):
                return frames

    async def close(self) -> None:
        await self.ws.close()


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[Node, str], Any]]:
    """`await connect(node, session_cookie)`: a signed-in socket on that node, closed after the test."""
    session = aiohttp.ClientSession()
    clients: list[Client] = []

    async def open_client(node: Node, cookie: str) -> Client:
        ws = await session.ws_connect(node.ws_url, headers=_headers(node, cookie))
        client = Client(ws, node)
        clients.append(client)
        return client

    try:
        yield open_client
    finally:
        for client in clients:
            if not client.ws.closed:
                await client.close()
        await session.close()
