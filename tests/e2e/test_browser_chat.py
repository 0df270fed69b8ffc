"""The chat page in a real browser: sign up, stream a reply, stop one, reload and find both kept.

Needs PostgreSQL, Redis and Chromium at /usr/bin/chromium (the test is skipped without Chromium).
pytest-django's `live_server` is WSGI and has no WebSockets, so a daphne process is started on a
free port against the test database instead (it serves /static/ itself: SERVE_STATIC).
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
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

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
STREAM_TIMEOUT_MS = 30_000

ASSISTANT = ".message[data-role=assistant]"
USER = ".message[data-role=user]"
BODY = "[data-testid=message-body]"

# The text of the index-th assistant message while it is still streaming, once it is longer than
# `previous`; false otherwise. Each observation is taken while data-status is "streaming".
GROWN_WHILE_STREAMING = """([index, previous]) => {
  const message = document.querySelectorAll('.message[data-role=assistant]')[index];
  if (!message || message.dataset.status !== 'streaming') return false;
  const text = message.querySelector('[data-testid=message-body]').textContent;
  return text.length > previous.length ? text : false;
}"""

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@dataclass(frozen=True)
class LiveServer:
    url: str
    log: Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _test_database_url() -> str:
    db = connection.settings_dict
    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{quote(db['NAME'], safe='')}"


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
def live_daphne(transactional_db: None, tmp_path: Path) -> Iterator[LiveServer]:
    port = _free_port()
    log = tmp_path / "daphne.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatproject.settings",
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONUNBUFFERED": "1",
        "SERVE_STATIC": "true",
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CHANNEL_LAYER_PREFIX": f"e2e-{uuid.uuid4().hex[:12]}",
        "OFFLINE_TOKEN_DELAY": "0.05",
        "OFFLINE_PAD_TO_MAX": "true",
        "OFFLINE_MAX_WORDS": "120",
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
def browser_page(live_daphne: LiveServer) -> Iterator[object]:
    """A Chromium page; requested after `live_daphne` so it closes before the server stops."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

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


def _shot(page: object, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"e2e-{name}.png"))  # type: ignore[attr-defined]


def test_stream_stop_and_reload_keep_both_replies(live_daphne: LiveServer, browser_page: object) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    base = live_daphne.url

    # --- sign up through the page --------------------------------------------------------------
    page.goto(f"{base}/accounts/signup/")
    username = f"e2e_{uuid.uuid4().hex[:8]}"
    page.fill("#id_username", username)
    page.fill("#id_password1", "a-long-and-unusual-passphrase-42")
    page.fill("#id_password2", "a-long-and-unusual-passphrase-42")
    page.click("[data-testid=signup-submit]")
    page.wait_for_url(f"{base}/")
    expect(page.get_by_text("How can I help?")).to_be_visible()
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-state", "open")
    _shot(page, "home")

    # --- first message: watch the reply stream in ----------------------------------------------
    first_prompt = "Hello from the browser test"
    page.fill("[data-testid=composer]", first_prompt)
    page.keyboard.press("Enter")
    expect(page.locator(USER).first.locator(BODY)).to_have_text(first_prompt)
    first = page.locator(ASSISTANT).nth(0)
    expect(first).to_have_attribute("data-status", "streaming")
    page.wait_for_url(f"{base}/c/*/")
    expect(page.locator("[data-testid=conversation-item]")).to_have_count(1)
    expect(page.locator("[data-testid=conversation-item]").first).to_contain_text(first_prompt)

    observations = [""]
    for _ in range(3):
        grown = page.wait_for_function(GROWN_WHILE_STREAMING, arg=[0, observations[-1]], timeout=STREAM_TIMEOUT_MS)
        observations.append(grown.json_value())
    _shot(page, "streaming")
    assert len(observations[1]) < len(observations[2]) < len(observations[3])
    assert observations[3].startswith(observations[2]) and observations[2].startswith(observations[1])
    expect(page.locator("[data-testid=stop]")).to_be_visible()

    expect(first).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT_MS)
    expect(page.locator("[data-testid=send]")).to_be_visible()
    expect(first.locator("[data-testid=message-note]")).to_be_hidden()
    first_text = first.locator(BODY).inner_text()
    assert len(first_text) > len(observations[3])
    assert "Offline model." in first_text
    _shot(page, "complete")

    # --- second message: stop it while it streams -------------------------------------------------
    second_prompt = "Now write something long, I will stop you"
    page.fill("[data-testid=composer]", second_prompt)
    page.click("[data-testid=send]")
    second = page.locator(ASSISTANT).nth(1)
    expect(second).to_have_attribute("data-status", "streaming")
    page.wait_for_function(GROWN_WHILE_STREAMING, arg=[1, "x" * 40], timeout=STREAM_TIMEOUT_MS)
    page.click("[data-testid=stop]")
    expect(second).to_have_attribute("data-status", "stopped", timeout=STREAM_TIMEOUT_MS)
    expect(second.locator("[data-testid=message-note]")).to_have_text("Stopped")
    expect(page.locator("[data-testid=send]")).to_be_visible()
    second_text = second.locator(BODY).inner_text()
    assert len(second_text) >= 40
    _shot(page, "stopped")

    # --- reload: both replies were stored as they were shown -------------------------------------
    url = page.url
    page.reload()
    assert page.url == url
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-state", "open")
    expect(page.locator(USER)).to_have_count(2)
    expect(page.locator(ASSISTANT)).to_have_count(2)
    expect(page.locator(USER).nth(0).locator(BODY)).to_have_text(first_prompt)
    expect(page.locator(USER).nth(1).locator(BODY)).to_have_text(second_prompt)
    expect(page.locator(ASSISTANT).nth(0)).to_have_attribute("data-status", "complete")
    expect(page.locator(ASSISTANT).nth(1)).to_have_attribute("data-status", "stopped")
    expect(page.locator(ASSISTANT).nth(1).locator("[data-testid=message-note]")).to_have_text("Stopped")
    assert page.locator(ASSISTANT).nth(0).locator(BODY).inner_text() == first_text
    assert page.locator(ASSISTANT).nth(1).locator(BODY).inner_text() == second_text
    expect(page.locator("[data-testid=conversation-item].is-active")).to_have_count(1)
    _shot(page, "reloaded")
