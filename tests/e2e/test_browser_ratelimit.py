"""Rate limits in a real browser: a message sent too fast comes back to the composer with the wait
counted down, and a sign-up form refused with 429 says why.

Needs PostgreSQL, Redis and Chromium at /usr/bin/chromium. The daphne server (conftest.py) gets
its limits through the environment.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import pytest

from tests.e2e.conftest import PASSWORD, LiveServer, shot, sign_up

if TYPE_CHECKING:
    from playwright.sync_api import Page

STREAM_TIMEOUT_MS = 30_000
ASSISTANT = ".message[data-role=assistant]"
USER = ".message[data-role=user]"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

T = TypeVar("T")


def orm(query: Callable[[], T]) -> T:
    """Run a query in a thread of its own: Playwright's sync API keeps an event loop running in the
    test's thread, where Django refuses synchronous queries."""
    from django.db import connections

    def run() -> T:
        try:
            return query()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


@pytest.mark.parametrize(
    "daphne_env", [{"RATE_LIMIT_SEND_USER": "1/30", "RATE_LIMIT_SIGNUP_IP": "2/600"}], indirect=True
)
def test_a_message_sent_too_fast_comes_back_with_a_countdown(live_daphne: LiveServer, browser_page: Page) -> None:
    from django.contrib.auth import get_user_model
    from playwright.sync_api import expect

    page = browser_page
    base = live_daphne.url
    username = sign_up(page, base)
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-state", "open")

    page.fill("[data-testid=composer]", "The first message goes through")
    page.keyboard.press("Enter")
    expect(page.locator(ASSISTANT).first).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT_MS)

    page.fill("[data-testid=composer]", "The second one is too fast")
    page.keyboard.press("Enter")
    banner = page.locator("[data-testid=error-banner]")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text(re.compile(r"You are sending messages too fast\. Try again in \d+ s\."))
    first = int(re.findall(r"in (\d+) s", banner.inner_text())[0])
    assert 1 <= first <= 30
    refused = page.locator(USER).nth(1)
    expect(refused).to_have_attribute("data-status", "failed")
    expect(refused.locator("[data-testid=message-note]")).to_have_text("Not sent: you were sending too fast.")
    expect(page.locator("[data-testid=composer]")).to_have_value("The second one is too fast")
    expect(page.locator(ASSISTANT)).to_have_count(1)
    shot(page, "rate-limited-send")
    # The countdown moves (the page ticks each second; waiting on the text, not sleeping).
    expect(banner).to_contain_text(f"Try again in {first - 1} s.", timeout=3_000)

    # --- staff see who is limited and lift it; the message then goes through ---------------------
    orm(lambda: get_user_model().objects.create_superuser(username=f"ops_{uuid.uuid4().hex[:6]}", password=PASSWORD))
    admin = page.context.browser.new_context(viewport={"width": 1280, "height": 800})  # type: ignore[union-attr]
    try:
        staff = admin.new_page()
        staff.goto(f"{base}/admin/login/")
        staff.fill("#id_username", orm(lambda: get_user_model().objects.filter(is_staff=True).get().username))
        staff.fill("#id_password", PASSWORD)
        staff.click("input[type=submit]")
        # The first reply is in the usage ledger: the report, linked from the admin's index, shows it.
        staff.get_by_role("link", name="Usage: tokens and cost per user, model and day").click()
        expect(staff.locator("[data-testid=usage-by-user] tbody")).to_contain_text(username)
        expect(staff.locator("[data-testid=usage-by-model] tbody")).to_contain_text("offline/parley-mini")
        shot(staff, "admin-usage-report", full_page=True)
        staff.goto(f"{base}/admin/")
        staff.get_by_role("link", name="Rate-limited now").click()
        row = staff.locator("[data-testid=rate-limited] tbody tr")
        expect(row).to_have_count(1)
        expect(row).to_contain_text(username)
        expect(row).to_contain_text("1 per 30 s")
        shot(staff, "admin-rate-limited")
        row.get_by_role("button", name="Clear").click()
        expect(staff.locator(".messagelist")).to_contain_text("Cleared the limit")
        expect(staff.get_by_text("Nobody is rate limited right now.")).to_be_visible()
    finally:
        admin.close()
    page.locator("[data-testid=send]").click()
    expect(page.locator(ASSISTANT)).to_have_count(2)
    expect(page.locator(ASSISTANT).nth(1)).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT_MS)

    # --- sign-ups from this address: the third is refused with the form and a reason ----------
    page.context.clear_cookies()
    sign_up(page, base)  # the second sign-up from this address
    page.context.clear_cookies()
    refused_name = f"e2e_{uuid.uuid4().hex[:8]}"
    page.goto(f"{base}/accounts/signup/")
    page.fill("#id_username", refused_name)
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    with page.expect_response(f"{base}/accounts/signup/") as response_info:
        page.click("[data-testid=signup-submit]")
    response = response_info.value
    assert response.status == 429
    assert 1 <= int(response.headers["retry-after"]) <= 600
    alert = page.locator("[data-testid=rate-limited]")
    expect(alert).to_contain_text(re.compile(r"Too many attempts from your network\. Try again in \d+ s\."))
    expect(page.locator("#id_username")).to_have_value(refused_name)
    expect(page.locator("#id_password1")).to_have_value("")
    shot(page, "rate-limited-signup")
