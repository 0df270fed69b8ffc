"""Moderation in a real browser: report a reply, see a message the input guardrails block, and be
told when the account is suspended.

Needs PostgreSQL, Redis and Chromium at /usr/bin/chromium (skipped without Chromium). The daphne
server comes from conftest.py; the blocking test configures its guardrails through the
MODERATION_DETECTORS environment variable with a detector that blocks one word
(tests/e2e/keyword_detector.py). The test database is shared with daphne, so rows it writes are
read here through the ORM.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from moderation.pipeline import Stage, explain
from tests.e2e.conftest import LiveServer, shot, sign_up

if TYPE_CHECKING:
    from playwright.sync_api import Page, WebSocketRoute

STREAM_TIMEOUT_MS = 30_000
MOBILE_WIDTH, MOBILE_HEIGHT = 390, 844

ASSISTANT = ".message[data-role=assistant]"
USER = ".message[data-role=user]"
BODY = "[data-testid=message-body]"
NOTE = "[data-testid=message-note]"

FORBIDDEN = "forbidden-word"
# The offline model repeats what it was told, so a word in a message shows up in the reply.
HALTING = "halting-word"
KEYWORD_BLOCKS_INPUT = json.dumps(
    [
        {
            "name": "keyword",
            "path": "tests.e2e.keyword_detector.KeywordDetector",
            "options": {"word": FORBIDDEN},
            "threshold": 0.5,
            "actions": {"input": "block"},
        },
        {
            "name": "keyword-out",
            "path": "tests.e2e.keyword_detector.KeywordDetector",
            "options": {"word": HALTING, "category": "policy"},
            "threshold": 0.5,
            "actions": {"output_inline": "block"},
        },
        {  # the default guardrail, kept
            "name": "leakage",
            "path": "moderation.detectors.leakage.LeakageDetector",
            "threshold": 0.5,
            "actions": {"output_inline": "block", "output_after": "flag"},
        },
    ]
)
BLOCKED_REASON = explain(["prompt_injection"], Stage.INPUT)
STOPPED_REASON = explain(["policy"], Stage.OUTPUT_INLINE)
GENERIC_BLOCKED_NOTE = "Not sent — this message did not pass the content rules."

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

T = TypeVar("T")


def orm(query: Callable[[], T]) -> T:
    """Run a database query in a thread of its own: Playwright's sync API keeps an event loop
    running in the test's thread, where Django refuses synchronous queries."""
    from django.db import connections

    def run() -> T:
        try:
            return query()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def _mobile_page(page: Page) -> Page:
    """A phone-sized page in the same browser, signed in as the same user."""
    assert page.context.browser is not None
    context = page.context.browser.new_context(
        viewport={"width": MOBILE_WIDTH, "height": MOBILE_HEIGHT}, storage_state=page.context.storage_state()
    )
    mobile = context.new_page()
    mobile.set_default_timeout(15_000)
    return mobile


def test_report_a_reply_then_a_suspended_account_cannot_send(live_daphne: LiveServer, browser_page: Page) -> None:
    from django.contrib.auth import get_user_model
    from playwright.sync_api import expect

    from moderation.models import Flag, Suspension

    page = browser_page
    base = live_daphne.url
    username = sign_up(page, base)
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-state", "open")

    page.fill("[data-testid=composer]", "Tell me something I might want to report")
    page.keyboard.press("Enter")
    reply = page.locator(ASSISTANT).first
    expect(reply).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT_MS)
    page.wait_for_url(f"{base}/c/*/")
    reply_id = int(reply.get_attribute("data-message-id") or 0)
    assert reply_id > 0
    report = reply.locator("[data-testid=report]")
    reason_field = reply.locator("[data-testid=report-reason]")

    # --- by keyboard: the form opens on Enter, focuses its field, and Escape closes it --------
    report.focus()
    page.keyboard.press("Enter")
    expect(report).to_have_attribute("aria-expanded", "true")
    expect(reply.get_by_label("What's wrong with this reply?")).to_be_focused()
    page.keyboard.press("Escape")
    expect(reply.locator("[data-testid=report-form]")).to_have_count(0)
    expect(report).to_be_focused()
    expect(report).to_have_attribute("aria-expanded", "false")

    # --- the form with a reason typed, on a desktop and on a phone --------------------------------
    reason = "The reply is made-up filler, not an answer to my question."
    report.click()
    expect(reason_field).to_be_focused()
    reason_field.fill(reason)
    shot(page, "report-form")
    mobile = _mobile_page(page)
    try:
        mobile.goto(page.url)
        mobile_reply = mobile.locator(ASSISTANT).first
        mobile_reply.locator("[data-testid=report]").click()
        mobile_reply.locator("[data-testid=report-reason]").fill(reason)
        mobile_reply.locator("[data-testid=report-form]").scroll_into_view_if_needed()
        shot(mobile, "report-form-mobile")
    finally:
        mobile.context.close()

    # --- an empty reason: the server's 400 message is shown in the form ------------------------
    reason_field.fill("   ")
    reply.locator("[data-testid=report-submit]").click()
    expect(reply.locator("[data-testid=report-error]")).to_have_text("Say briefly what is wrong with this reply.")
    expect(reason_field).to_have_attribute("aria-invalid", "true")
    expect(reason_field).to_be_focused()
    assert not orm(lambda: Flag.objects.filter(message_id=reply_id).exists())
    shot(page, "report-error")

    # --- a reason: sent, confirmed, and the control is disabled ---------------------------------
    reason_field.fill(reason)
    reply.locator("[data-testid=report-submit]").click()
    expect(report).to_have_text("Reported — thank you")
    expect(report).to_have_attribute("aria-disabled", "true")
    expect(report).to_be_focused()
    expect(reply.locator("[data-testid=report-form]")).to_have_count(0)
    expect(report).to_be_disabled()
    page.keyboard.press("Enter")  # disabled (but still focusable): opens nothing
    expect(reply.locator("[data-testid=report-form]")).to_have_count(0)
    shot(page, "reported")

    flag = orm(lambda: Flag.objects.select_related("reporter").get(message_id=reply_id))
    assert flag.direction == Flag.Direction.REPORT
    assert flag.reason == reason
    assert flag.reporter is not None and flag.reporter.username == username
    assert flag.conversation_id is not None and str(flag.conversation_id) in page.url

    # --- the account is suspended: the next send is refused with a banner ----------------------
    orm(lambda: Suspension.objects.create(user=get_user_model().objects.get(username=username), reason="e2e"))
    page.fill("[data-testid=composer]", "Can I still write?")
    page.keyboard.press("Enter")
    banner = page.locator("[data-testid=error-banner]")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Your account is suspended")
    expect(page.locator("[data-testid=composer]")).to_be_disabled()
    expect(page.locator("[data-testid=send]")).to_be_disabled()
    expect(banner.get_by_role("button", name="Dismiss")).to_be_hidden()
    expect(page.locator(ASSISTANT)).to_have_count(1)
    shot(page, "suspended")


def _reorder_blocked_frames(page: Page, first: str) -> list[str]:
    """Deliver, for each blocked message, its `error` (code blocked) and its `message.created`
    (status blocked) in the order asked ("error" or "created"), whatever order the server used.
    Returns the kinds as the page received them."""
    delivered: list[str] = []

    def kind(frame: dict[str, Any]) -> str | None:
        if frame.get("type") == "error" and frame.get("code") == "blocked":
            return "error"
        message = frame.get("message")
        if frame.get("type") == "message.created" and isinstance(message, dict) and message.get("status") == "blocked":
            return "created"
        return None

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        held: list[str | bytes] = []
        first_delivered = False

        def from_server(message: str | bytes) -> None:
            nonlocal first_delivered
            what = kind(json.loads(message)) if isinstance(message, str) else None
            if what is not None and what != first and not first_delivered:
                held.append(message)
                return
            ws.send(message)
            if what is None:
                return
            delivered.append(what)
            # Once both of a pair are delivered, the next blocked message starts over.
            if what == first and held:
                for later in held:
                    ws.send(later)
                    delivered.append("error" if first == "created" else "created")
                held.clear()
                first_delivered = False
            else:
                first_delivered = what == first

        server.on_message(from_server)

    page.route_web_socket(re.compile(r"/ws/chat/$"), route)
    return delivered


@pytest.mark.parametrize("daphne_env", [{"MODERATION_DETECTORS": KEYWORD_BLOCKS_INPUT}], indirect=True)
@pytest.mark.parametrize("first", ["error", "created"])
def test_a_blocked_message_is_kept_with_its_reason_and_gets_no_reply(
    live_daphne: LiveServer, browser_page: Page, first: str
) -> None:
    from playwright.sync_api import expect

    from conversations.models import Conversation, Message

    page = browser_page
    base = live_daphne.url
    delivered = _reorder_blocked_frames(page, first)
    sign_up(page, base)
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-state", "open")
    composer = page.locator("[data-testid=composer]")

    # --- a blocked first message: kept, with the reason, no reply, nothing put back -----------
    blocked_text = f"please {FORBIDDEN} now"
    composer.fill(blocked_text)
    page.keyboard.press("Enter")
    blocked = page.locator(USER).first
    expect(blocked.locator(NOTE)).to_have_text(BLOCKED_REASON)
    expect(blocked).to_have_attribute("data-status", "blocked")
    expect(blocked).to_have_attribute("data-message-id", re.compile(r"^\d+$"))
    expect(blocked.locator(BODY)).to_have_text(blocked_text)
    page.wait_for_url(f"{base}/c/*/")
    expect(page.locator("[data-testid=conversation-item]")).to_have_count(1)
    expect(composer).to_have_value("")  # not a failed send: the text is not offered again
    expect(composer).to_be_enabled()
    expect(page.locator("[data-testid=error-banner]")).to_be_hidden()
    expect(page.locator(ASSISTANT)).to_have_count(0)
    blocked_id = int(blocked.get_attribute("data-message-id") or 0)
    stored = orm(lambda: Message.objects.defer("embedding").get(pk=blocked_id))
    assert stored.status == Message.Status.BLOCKED and stored.content == blocked_text
    assert not orm(
        lambda: Message.objects.filter(conversation_id=stored.conversation_id, role=Message.Role.ASSISTANT).exists()
    )
    # The page shows the title the server gave the conversation (asked for, not made up from the text).
    title = orm(lambda: Conversation.objects.get(pk=stored.conversation_id).title)
    expect(page.locator("#conversation-title")).to_have_text(title)
    expect(page.locator("[data-testid=conversation-item]").first).to_contain_text(title)
    shot(page, f"blocked-{first}-first")

    # --- a normal message next: answered ------------------------------------------------------
    composer.fill("Hello, is this one fine?")
    page.keyboard.press("Enter")
    reply = page.locator(ASSISTANT).first
    expect(reply).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT_MS)
    expect(page.locator(ASSISTANT)).to_have_count(1)
    expect(page.locator(USER)).to_have_count(2)
    expect(page.locator(USER).nth(1)).to_have_attribute("data-status", "complete")
    expect(page.locator(USER).nth(1).locator(NOTE)).to_be_hidden()
    expect(blocked.locator(NOTE)).to_have_text(BLOCKED_REASON)

    # --- a reply the output guardrails stop: it keeps what was shown, with the reason ----------
    composer.fill(f"Please repeat {HALTING} back to me")
    page.keyboard.press("Enter")
    stopped = page.locator(ASSISTANT).nth(1)
    expect(stopped).to_have_attribute("data-status", "blocked", timeout=STREAM_TIMEOUT_MS)
    expect(stopped.locator(NOTE)).to_have_text(STOPPED_REASON)
    expect(stopped.locator(BODY)).to_contain_text("Offline model.")
    assert HALTING not in stopped.locator(BODY).inner_text()
    expect(page.locator(USER).nth(2)).to_have_attribute("data-status", "complete")
    expect(composer).to_be_enabled()
    expect(page.locator("[data-testid=send]")).to_be_visible()
    if first == "error":
        shot(page, "reply-stopped-by-guardrails")

    # --- blocked again, in the conversation that now exists --------------------------------------
    composer.fill(f"And {FORBIDDEN.upper()} once more")
    page.keyboard.press("Enter")
    again = page.locator(USER).nth(3)
    expect(again.locator(NOTE)).to_have_text(BLOCKED_REASON)
    expect(again).to_have_attribute("data-message-id", re.compile(r"^\d+$"))
    expect(composer).to_have_value("")
    expect(composer).to_be_enabled()
    expect(page.locator(USER)).to_have_count(4)
    expect(page.locator(ASSISTANT)).to_have_count(2)

    # --- reload: the stored blocked messages keep a note ---------------------------------------
    page.reload()
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-state", "open")
    expect(page.locator(USER)).to_have_count(4)
    expect(page.locator(USER).nth(0)).to_have_attribute("data-status", "blocked")
    expect(page.locator(USER).nth(0).locator(NOTE)).to_have_text(GENERIC_BLOCKED_NOTE)
    expect(page.locator(USER).nth(3).locator(NOTE)).to_have_text(GENERIC_BLOCKED_NOTE)
    expect(page.locator(USER).nth(1).locator(NOTE)).to_be_hidden()
    expect(page.locator(ASSISTANT).nth(1)).to_have_attribute("data-status", "blocked")
    expect(page.locator(ASSISTANT).nth(1).locator(NOTE)).to_have_text(STOPPED_REASON)
    # Both frames of each blocked message reached the page, in the order this run is about (checked
    # last: the second frame of the last pair has no visible effect to wait on).
    second = "created" if first == "error" else "error"
    assert delivered == [first, second, first, second]
    if first == "error":
        shot(page, "blocked-reloaded")
        mobile = _mobile_page(page)
        try:
            mobile.goto(page.url)
            expect(mobile.locator(USER).nth(3).locator(NOTE)).to_have_text(GENERIC_BLOCKED_NOTE)
            mobile.locator(USER).nth(3).scroll_into_view_if_needed()
            shot(mobile, "blocked-mobile")
        finally:
            mobile.context.close()
