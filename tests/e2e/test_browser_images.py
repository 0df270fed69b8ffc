"""An image in a real browser: attach it in the composer, send, see the thumbnail (served by the
owner-only view) and the offline model's acknowledgement, and see it again after a reload.

Needs PostgreSQL, Redis and Chromium; the daphne server and the browser come from conftest.py.
"""

from __future__ import annotations

import io
import re
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from tests.e2e.conftest import LiveServer, shot, sign_up

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MEDIA = tempfile.mkdtemp(prefix="parley-e2e-media-")
USER_IMAGE = ".message[data-role=user] [data-testid=message-image]"


@pytest.fixture(scope="module", autouse=True)
def _remove_media() -> Iterator[None]:
    yield
    shutil.rmtree(MEDIA, ignore_errors=True)


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (20, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("daphne_env", [{"MEDIA_ROOT": MEDIA, "OFFLINE_PAD_TO_MAX": "false"}], indirect=True)
def test_an_attached_image_shows_as_a_thumbnail_and_is_acknowledged(live_daphne: LiveServer, browser_page: Any) -> None:
    from playwright.sync_api import FilePayload, Page, expect

    page: Page = browser_page
    sign_up(page, live_daphne.url)

    sky: FilePayload = {"name": "sky.png", "mimeType": "image/png", "buffer": png(120, 80)}
    page.set_input_files("[data-testid=attach-input]", files=[sky])
    expect(page.locator("[data-testid=composer-attachment]")).to_have_attribute("data-state", "ready")
    page.fill("[data-testid=composer]", "What colour is this?")
    page.keyboard.press("Enter")

    reply = page.locator(".message[data-role=assistant]").first
    expect(reply).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(reply.locator("[data-testid=message-body]")).to_contain_text("I see an image (PNG, 120×80).")
    expect(page.locator("[data-testid=composer-attachment]")).to_have_count(0)
    thumbnail = page.locator(USER_IMAGE)
    # The local preview is replaced by the stored image once the server confirms the message.
    expect(thumbnail).to_have_attribute("src", re.compile(r"^/attachments/[0-9a-f-]+/$"))
    shot(page, "image-sent")

    # After a reload the page renders the stored image itself, loaded through the owner-only view.
    page.reload()
    expect(page.locator(USER_IMAGE)).to_be_visible()
    page.wait_for_function(
        "sel => { const img = document.querySelector(sel); return img && img.complete && img.naturalWidth === 120; }",
        arg=USER_IMAGE,
    )
