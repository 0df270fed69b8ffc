"""The chat page in a real browser: sign up, stream a reply, stop one, reload and find both kept.

Needs PostgreSQL, Redis and Chromium at /usr/bin/chromium (the test is skipped without Chromium).
The daphne server and the browser come from conftest.py.
"""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import LiveServer, shot

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
    shot(page, "home")

    # --- first message: watch the reply stream in ----------------------------------------------
    first_prompt = "Hello from the browser test"
    page.fill("[data-testid=composer]", first_prompt)
    page.keyboard.press("Enter")
    expect(page.locator(USER).first.locator(BODY)).to_have_text(first_prompt)
    first = page.locator(ASSISTANT).nth(0)
    # The first turn of a fresh server may wait for litellm's import (3–7 s) to finish in the background.
    expect(first).to_have_attribute("data-status", "streaming", timeout=STREAM_TIMEOUT_MS)
    page.wait_for_url(f"{base}/c/*/")
    expect(page.locator("[data-testid=conversation-item]")).to_have_count(1)
    expect(page.locator("[data-testid=conversation-item]").first).to_contain_text(first_prompt)

    observations = [""]
    for _ in range(3):
        grown = page.wait_for_function(GROWN_WHILE_STREAMING, arg=[0, observations[-1]], timeout=STREAM_TIMEOUT_MS)
        observations.append(grown.json_value())
    shot(page, "streaming")
    assert len(observations[1]) < len(observations[2]) < len(observations[3])
    assert observations[3].startswith(observations[2]) and observations[2].startswith(observations[1])
    expect(page.locator("[data-testid=stop]")).to_be_visible()

    expect(first).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT_MS)
    expect(page.locator("[data-testid=send]")).to_be_visible()
    expect(first.locator("[data-testid=message-note]")).to_be_hidden()
    first_text = first.locator(BODY).inner_text()
    assert len(first_text) > len(observations[3])
    assert "Offline model." in first_text
    shot(page, "complete")

    # --- second message: stop it while it streams -------------------------------------------------
    second_prompt = "Now write something long, I will stop you"
    page.fill("[data-testid=composer]", second_prompt)
    page.click("[data-testid=send]")
    second = page.locator(ASSISTANT).nth(1)
    expect(second).to_have_attribute("data-status", "streaming", timeout=STREAM_TIMEOUT_MS)
    page.wait_for_function(GROWN_WHILE_STREAMING, arg=[1, "x" * 40], timeout=STREAM_TIMEOUT_MS)
    page.click("[data-testid=stop]")
    expect(second).to_have_attribute("data-status", "stopped", timeout=STREAM_TIMEOUT_MS)
    expect(second.locator("[data-testid=message-note]")).to_have_text("Stopped")
    expect(page.locator("[data-testid=send]")).to_be_visible()
    second_text = second.locator(BODY).inner_text()
    assert len(second_text) >= 40
    shot(page, "stopped")

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
    shot(page, "reloaded")
