"""What the browser tests share: a daphne on the test database, a Chromium page, signing up.

pytest-django's `live_server` is WSGI and has no WebSockets, so a daphne process is started on a
free port against the test database instead (tests/live.py); it serves /static/ itself. No Celery
worker runs beside it: follow-up tasks (embeddings, summaries, facts) run eagerly in daphne, and
facts are extracted right after each reply (no debounce), so a test can wait for them.
"""

from __future__ import annotations

import os
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.live import LiveServer, running_daphne

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
SCREENSHOTS = Path(os.environ.get("E2E_SCREENSHOT_DIR", "/tmp"))
PASSWORD = "a-long-and-unusual-passphrase-42"


@pytest.fixture
def daphne_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Extra environment for the live daphne, empty by default. A test sets it with
    `@pytest.mark.parametrize("daphne_env", [{"NAME": "value"}], indirect=True)`."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
def live_daphne(transactional_db: None, tmp_path: Path, daphne_env: dict[str, str]) -> Iterator[LiveServer]:
    env = {
        "SERVE_STATIC": "true",
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
    with running_daphne(env, tmp_path / "daphne.log") as server:
        with urllib.request.urlopen(f"{server.url}/static/js/chat.js", timeout=10) as response:
            assert response.status == 200, "the chat script is not served"
        yield server


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
