"""The coalescing window widens with the replies streaming in the process, within its bounds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conversations.services import turns


@pytest.fixture
def running() -> Iterator[dict[int, Any]]:
    saved = dict(turns._running)
    turns._running.clear()
    yield turns._running
    turns._running.clear()
    turns._running.update(saved)


def streaming(running: dict[int, Any], count: int) -> None:
    running.clear()
    running.update({index: object() for index in range(count)})


def test_few_replies_get_the_configured_window(running: dict[int, Any], settings: Any) -> None:
    settings.CHAT_COALESCE_MS, settings.CHAT_MAX_FLUSHES_PER_SECOND, settings.CHAT_COALESCE_MAX_MS = 25, 2000, 250
    streaming(running, 10)
    assert turns.coalescing_interval() == pytest.approx(0.025)


def test_many_replies_share_the_flush_budget_up_to_the_cap(running: dict[int, Any], settings: Any) -> None:
    settings.CHAT_COALESCE_MS, settings.CHAT_MAX_FLUSHES_PER_SECOND, settings.CHAT_COALESCE_MAX_MS = 25, 2000, 250
    streaming(running, 200)
    assert turns.coalescing_interval() == pytest.approx(0.1)  # 200 replies × 10 deltas/s = 2,000/s
    streaming(running, 5000)
    assert turns.coalescing_interval() == pytest.approx(0.25)


def test_a_cap_below_the_base_window_never_shrinks_it(running: dict[int, Any], settings: Any) -> None:
    settings.CHAT_COALESCE_MS, settings.CHAT_MAX_FLUSHES_PER_SECOND, settings.CHAT_COALESCE_MAX_MS = 50, 2000, 10
    streaming(running, 1000)
    assert turns.coalescing_interval() == pytest.approx(0.05)
