"""What the browser tests share: a daphne on the test database, a Chromium page, signing up.

pytest-django's `live_server` is WSGI and has no WebSockets, so a daphne process is started on a
free port against the test database instead (it serves /static/ itself: SERVE_STATIC). No Celery
worker runs beside it: follow-up tasks (embeddings, summaries, facts) run eagerly in daphne, and
facts are extracted right after each reply (no debounce), so a test can wait for them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.conf import settings

from tests.conftest import test_database_url

# A fresh server loads its models on the first turns (embedder, guardrail references, litellm's
# import): Playwright's 5 s default wait is too tight for that on a busy 2-core machine.
EXPECT_TIMEOUT_MS = 15_000

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("E2E_SCREENSHOT_DIR", "/tmp"))
STARTUP_TIMEOUT_S = 60.0
PASSWORD = "a-long-and-unusual-passphrase-42"


@dataclass(frozen=True)
class LiveServer:
    url: str
    log: Path


def _free_port() -> int:
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


@pytest.fixture
def daphne_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Extra environment for the live daphne, empty by default. A test sets it with
    `@pytest.mark.parametrize("daphne_env", [{"NAME": "value"}], indirect=True)`."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
def live_daphne(transactional_db: None, tmp_path: Path, daphne_env: dict[str, str]) -> Iterator[LiveServer]:
    port = _free_port()
    log = tmp_path / "daphne.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatproject.settings",
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONUNBUFFERED": "1",
        "SERVE_STATIC": "true",
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CHANNEL_LAYER_PREFIX": f"e2e-{uuid.uuid4().hex[:12]}",
        "OFFLINE_TOKEN_DELAY": "0.05",
        "OFFLINE_PAD_TO_MAX": "true",
        "OFFLINE_MAX_WORDS": "120",
        # No worker runs beside this server: follow-up tasks run in it instead of piling up in Redis,
        # and facts are extracted as soon as a reply is stored.
        "CELERY_TASK_ALWAYS_EAGER": "true",
        "FACTS_DEBOUNCE_SECONDS": "0",
        **daphne_env,
    }
    daphne = str(Path(sys.executable).with_name("daphne"))
    with log.open("wb") as out:
        process = subprocess.Popen(
            [daphne, "-b", "127.0.0.1", "-p", str(port), "chatproject.asgi:application"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_listening(process, port, log)
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{base}/static/js/chat.js", timeout=10) as response:
            assert response.status == 200, "the chat script is not served"
        yield LiveServer(url=base, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def browser_page(live_daphne: LiveServer) -> Iterator[Page]:
    """A Chromium page; requested after `live_daphne` so it closes before the server stops."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: `apt-get install chromium` (.ci/run does)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.set_default_timeout(15_000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            yield page
        finally:
            context.close()
            browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def shot(page: Page, name: str, *, full_page: bool = False) -> None:
    # Finite animations (popovers fading in) are finished first, so the picture shows the end state.
    page.screenshot(path=str(SCREENSHOTS / f"e2e-{name}.png"), full_page=full_page, animations="disabled")


def sign_up(page: Page, base: str) -> str:
    """Create an account through the sign-up form; the browser is then signed in on the home page."""
    username = f"e2e_{uuid.uuid4().hex[:8]}"
    page.goto(f"{base}/accounts/signup/")
    page.fill("#id_username", username)
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("[data-testid=signup-submit]")
    page.wait_for_url(f"{base}/")
    return username
