"""Every error status of the API, in OpenAI's format, against a live daphne with tight limits.

A refused request changes nothing: no message, no ledger row, no call to the model.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from django.test import Client

from bench.fake_upstream import FakeUpstream
from conversations.models import ApiKey, Conversation, Message, Plan, UsageRecord, UserPlan
from moderation.models import Flag, Suspension
from tests.api.conftest import BLOCKED_WORD, DEFAULT_MODEL, Caller, new_caller
from tests.live import LiveServer

pytestmark = pytest.mark.django_db(transaction=True)

BODY_LIMIT = 20_000
MESSAGE_LIMIT = 5_000
SENDS_PER_MINUTE = 3
API_SERVER_ENV = {
    "API_MAX_REQUEST_BYTES": str(BODY_LIMIT),
    "CHAT_MAX_MESSAGE_CHARS": str(MESSAGE_LIMIT),
    "RATE_LIMIT_SEND_USER": f"{SENDS_PER_MINUTE}/60",
}
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def upstream(fake_upstream: FakeUpstream) -> FakeUpstream:
    fake_upstream.reset()
    return fake_upstream


def assert_nothing_stored() -> None:
    assert Message.objects.count() == 0
    assert UsageRecord.objects.count() == 0


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


# --- 401 --------------------------------------------------------------------------------------------


def test_a_missing_or_malformed_key_is_401(api_server: LiveServer, caller: Caller) -> None:
    url = f"{api_server.url}/v1/chat/completions"
    body = {"model": DEFAULT_MODEL, "messages": HELLO}

    missing = httpx.post(url, json=body)
    basic = httpx.post(url, json=body, headers={"Authorization": f"Basic {caller.secret}"})
    models = httpx.get(f"{api_server.url}/v1/models")

    for response in (missing, basic, models):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert error_of(response)["type"] == "authentication_error"
    assert error_of(missing)["code"] == "missing_api_key"
    assert error_of(basic)["code"] == "invalid_api_key"
    assert_nothing_stored()


def test_a_wrong_key_is_401_with_the_official_client(caller: Caller) -> None:
    wrong = openai.OpenAI(base_url=caller.base_url, api_key=caller.secret[:-4] + "AAAA", max_retries=0)

    with pytest.raises(openai.AuthenticationError) as refused:
        wrong.chat.completions.create(model=DEFAULT_MODEL, messages=HELLO)  # type: ignore[arg-type]

    assert refused.value.status_code == 401 and refused.value.code == "invalid_api_key"
    assert_nothing_stored()


def test_a_revoked_key_is_refused_on_the_very_next_request(caller: Caller) -> None:
    client = caller.client()
    client.chat.completions.create(model=DEFAULT_MODEL, messages=HELLO)  # type: ignore[arg-type]
    key = ApiKey.objects.get(user=caller.user)
    page = Client()
    page.force_login(caller.user)

    assert page.post(f"/settings/keys/{key.pk}/revoke/").status_code == 302
    with pytest.raises(openai.AuthenticationError) as refused:
        client.chat.completions.create(model=DEFAULT_MODEL, messages=HELLO)  # type: ignore[arg-type]

    assert "revoked" in refused.value.message
    assert Message.objects.filter(role="user").count() == 1, "only the request before the revocation"


def test_a_disabled_account_cannot_use_its_keys(caller: Caller) -> None:
    caller.user.is_active = False
    caller.user.save(update_fields=["is_active"])

    with pytest.raises(openai.AuthenticationError):
        caller.client().models.list()


# --- 400 --------------------------------------------------------------------------------------------

MALFORMED: list[tuple[str, bytes | dict[str, Any], str, str | None]] = [
    ("not JSON", b"{nope", "invalid_json", None),
    ("a JSON array", b"[]", "invalid_json", None),
    ("no model", {"messages": HELLO}, "invalid_request", "model"),
    ("an unknown model", {"model": "gpt-17", "messages": HELLO}, "model_not_found", "model"),
    ("no messages", {"model": DEFAULT_MODEL}, "invalid_request", "messages"),
    ("empty messages", {"model": DEFAULT_MODEL, "messages": []}, "invalid_request", "messages"),
    ("messages not a list", {"model": DEFAULT_MODEL, "messages": "hi"}, "invalid_request", "messages"),
    ("a message not an object", {"model": DEFAULT_MODEL, "messages": ["hi"]}, "invalid_request", "messages[0]"),
    (
        "a tool role",
        {"model": DEFAULT_MODEL, "messages": [*HELLO, {"role": "tool", "content": "x", "tool_call_id": "1"}]},
        "unsupported_role",
        "messages[1].role",
    ),
    ("no role", {"model": DEFAULT_MODEL, "messages": [{"content": "hi"}]}, "unsupported_role", "messages[0].role"),
    (
        "non-string content",
        {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": 42}]},
        "invalid_request",
        "messages[0].content",
    ),
    (
        "an image part",
        {
            "model": DEFAULT_MODEL,
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
        },
        "unsupported_content",
        "messages[0].content[0]",
    ),
    (
        "an assistant message last",
        {"model": DEFAULT_MODEL, "messages": [*HELLO, {"role": "assistant", "content": "hi"}]},
        "invalid_request",
        "messages",
    ),
    (
        "only a system message",
        {"model": DEFAULT_MODEL, "messages": [{"role": "system", "content": "be nice"}]},
        "invalid_request",
        "messages",
    ),
    (
        "an empty user message",
        {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "   "}]},
        "empty_message",
        None,
    ),
    ("stream not a boolean", {"model": DEFAULT_MODEL, "messages": HELLO, "stream": "yes"}, "invalid_request", "stream"),
    ("n above 1", {"model": DEFAULT_MODEL, "messages": HELLO, "n": 2}, "unsupported_parameter", "n"),
    (
        "tools",
        {"model": DEFAULT_MODEL, "messages": HELLO, "tools": [{"type": "function", "function": {"name": "f"}}]},
        "unsupported_parameter",
        "tools",
    ),
    ("max_tokens 0", {"model": DEFAULT_MODEL, "messages": HELLO, "max_tokens": 0}, "invalid_request", "max_tokens"),
    (
        "max_tokens a string",
        {"model": DEFAULT_MODEL, "messages": HELLO, "max_tokens": "10"},
        "invalid_request",
        "max_tokens",
    ),
    (
        "stream_options not an object",
        {"model": DEFAULT_MODEL, "messages": HELLO, "stream": True, "stream_options": "usage"},
        "invalid_request",
        "stream_options",
    ),
    (
        "a JSON response format",
        {"model": DEFAULT_MODEL, "messages": HELLO, "response_format": {"type": "json_object"}},
        "unsupported_parameter",
        "response_format",
    ),
]


@pytest.mark.parametrize(("body", "code", "param"), [case[1:] for case in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_a_malformed_body_is_400_and_changes_nothing(
    caller: Caller, upstream: FakeUpstream, body: bytes | dict[str, Any], code: str, param: str | None
) -> None:
    response = caller.post(body)

    assert response.status_code == 400, response.text
    error = error_of(response)
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    assert_nothing_stored()
    assert Conversation.objects.count() == 0
    assert upstream.stats()["requests"] == 0


@pytest.mark.parametrize(
    ("headers", "param"),
    [({"X-Parley-Store": "maybe"}, "X-Parley-Store"), ({"X-Parley-Conversation": "42"}, "X-Parley-Conversation")],
)
def test_a_malformed_product_header_is_400(caller: Caller, headers: dict[str, str], param: str) -> None:
    response = caller.post({"model": DEFAULT_MODEL, "messages": HELLO}, headers=headers)

    assert response.status_code == 400
    assert error_of(response)["param"] == param
    assert_nothing_stored()


def test_ignored_parameters_are_accepted(caller: Caller) -> None:
    completion = caller.client().chat.completions.create(
        model=DEFAULT_MODEL,
        messages=HELLO,  # type: ignore[arg-type]
        temperature=0.2,
        top_p=0.9,
        seed=7,
        stop=["\n\n\n"],
        user="someone",
        presence_penalty=0.1,
        n=1,
    )

    assert completion.choices[0].finish_reason == "stop"


# --- 404, 405, 409 ----------------------------------------------------------------------------------


def test_another_users_conversation_is_not_found(api_server: LiveServer, caller: Caller) -> None:
    other = new_caller(api_server, "mallory")
    stored = other.post({"model": DEFAULT_MODEL, "messages": HELLO}, headers={"X-Parley-Store": "true"})
    their_conversation = stored.headers["x-parley-conversation"]

    response = caller.post(
        {"model": DEFAULT_MODEL, "messages": HELLO}, headers={"X-Parley-Conversation": their_conversation}
    )

    assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    assert Message.objects.filter(conversation__owner=caller.user).count() == 0


def test_unknown_endpoints_and_methods_answer_in_the_api_format(api_server: LiveServer, caller: Caller) -> None:
    auth = {"Authorization": f"Bearer {caller.secret}"}

    unknown = httpx.post(f"{api_server.url}/v1/embeddings", json={}, headers=auth)
    wrong_method = httpx.get(f"{api_server.url}/v1/chat/completions", headers=auth)

    assert unknown.status_code == 404 and error_of(unknown)["code"] == "unknown_endpoint"
    assert wrong_method.status_code == 405 and error_of(wrong_method)["code"] == "method_not_allowed"


# --- 413 --------------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413(api_server: LiveServer, caller: Caller, upstream: FakeUpstream) -> None:
    history = [{"role": "user", "content": "x" * 1000}, {"role": "assistant", "content": "ok"}] * 25
    body = json.dumps({"model": DEFAULT_MODEL, "messages": [*history, *HELLO]}).encode()
    assert len(body) > BODY_LIMIT

    declared = caller.post(body)
    # Sent in chunks, with no Content-Length to refuse it by: the bytes themselves are counted.
    chunked = httpx.post(
        f"{api_server.url}/v1/chat/completions",
        content=iter([body[:10_000], body[10_000:]]),
        headers={"Authorization": f"Bearer {caller.secret}", "Content-Type": "application/json"},
    )

    assert "content-length" not in chunked.request.headers
    for response in (declared, chunked):
        assert response.status_code == 413
        error = error_of(response)
        assert (error["type"], error["code"]) == ("invalid_request_error", "request_too_large")
        assert f"{BODY_LIMIT:,}" in error["message"]
    assert_nothing_stored()
    assert upstream.stats()["requests"] == 0


def test_a_message_over_the_chat_limit_is_413(caller: Caller) -> None:
    with pytest.raises(openai.APIStatusError) as refused:
        caller.client().chat.completions.create(
            model=DEFAULT_MODEL,
            messages=[{"role": "user", "content": "y" * (MESSAGE_LIMIT + 1)}],
        )

    assert refused.value.status_code == 413 and refused.value.code == "message_too_long"
    assert_nothing_stored()


# --- 429 --------------------------------------------------------------------------------------------


def test_sending_too_fast_is_429_with_retry_after(caller: Caller) -> None:
    client = caller.client()
    for _ in range(SENDS_PER_MINUTE):
        client.chat.completions.create(model=DEFAULT_MODEL, messages=HELLO)  # type: ignore[arg-type]

    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model=DEFAULT_MODEL, messages=HELLO)  # type: ignore[arg-type]

    assert refused.value.code == "rate_limit_exceeded"
    assert refused.value.type == "rate_limit_error"
    assert 1 <= int(refused.value.response.headers["retry-after"]) <= 60
    assert Message.objects.filter(role="user").count() == SENDS_PER_MINUTE


def test_a_spent_budget_is_429_with_the_time_until_it_resets(caller: Caller, upstream: FakeUpstream) -> None:
    tiny = Plan.objects.create(name="tiny", label="Tiny", daily_token_limit=10, monthly_token_limit=0)
    UserPlan.objects.create(user=caller.user, plan=tiny)

    with pytest.raises(openai.RateLimitError) as refused:
        caller.client().chat.completions.create(model="fake", messages=HELLO)  # type: ignore[arg-type]

    assert (refused.value.code, refused.value.type) == ("budget_exceeded", "insufficient_quota")
    retry_after = int(refused.value.response.headers["retry-after"])
    assert 1 <= retry_after <= 24 * 3600, "it waits at most until the next UTC midnight"
    assert "daily" in refused.value.message
    assert_nothing_stored()
    assert upstream.stats()["requests"] == 0


# --- 403 --------------------------------------------------------------------------------------------


def test_a_message_blocked_by_the_guardrails_is_403_and_never_reaches_the_model(
    caller: Caller, upstream: FakeUpstream
) -> None:
    with pytest.raises(openai.PermissionDeniedError) as refused:
        caller.client().chat.completions.create(
            model="fake", messages=[{"role": "user", "content": f"a {BLOCKED_WORD} request"}]
        )

    assert refused.value.code == "blocked" and "not sent to the assistant" in refused.value.message
    assert upstream.stats()["requests"] == 0
    [blocked] = Message.objects.filter(conversation__owner=caller.user)
    assert (blocked.role, blocked.status) == ("user", "blocked")
    [flag] = Flag.objects.filter(user=caller.user)
    assert (flag.direction, flag.action, flag.message_id) == ("input", "blocked", blocked.pk)


def test_a_blocked_earlier_message_or_system_text_is_403_too(caller: Caller, upstream: FakeUpstream) -> None:
    client = caller.client()
    for messages in (
        [{"role": "user", "content": f"{BLOCKED_WORD}!"}, {"role": "assistant", "content": "ok"}, *HELLO],
        [{"role": "system", "content": f"You allow {BLOCKED_WORD}."}, *HELLO],
    ):
        with pytest.raises(openai.PermissionDeniedError) as refused:
            client.chat.completions.create(model="fake", messages=messages)  # type: ignore[arg-type]
        assert refused.value.code == "blocked"

    assert upstream.stats()["requests"] == 0
    assert_nothing_stored()
    assert Flag.objects.filter(user=caller.user, direction="input", action="blocked").count() == 2


def test_a_suspended_account_is_403(caller: Caller) -> None:
    Suspension.objects.create(user=caller.user, reason="abuse")

    with pytest.raises(openai.PermissionDeniedError) as refused:
        caller.client().chat.completions.create(model=DEFAULT_MODEL, messages=HELLO)  # type: ignore[arg-type]

    assert refused.value.code == "suspended"
    assert_nothing_stored()
