"""Branches in a real browser: regenerate a reply, edit a message, move between the versions.

Needs PostgreSQL, Redis and Chromium at /usr/bin/chromium; the daphne server and the browser come
from conftest.py.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import LiveServer, shot, sign_up

STREAM_TIMEOUT_MS = 30_000
ASSISTANT = ".message[data-role=assistant]"
USER = ".message[data-role=user]"
BODY = "[data-testid=message-body]"
POSITION = "[data-testid=branch-position]"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("daphne_env", [{"OFFLINE_PAD_TO_MAX": "false", "OFFLINE_TOKEN_DELAY": "0.01"}], indirect=True)
def test_regenerate_edit_and_switch_between_versions(live_daphne: LiveServer, browser_page: object) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    base = live_daphne.url
    sign_up(page, base)
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-state", "open")

    page.fill("[data-testid=composer]", "Name a river in Portugal")
    page.keyboard.press("Enter")
    reply = page.locator(ASSISTANT)
    expect(reply).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT_MS)
    page.wait_for_url(f"{base}/c/*/")
    first_reply_id = reply.get_attribute("data-message-id")
    expect(reply.locator(POSITION)).to_have_count(0)

    # --- regenerate: the new reply takes the old one's place, "2 / 2" -----------------------------
    reply.hover()
    reply.locator("[data-testid=regenerate]").click()
    expect(reply).to_have_count(1)
    expect(reply).not_to_have_attribute("data-message-id", first_reply_id or "")
    expect(reply).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT_MS)
    expect(reply.locator(POSITION)).to_have_text("2 / 2")
    second_reply_id = reply.get_attribute("data-message-id")
    shot(page, "branches-regenerated")

    # --- back to the first reply ----------------------------------------------------------------------
    reply.locator("[data-testid=branch-previous]").click()
    expect(reply).to_have_attribute("data-message-id", first_reply_id or "")
    expect(reply.locator(POSITION)).to_have_text("1 / 2")

    # --- edit the question: a new branch with its own reply ----------------------------------------
    question = page.locator(USER)
    question.hover()
    question.locator("[data-testid=edit]").click()
    editor = question.locator("[data-testid=edit-input]")
    expect(editor).to_have_value("Name a river in Portugal")
    editor.fill("Name a lake in Switzerland")
    editor.press("Enter")
    expect(question.locator(BODY)).to_have_text("Name a lake in Switzerland")
    expect(question.locator(POSITION)).to_have_text("2 / 2")
    expect(reply).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT_MS)
    expect(reply.locator(BODY)).to_contain_text("Name a lake in Switzerland")
    expect(reply.locator(POSITION)).to_have_count(0)
    shot(page, "branches-edited")

    # --- back to the first question: its newest reply, and the text changes back -------------------
    question.locator("[data-testid=branch-previous]").click()
    expect(question.locator(BODY)).to_have_text("Name a river in Portugal")
    expect(question.locator(POSITION)).to_have_text("1 / 2")
    expect(reply).to_have_attribute("data-message-id", second_reply_id or "")
    expect(reply.locator(BODY)).to_contain_text("Name a river in Portugal")
    expect(reply.locator(POSITION)).to_have_text("2 / 2")

    # The branch shown is the conversation's: a reload shows the same one.
    page.reload()
    expect(page.locator(USER).locator(BODY)).to_have_text("Name a river in Portugal")
    expect(page.locator(ASSISTANT)).to_have_attribute("data-message-id", second_reply_id or "")
    expect(page.locator(ASSISTANT).locator(POSITION)).to_have_text("2 / 2")
    shot(page, "branches-switched")
