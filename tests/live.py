"""A live daphne for tests: the product's real ASGI server, in its own process, on a free port.

pytest-django's `live_server` is WSGI (no WebSockets, no streaming over ASGI), so tests that need
the real server start daphne against the test database instead. Browser tests (tests/e2e) and the
API tests (tests/api) both start it through `running_daphne`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import test_database_url

REPO_ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class LiveServer:
    url: str
    log: Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Poll the port until it accepts connections; fail early if the process dies."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"daphne did not listen on {port} within {STARTUP_TIMEOUT_S:.0f}s:\n{log.read_text()[-4000:]}")
        try:
            # Doubles as the pause between polls: returns only if the server exited.
            code = process.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"daphne exited with code {code} before listening:\n{log.read_text()[-4000:]}")


def daphne_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a daphne on the test database and this machine's Redis, plus `extra`."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatproject.settings",
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        **extra,
    }


@contextmanager
def running_daphne(extra_env: Mapping[str, str], log: Path) -> Iterator[LiveServer]:
    """Start daphne with the product's ASGI application, wait until it listens, stop it after."""
    port = free_port()
    daphne = str(Path(sys.executable).with_name("daphne"))
    with log.open("wb") as out:
        process = subprocess.Popen(
            [daphne, "-b", "127.0.0.1", "-p", str(port), "chatproject.asgi:application"],
            cwd=REPO_ROOT,
            env=daphne_environment(extra_env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_listening(process, port, log)
        yield LiveServer(url=f"http://127.0.0.1:{port}", log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
