"""The follow-up tasks of a reply, through a real Celery worker process and Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from chatproject.celery import app
from conversations.services.followups import reply_followups
from memory.models import ConversationSummary, UserFact
from tests.conftest import test_database_url
from tests.factories import conversation_with_turns

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {"memory.tasks.embed_message", "memory.tasks.refresh_summary", "memory.tasks.extract_facts"}


class TaskEvents:
    """Celery's own event stream (worker -E): wait for tasks to finish without polling."""

    def __init__(self) -> None:
        self.online = threading.Event()
        self.finished = threading.Event()
        self.succeeded: dict[str, str] = {}
        self.failed: list[dict[str, Any]] = []
        self._names: dict[str, str] = {}
        self._receiver: Any = None

    def _on_received(self, event: dict[str, Any]) -> None:
        self._names[event["uuid"]] = event["name"]

    def _on_succeeded(self, event: dict[str, Any]) -> None:
        self.succeeded[self._names.get(event["uuid"], "?")] = event.get("result", "")
        if set(self.succeeded) >= EXPECTED:
            self.finished.set()

    def _on_failed(self, event: dict[str, Any]) -> None:
        self.failed.append(event)
        self.finished.set()

    def listen(self) -> threading.Thread:
        def run() -> None:
            with app.connection() as connection:
                self._receiver = app.events.Receiver(
                    connection,
                    handlers={
                        "worker-online": lambda e: self.online.set(),
                        "worker-heartbeat": lambda e: self.online.set(),
                        "task-received": self._on_received,
                        "task-succeeded": self._on_succeeded,
                        "task-failed": self._on_failed,
                    },
                )
                self._receiver.capture(limit=None, timeout=None, wakeup=True)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True


@pytest.fixture
def worker(settings: Any, tmp_path: Path) -> Iterator[TaskEvents]:
    queue = f"test-{uuid.uuid4().hex[:8]}"
    app.conf.task_always_eager = False
    app.conf.task_default_queue = queue
    events = TaskEvents()
    listener = events.listen()
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "CELERY_QUEUE": queue,
        # Low enough that the conversation below is due a summary.
        "SUMMARY_TRIGGER_TOKENS": "200",
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "chatproject", "worker", "-E", "-Q", queue, "-c", "1", "-P", "solo"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        assert events.online.wait(60), f"the worker did not come online:\n{log.read_text()[-3000:]}"
        yield events
    finally:
        process.terminate()
        process.wait(timeout=30)
        events.stop()
        listener.join(timeout=10)
        app.conf.task_default_queue = settings.CELERY_TASK_DEFAULT_QUEUE


def test_a_reply_is_embedded_summarized_and_mined_for_facts_by_the_worker(user: User, worker: TaskEvents) -> None:
    turns = [(f"Question {i}: " + "please explain more " * 20, f"Answer {i}: " + "detail " * 60) for i in range(9)]
    turns.append(("By the way, my name is Ada and I live in Lisbon.", "Nice to meet you, Ada."))
    conversation, messages = conversation_with_turns(user, turns)

    reply_followups(message_id=messages[-1].pk, conversation_id=str(conversation.pk), user_id=user.pk, temporary=False)

    assert worker.finished.wait(120), f"tasks did not finish: {worker.succeeded}"
    assert worker.failed == []
    messages[-1].refresh_from_db()
    assert messages[-1].embedding is not None and len(messages[-1].embedding) == 384
    summary = ConversationSummary.objects.get(conversation=conversation)
    assert "Question 0" in summary.text
    assert set(UserFact.objects.filter(user=user).values_list("key", flat=True)) == {"name", "location"}
