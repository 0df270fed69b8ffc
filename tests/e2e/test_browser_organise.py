"""Organising and erasure in a real browser: pin and archive from the sidebar, a temporary chat that
stays out of the history, the data download, and deleting the account with its password.

Needs PostgreSQL, Redis and Chromium at /usr/bin/chromium.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import PASSWORD, LiveServer, shot, sign_up

if TYPE_CHECKING:
    from playwright.sync_api import Page

STREAM_TIMEOUT_MS = 30_000
ITEM = "[data-testid=conversation-item]"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def chat(page: Page, base: str, text: str) -> str:
    """Start a new chat with one message; return its id once the reply is complete."""
    from playwright.sync_api import expect

    page.goto(f"{base}/")
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-state", "open")
    page.fill("[data-testid=composer]", text)
    page.keyboard.press("Enter")
    expect(page.locator(".message[data-role=assistant]").last).to_have_attribute(
        "data-status", "complete", timeout=STREAM_TIMEOUT_MS
    )
    page.wait_for_url(f"{base}/c/*/")
    return page.url.rstrip("/").rsplit("/", 1)[-1]


def sidebar_order(page: Page) -> list[str | None]:
    return [item.get_attribute("data-conversation-id") for item in page.locator(ITEM).all()]


def test_pin_archive_temporary_download_and_delete(live_daphne: LiveServer, browser_page: Page) -> None:
    from playwright.sync_api import expect

    page = browser_page
    base = live_daphne.url
    sign_up(page, base)
    first = chat(page, base, "First chat: tell me about tides.")
    second = chat(page, base, "Second chat: tell me about stars.")
    page.goto(f"{base}/c/{second}/")
    assert sidebar_order(page) == [second, first]

    # --- pin the older chat: it moves to the top, and stays there after a reload -------------
    older = page.locator(f"{ITEM}[data-conversation-id='{first}']")
    older.hover()
    older.locator("[data-action=pin]").click()
    expect(older).to_have_attribute("data-pinned", "true")
    expect(older.locator("[data-action=pin]")).to_have_attribute("aria-pressed", "true")
    assert sidebar_order(page) == [first, second]
    page.reload()
    assert sidebar_order(page) == [first, second]
    shot(page, "organise-pinned")

    # --- archive the newer chat: out of the sidebar, on the Archived page, and back ----------
    newer = page.locator(f"{ITEM}[data-conversation-id='{second}']")
    newer.hover()
    newer.locator("[data-action=archive]").click()
    expect(newer).to_have_count(0)
    page.click("[data-testid=archived-link]")
    expect(page.locator("[data-testid=archived-item]")).to_have_count(1)
    expect(page.locator("[data-testid=archived-item]")).to_contain_text("Second chat")
    shot(page, "organise-archived")
    page.click("[data-testid=unarchive]")
    expect(page.locator("[data-testid=no-archived]")).to_be_visible()
    page.goto(f"{base}/")
    assert sorted(filter(None, sidebar_order(page))) == sorted([first, second])

    # --- a temporary chat: badged, answered, and never in the history ------------------------
    page.click("[data-testid=temporary-chat]")
    page.wait_for_url(f"{base}/c/*/")
    temporary = page.url.rstrip("/").rsplit("/", 1)[-1]
    expect(page.locator("[data-testid=temporary-badge]")).to_be_visible()
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-state", "open")
    page.fill("[data-testid=composer]", "Off the record: what is a comet?")
    page.keyboard.press("Enter")
    expect(page.locator(".message[data-role=assistant]").last).to_have_attribute(
        "data-status", "complete", timeout=STREAM_TIMEOUT_MS
    )
    shot(page, "organise-temporary")
    page.reload()
    assert temporary not in sidebar_order(page)
    expect(page.locator(".message[data-role=user]")).to_have_count(1)

    # --- the data download holds all three chats ---------------------------------------------
    page.click("[data-testid=account-link]")
    with page.expect_download() as download_info:
        page.click("[data-testid=account-export]")
    path = download_info.value.path()
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    assert {c["id"] for c in data["conversations"]} == {first, second, temporary}

    # --- deleting the account: a wrong password changes nothing, the right one ends it -------
    page.fill("[data-testid=delete-password]", "not my password")
    page.click("[data-testid=delete-account]")
    expect(page.locator("[data-testid=delete-error]")).to_have_text("That is not your password. Nothing was deleted.")
    shot(page, "account-delete-refused")
    page.fill("[data-testid=delete-password]", PASSWORD)
    page.click("[data-testid=delete-account]")
    expect(page.locator("[data-testid=account-deleted]")).to_be_visible()
    page.goto(f"{base}/")
    page.wait_for_url(re.compile(r"/accounts/login/"))
