"""The LLM queue and the usage page in a real browser: the place in line shows on the pending reply
and goes away when its text arrives; the usage page shows what the reply cost.

Needs PostgreSQL, Redis and Chromium; the daphne server and the browser come from conftest.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis

from tests.e2e.conftest import LiveServer, shot, sign_up

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ASSISTANT = ".message[data-role=assistant]"
NOTE = "[data-testid=queue-note]"
MODEL = "offline/parley-mini"
# The server's Redis key prefix, so the test can play another node holding the model's slot.
PREFIX = f"e2e-queue-{uuid.uuid4().hex[:12]}"
SERVER = {"LLM_QUEUE_MAX_CONCURRENCY": "1", "LLM_MODEL": MODEL, "CHANNEL_LAYER_PREFIX": PREFIX}


def queue_key(*parts: str) -> str:
    return ":".join([PREFIX, "llmq", *parts])


@pytest.mark.parametrize("daphne_env", [SERVER], indirect=True)
def test_the_place_in_line_shows_until_the_reply_starts(
    live_daphne: LiveServer, browser_page: Any, settings: Any
) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page
    base = live_daphne.url
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    slots = queue_key(MODEL, "slots")
    # Another node holds the model's only slot (a lease for the next minute).
    seconds, _ = client.time()
    client.zadd(slots, {"another-node": (int(seconds) + 60) * 1000})

    sign_up(page, base)
    page.fill("[data-testid=composer]", "Is there room for me?")
    page.keyboard.press("Enter")
    reply = page.locator(ASSISTANT).first
    expect(reply.locator(NOTE)).to_have_text("Waiting for a free slot: 1st in line", timeout=30_000)
    expect(reply).to_have_attribute("data-status", "streaming")
    shot(page, "queue-waiting")

    # The other node finishes: its slot frees and the line is told.
    client.zrem(slots, "another-node")
    client.publish(queue_key("wake", MODEL), "freed")
    expect(reply).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(reply.locator(NOTE)).to_have_count(0)
    expect(reply.locator("[data-testid=message-body]")).to_contain_text("Is there room for me?")

    page.click("[data-testid=usage-link]")
    page.wait_for_url(f"{base}/usage/")
    expect(page.get_by_role("heading", name="Usage")).to_be_visible()
    expect(page.locator("[data-testid=usage-day]")).to_have_count(1)
    expect(page.locator("[data-testid=plan]")).to_have_text("Free")
    used = page.locator("[data-testid=used-day]").inner_text()
    assert int(used.replace(",", "")) > 0, "the reply's tokens are counted"
    shot(page, "usage", full_page=True)
