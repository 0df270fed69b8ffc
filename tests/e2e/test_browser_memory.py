"""Memory in a real browser: a fact said in chat shows up on the memory page, links back to the
message it came from, and can be edited and deleted; each reply shows its context gauge.

Needs PostgreSQL, Redis and Chromium at /usr/bin/chromium (skipped without Chromium). The daphne
server runs follow-up tasks eagerly with no debounce (conftest.py), so facts are extracted in it
right after the reply is stored.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import LiveServer, shot, sign_up

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

STREAM_TIMEOUT_MS = 30_000
FACTS_TIMEOUT_MS = 30_000

ASSISTANT = ".message[data-role=assistant]"
USER = ".message[data-role=user]"
FACT = "[data-testid=fact]"
LISBON = "The user lives in Lisbon."
NAME = "The user's name is Ada."

# True once the memory page's JSON lists the fact: extraction runs after the reply, not before it.
FACT_STORED = """async (text) => {
  const response = await fetch('/memory/', {headers: {Accept: 'application/json'}});
  if (!response.ok) return false;
  const payload = await response.json();
  return payload.facts.some((fact) => fact.text === text);
}"""

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_fact_said_in_chat_is_remembered_linked_edited_and_deleted(
    live_daphne: LiveServer, browser_page: Page
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    base = live_daphne.url
    sign_up(page, base)
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-state", "open")

    # --- say something worth remembering; the reply shows its context gauge -------------------
    page.fill("[data-testid=composer]", "My name is Ada and I live in Lisbon.")
    page.keyboard.press("Enter")
    reply = page.locator(ASSISTANT).first
    expect(reply).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT_MS)
    page.wait_for_url(f"{base}/c/*/")
    conversation_path = page.url.removeprefix(base)
    said = page.locator(USER).first
    expect(said).to_have_attribute("data-message-id", re.compile(r"^\d+$"))
    said_id = said.get_attribute("data-message-id")
    expect(said).to_have_attribute("id", f"m-{said_id}")

    gauge = reply.locator("[data-testid=context-gauge]")
    expect(gauge).to_be_visible()
    expect(gauge.locator("[data-testid=context-gauge-label]")).to_have_text(re.compile(r"^\d[\d.]*k? / 8k tokens$"))
    expect(gauge.locator("summary")).to_have_attribute("title", re.compile(r"^Context: [\d,]+ of 8,192 tokens"))
    gauge.locator("summary").click()
    breakdown = gauge.locator("[data-testid=context-breakdown]")
    expect(breakdown).to_be_visible()
    expect(breakdown).to_contain_text("Your message")
    expect(breakdown).to_contain_text("tokens kept free for the reply")
    shot(page, "reply-gauge")
    page.keyboard.press("Escape")
    expect(breakdown).to_be_hidden()

    # The summary disclosure: nothing to summarize in a two-message conversation.
    page.click("[data-testid=summary-toggle]")
    empty = page.locator("[data-testid=summary-empty]")
    expect(empty).to_have_text("No summary yet — the conversation is still short.")
    page.keyboard.press("Escape")

    # --- the memory page lists what was learned -------------------------------------------------
    page.wait_for_function(FACT_STORED, arg=LISBON, polling=200, timeout=FACTS_TIMEOUT_MS)
    page.wait_for_function(FACT_STORED, arg=NAME, polling=200, timeout=FACTS_TIMEOUT_MS)
    page.click(".sidebar [data-testid=memory-link]")
    page.wait_for_url(f"{base}/memory/")
    expect(page.locator("[data-testid=memory-toggle]")).to_have_attribute("aria-checked", "true")
    lisbon = page.locator(FACT, has_text=LISBON)
    expect(lisbon).to_be_visible()
    expect(page.locator(FACT, has_text=NAME)).to_be_visible()
    source = lisbon.locator("[data-testid=fact-source]")
    expect(source).to_have_attribute("href", f"{conversation_path}#m-{said_id}")
    shot(page, "memory", full_page=True)
    _mobile_screenshots(page, base, conversation_path)

    # --- its link opens the conversation at the message it came from ------------------------------
    source.click()
    page.wait_for_url(f"{base}{conversation_path}#m-{said_id}")
    target = page.locator(f"#m-{said_id}")
    expect(target).to_have_class(re.compile(r"\bis-highlighted\b"))
    expect(target).to_be_in_viewport()
    expect(target.locator("[data-testid=message-body]")).to_have_text("My name is Ada and I live in Lisbon.")
    # The stored reply's gauge is rendered by the server now.
    expect(page.locator(ASSISTANT).first.locator("[data-testid=context-gauge-label]")).to_have_text(
        re.compile(r"/ 8k tokens$")
    )

    # --- edit one fact inline, delete the other ---------------------------------------------------
    page.goto(f"{base}/memory/")
    name = page.locator(FACT, has_text=NAME)
    name.locator("[data-testid=fact-edit]").click()
    editor = name.locator("textarea")
    expect(editor).to_be_focused()
    editor.fill("The user's name is Ada Lovelace.")
    name.locator("[data-testid=fact-save]").click()
    expect(page.locator("[data-testid=notice]")).to_have_text("Memory updated.")
    expect(page.locator(FACT, has_text="The user's name is Ada Lovelace.")).to_contain_text("edited by you")

    page.locator(FACT, has_text=LISBON).locator("[data-testid=fact-delete]").click()
    expect(page.locator("[data-testid=notice]")).to_have_text("Memory deleted.")
    expect(page.locator(FACT, has_text=LISBON)).to_have_count(0)
    expect(page.locator(FACT)).to_have_count(1)

    # --- delete everything, after confirming ------------------------------------------------------
    page.click("[data-testid=delete-all]")
    expect(page.locator("[data-testid=confirm-panel]")).to_be_visible()
    shot(page, "memory-confirm")
    page.click("[data-testid=confirm-delete-all]")
    expect(page.locator("[data-testid=notice]")).to_have_text("Deleted your one memory.")
    expect(page.locator("[data-testid=facts-empty]")).to_be_visible()
    expect(page.locator(FACT)).to_have_count(0)


def _mobile_screenshots(page: Page, base: str, conversation_path: str) -> None:
    """The memory page and a reply's gauge on a phone, signed in as the same user."""
    from playwright.sync_api import expect

    browser: Browser | None = page.context.browser
    assert browser is not None
    phone = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        storage_state=page.context.storage_state(),
    )
    try:
        mobile = phone.new_page()
        mobile.goto(f"{base}/memory/")
        expect(mobile.locator(FACT, has_text=LISBON)).to_be_visible()
        shot(mobile, "memory-mobile", full_page=True)
        mobile.goto(f"{base}{conversation_path}")
        gauge = mobile.locator(f"{ASSISTANT} [data-testid=context-gauge]").first
        gauge.locator("summary").click()
        expect(gauge.locator("[data-testid=context-breakdown]")).to_be_visible()
        shot(mobile, "reply-gauge-mobile")
    finally:
        phone.close()
