"""Export, import and share links in a real browser: a conversation's JSON downloaded from its
menu and imported back on the data page, and a share link read in a signed-out browser, then
revoked.

Needs PostgreSQL, Redis and Chromium at /usr/bin/chromium (conftest.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import LiveServer, shot, sign_up

if TYPE_CHECKING:
    from playwright.sync_api import Page

STREAM_TIMEOUT_MS = 30_000
QUESTION = "Name three colours of the rainbow."

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_export_import_and_a_share_link_seen_signed_out_then_revoked(
    live_daphne: LiveServer, browser_page: Page, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    base = live_daphne.url
    sign_up(page, base)
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-state", "open")
    page.fill("[data-testid=composer]", QUESTION)
    page.keyboard.press("Enter")
    reply = page.locator(".message[data-role=assistant]").first
    expect(reply).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT_MS)
    page.wait_for_url(f"{base}/c/*/")
    conversation_url = page.url
    page.goto(conversation_url)

    # --- export from the conversation's menu, import it back on the data page ------------------
    page.click("[data-testid=conversation-menu-toggle]")
    shot(page, "conversation-menu")
    with page.expect_download() as download_info:
        page.click("[data-testid=export-json]")
    exported = tmp_path / "export.json"
    download_info.value.save_as(exported)
    document = json.loads(exported.read_text())
    assert [m["role"] for m in document["conversations"][0]["messages"]] == ["user", "assistant"]

    page.goto(f"{base}/settings/data/")
    page.set_input_files("[data-testid=import-file]", str(exported))
    page.click("[data-testid=import-submit]")
    expect(page.locator("[data-testid=import-report]")).to_contain_text("Imported 1 conversation with 2 messages")
    expect(page.locator("[data-testid=nothing-skipped]")).to_be_visible()
    shot(page, "data-import-report", full_page=True)

    # --- share from the menu; a signed-out browser reads it; revoking closes it ----------------
    page.goto(conversation_url)
    page.click("[data-testid=conversation-menu-toggle]")
    page.click("[data-testid=share-conversation]")
    page.wait_for_url(f"{base}/settings/shares/*")
    expect(page.locator("[data-testid=notice]")).to_contain_text("Anyone with the link")
    link = page.locator("[data-testid=share-url]").first.input_value()
    assert link.startswith(f"{base}/s/")
    shot(page, "shares-page")

    # A second context of the same browser shares no cookies: a visitor who is not signed in.
    browser = page.context.browser
    assert browser is not None
    visitor = browser.new_context()
    stranger = visitor.new_page()
    try:
        stranger.goto(link)
        expect(stranger.locator("[data-testid=shared-messages]")).to_contain_text(QUESTION)
        expect(stranger.locator("[data-testid=login-to-continue]")).to_be_visible()
        shot(stranger, "shared-signed-out", full_page=True)

        page.click("[data-testid=revoke-share]")
        expect(page.locator("[data-testid=revoked]")).to_be_visible()
        response = stranger.goto(link)
        assert response is not None and response.status == 404
    finally:
        visitor.close()
