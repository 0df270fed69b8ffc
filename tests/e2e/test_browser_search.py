"""Search in a real browser: from the sidebar, find a message by its words, open it in place.

Needs PostgreSQL, Redis and Chromium at /usr/bin/chromium; the daphne server and the browser come
from conftest.py.
"""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import LiveServer, shot, sign_up

STREAM_TIMEOUT_MS = 30_000

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("daphne_env", [{"OFFLINE_PAD_TO_MAX": "false", "OFFLINE_TOKEN_DELAY": "0.01"}], indirect=True)
def test_a_search_result_opens_its_conversation_at_the_message(live_daphne: LiveServer, browser_page: object) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    base = live_daphne.url
    sign_up(page, base)
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-state", "open")
    page.fill("[data-testid=composer]", "My <b>climbing gym</b> locker code is 4812, remember it")
    page.keyboard.press("Enter")
    expect(page.locator(".message[data-role=assistant]")).to_have_attribute(
        "data-status", "complete", timeout=STREAM_TIMEOUT_MS
    )
    page.wait_for_url(f"{base}/c/*/")
    question_id = page.locator(".message[data-role=user]").get_attribute("data-message-id")

    page.goto(f"{base}{page.locator('[data-testid=search-link]').get_attribute('href')}")
    page.fill("[data-testid=search-input]", "locker codes")
    page.keyboard.press("Enter")

    hit = page.locator(f"[data-testid=search-hit][data-message-id='{question_id}']")
    expect(hit).to_be_visible()
    expect(hit.locator("mark")).to_have_text(["locker", "code"])
    # The markup the user typed is shown as text, never rendered.
    expect(hit.locator("[data-testid=search-snippet]")).to_contain_text("climbing gym</b> locker code")
    expect(hit.locator("b")).to_have_count(0)
    shot(page, "search-results")

    hit.locator("a").click()
    page.wait_for_url(re.compile(rf"/c/[0-9a-f-]+/\?m={question_id}#m-{question_id}$"))
    expect(page.locator(f"#m-{question_id}")).to_have_class(re.compile(r"\bis-highlighted\b"))
    expect(page.locator(f"#m-{question_id}")).to_be_in_viewport()
