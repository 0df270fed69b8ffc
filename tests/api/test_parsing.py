"""How a chat-completions body maps onto a turn: pure parsing, no server, no database."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chatproject.llm.config import default_model
from conversations.api import ApiError, parse_chat_request
from memory.context import Turn


def parse(body: dict[str, Any], **headers: str | None) -> Any:
    return parse_chat_request(json.dumps(body).encode(), **headers)


def model() -> str:
    return default_model().name


def test_the_last_message_is_the_turn_and_the_rest_is_context() -> None:
    request = parse(
        {
            "model": model(),
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "one"},
                {"role": "assistant", "content": [{"type": "text", "text": "two"}]},
                {"role": "developer", "content": "Use British spelling."},
                {"role": "user", "content": [{"type": "text", "text": "three"}, {"type": "input_text", "text": "!"}]},
            ],
        }
    )

    turn = request.turn
    assert turn.content == "three\n!"
    assert turn.instructions == "Be brief.\n\nUse British spelling."
    assert turn.history == (Turn("user", "one"), Turn("assistant", "two"))
    assert (request.stream, request.include_usage, turn.store, turn.conversation_id) == (False, False, False, None)


def test_usage_is_sent_only_when_streaming() -> None:
    options = {"include_usage": True}
    message = [{"role": "user", "content": "hi"}]

    streamed = parse({"model": model(), "messages": message, "stream": True, "stream_options": options})
    whole = parse({"model": model(), "messages": message, "stream": False, "stream_options": options})

    assert (streamed.stream, streamed.include_usage) == (True, True)
    assert (whole.stream, whole.include_usage) == (False, False)


def test_max_tokens_is_capped_at_the_models_own_cap(settings: Any) -> None:
    message = [{"role": "user", "content": "hi"}]
    cap = settings.LLM_MAX_OUTPUT_TOKENS

    assert parse({"model": model(), "messages": message, "max_tokens": 7}).turn.max_tokens == 7
    assert parse({"model": model(), "messages": message, "max_completion_tokens": cap + 1}).turn.max_tokens == cap
    assert parse({"model": model(), "messages": message}).turn.max_tokens is None


@pytest.mark.parametrize(
    ("value", "stored"), [("true", True), ("1", True), ("YES", True), ("false", False), (None, False)]
)
def test_the_store_header(value: str | None, stored: bool) -> None:
    request = parse({"model": model(), "messages": [{"role": "user", "content": "hi"}]}, store=value)

    assert request.turn.store is stored


def test_the_conversation_header_is_normalized() -> None:
    request = parse(
        {"model": model(), "messages": [{"role": "user", "content": "hi"}]},
        conversation=" 6F9619FF-8B86-D011-B42D-00C04FC964FF ",
    )

    assert request.turn.conversation_id == "6f9619ff-8b86-d011-b42d-00c04fc964ff"


def test_an_error_names_the_parameter() -> None:
    with pytest.raises(ApiError) as refused:
        parse({"model": model(), "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": None}]})

    assert (refused.value.status, refused.value.param) == (400, "messages[1].content")
    body = json.loads(refused.value.response().content)
    assert body["error"]["type"] == "invalid_request_error"
