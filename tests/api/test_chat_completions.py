"""The OpenAI-compatible API with the official `openai` client against a live daphne.

The same pipeline as the web chat: the ledger row, the stored messages, the prompt the model
receives (checked on the fake upstream), the web pages that show (or do not show) the exchange.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import openai
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from openai.types.chat import ChatCompletionMessageParam

from bench.fake_upstream import FakeUpstream, expected_content
from conversations.models import BudgetReservation, Conversation, Message, UsageRecord
from conversations.selectors import conversations_for_user
from conversations.services.messages import hidden_conversations_purge
from conversations.tasks import purge_hidden_conversations
from moderation.models import Flag
from moderation.services import flag_dismiss
from tests.api.conftest import CUT_AFTER, DEFAULT_MODEL, HALTING_WORD, SLOW_TOKENS, Caller
from tests.conftest import wait_for_message
from tests.live import LiveServer

pytestmark = pytest.mark.django_db(transaction=True)

SERVED = [DEFAULT_MODEL, "fake", "fake-slow", "fake-cut", "fake-down"]


def only_reply(caller: Caller) -> Message:
    return Message.objects.get(conversation__owner=caller.user, role="assistant")


def ledger(caller: Caller) -> UsageRecord:
    return UsageRecord.objects.get(user=caller.user, purpose="chat")


def web_page(caller: Caller, path: str = "/") -> str:
    client = Client()
    client.force_login(caller.user)
    response = client.get(path)
    assert response.status_code == 200, path
    return response.content.decode()


@pytest.fixture
def upstream(fake_upstream: FakeUpstream) -> FakeUpstream:
    fake_upstream.reset()
    return fake_upstream


def test_models_lists_what_this_deployment_serves(caller: Caller) -> None:
    client = caller.client()

    models = client.models.list()

    assert [model.id for model in models.data] == SERVED
    assert client.models.retrieve("fake-slow").id == "fake-slow"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-nonexistent")


def test_a_completion_runs_the_web_pipeline_and_is_in_the_ledger(caller: Caller, upstream: FakeUpstream) -> None:
    completion = caller.client().chat.completions.create(
        model="fake", messages=[{"role": "user", "content": "Say something"}]
    )

    choice = completion.choices[0]
    assert choice.message.content == expected_content(20)
    assert (choice.finish_reason, choice.message.role, completion.model) == ("stop", "assistant", "fake")
    reply = only_reply(caller)
    assert (reply.status, reply.content) == ("complete", expected_content(20))
    row = ledger(caller)
    assert row.message_id == reply.pk
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
        row.prompt_tokens,
        row.completion_tokens,
    )
    assert completion.usage.total_tokens == row.total_tokens
    assert row.completion_tokens == 20
    # The model got the deployment's system prompt with its leakage canary, then the message.
    sent = upstream.last_request()
    assert sent is not None
    system, user = sent["messages"]
    assert system["role"] == "system" and system["content"].startswith(settings.LLM_SYSTEM_PROMPT)
    assert settings.MODERATION_CANARY in system["content"]
    assert user == {"role": "user", "content": "Say something"}


def test_streaming_with_usage_delivers_every_delta_then_usage_then_done(caller: Caller) -> None:
    stream = caller.client().chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[{"role": "user", "content": "Explain streaming briefly"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 2, "the reply must arrive in pieces"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    reply = only_reply(caller)
    assert "".join(pieces) == reply.content and reply.status == "complete"
    row = ledger(caller)
    assert (usage_chunk.usage.prompt_tokens, usage_chunk.usage.completion_tokens) == (
        row.prompt_tokens,
        row.completion_tokens,
    )


def test_streaming_without_usage_sends_no_usage(caller: Caller) -> None:
    chunks = list(
        caller.client().chat.completions.create(model="fake", messages=[{"role": "user", "content": "hi"}], stream=True)
    )

    assert all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected_content(20)


async def test_the_async_client_streams_and_completes(caller: Caller) -> None:
    client = caller.async_client()

    stream = await client.chat.completions.create(
        model=DEFAULT_MODEL, messages=[{"role": "user", "content": "first async"}], stream=True
    )
    streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    completion = await client.chat.completions.create(
        model="fake", messages=[{"role": "user", "content": "second async"}]
    )
    await client.close()

    replies = await sync_to_async(
        lambda: list(
            Message.objects.filter(conversation__owner=caller.user, role="assistant")
            .order_by("id")
            .values_list("content", flat=True)
        )
    )()
    assert replies == [streamed, expected_content(20)]
    assert completion.choices[0].message.content == expected_content(20)
    assert "first async" in streamed, "the offline model quotes the message it answers"


def test_system_and_earlier_messages_map_onto_the_prompt(caller: Caller, upstream: FakeUpstream) -> None:
    caller.client().chat.completions.create(
        model="fake",
        messages=[
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "question"}]},
        ],
    )

    sent = upstream.last_request()
    assert sent is not None
    system, *rest = sent["messages"]
    # Under the deployment's prompt, not instead of it, and still one system message.
    assert system["content"].startswith(settings.LLM_SYSTEM_PROMPT)
    assert system["content"].endswith("\n\nAnswer in French.\n\nBe brief.")
    assert settings.MODERATION_CANARY in system["content"]
    assert rest == [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second\nquestion"},
    ]
    # Stateless: only the turn and its reply are stored, not the client's history.
    stored = Message.objects.filter(conversation__owner=caller.user).order_by("id")
    assert [(m.role, m.content) for m in stored] == [("user", "second\nquestion"), ("assistant", expected_content(20))]


def test_personal_data_in_the_history_is_redacted_before_the_model_sees_it(
    caller: Caller, upstream: FakeUpstream
) -> None:
    caller.client().chat.completions.create(
        model="fake",
        messages=[
            {"role": "user", "content": "write to jane.doe@proton.me please"},
            {"role": "assistant", "content": "Done."},
            {"role": "user", "content": "thanks"},
        ],
    )

    sent = upstream.last_request()
    assert sent is not None
    earlier = sent["messages"][1]["content"]
    assert "jane.doe@proton.me" not in earlier and "[EMAIL]" in earlier


def test_max_tokens_is_passed_to_the_model_and_capped(caller: Caller, upstream: FakeUpstream) -> None:
    client = caller.client()

    short = client.chat.completions.create(model="fake", messages=[{"role": "user", "content": "a"}], max_tokens=5)
    short_request = upstream.last_request()
    client.chat.completions.create(
        model="fake", messages=[{"role": "user", "content": "b"}], max_completion_tokens=10**6
    )
    capped_request = upstream.last_request()

    assert short_request is not None and short_request["max_tokens"] == 5
    assert short.choices[0].message.content == expected_content(5)
    assert short.choices[0].finish_reason == "length"
    assert capped_request is not None and capped_request["max_tokens"] == settings.LLM_MAX_OUTPUT_TOKENS


def test_by_default_nothing_shows_in_the_web_chat(caller: Caller) -> None:
    raw = caller.client().chat.completions.with_raw_response.create(
        model=DEFAULT_MODEL, messages=[{"role": "user", "content": "a private one-off question"}]
    )

    assert "x-parley-conversation" not in raw.headers
    assert list(conversations_for_user(user=caller.user)) == []
    assert "a private one-off question" not in web_page(caller)
    # Kept out of sight for moderation and the ledger, and never for memory.
    hidden = Conversation.objects.get(owner=caller.user)
    assert hidden.temporary and hidden.deleted_at is not None
    assert web_page_status(caller, f"/c/{hidden.pk}/") == 404
    assert ledger(caller).conversation_id == hidden.pk


def web_page_status(caller: Caller, path: str) -> int:
    client = Client()
    client.force_login(caller.user)
    return int(client.get(path).status_code)


def test_the_store_header_keeps_the_exchange_as_a_conversation_in_the_web_chat(caller: Caller) -> None:
    raw = caller.client().chat.completions.with_raw_response.create(
        model="fake",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Plan a trip to Lisbon"},
            {"role": "assistant", "content": "Which month?"},
            {"role": "user", "content": "In May"},
        ],
        extra_headers={"X-Parley-Store": "true"},
    )

    conversation_id = raw.headers["x-parley-conversation"]
    [conversation] = conversations_for_user(user=caller.user)
    assert str(conversation.pk) == conversation_id and not conversation.temporary
    assert conversation.title == "Plan a trip to Lisbon"
    branch = [m.content for m in _branch(conversation)]
    assert branch == ["Plan a trip to Lisbon", "Which month?", "In May", expected_content(20)]
    page = web_page(caller, f"/c/{conversation_id}/")
    assert "Which month?" in page and "In May" in page and "tok19" in page
    assert "Plan a trip to Lisbon" in web_page(caller)


def _branch(conversation: Conversation) -> list[Message]:
    from conversations.selectors import branch_messages

    conversation.refresh_from_db()
    return branch_messages(conversation=conversation)


def test_the_conversation_header_continues_a_conversation_from_its_stored_history(
    caller: Caller, upstream: FakeUpstream
) -> None:
    client = caller.client()
    first = client.chat.completions.with_raw_response.create(
        model="fake",
        messages=[{"role": "user", "content": "Remember: the code is blue"}],
        extra_headers={"X-Parley-Store": "1"},
    )
    conversation_id = first.headers["x-parley-conversation"]

    second = client.chat.completions.with_raw_response.create(
        model="fake",
        messages=[{"role": "user", "content": "What was the code?"}],
        extra_headers={"X-Parley-Conversation": conversation_id},
    )

    assert second.headers["x-parley-conversation"] == conversation_id
    sent = upstream.last_request()
    assert sent is not None
    assert [m["content"] for m in sent["messages"][1:]] == [
        "Remember: the code is blue",
        expected_content(20),
        "What was the code?",
    ]
    [conversation] = conversations_for_user(user=caller.user)
    assert len(_branch(conversation)) == 4


def test_a_client_that_disconnects_mid_stream_stops_the_upstream_request(
    api_server: LiveServer, caller: Caller, upstream: FakeUpstream
) -> None:
    body = {"model": "fake-slow", "messages": [{"role": "user", "content": "a long one"}], "stream": True}
    headers = {"Authorization": f"Bearer {caller.secret}"}
    url = f"{api_server.url}/v1/chat/completions"
    with httpx.Client(timeout=30) as http, http.stream("POST", url, json=body, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        seen = 0
        for line in response.iter_lines():
            if line.startswith("data: ") and '"content":"tok' in line:
                seen += 1
                if seen == 3:
                    break
    # Leaving the block closed the connection in the middle of the reply.

    stats = upstream.wait_for(lambda s: s["client_disconnects"] >= 1, timeout=15)
    assert stats["streams_completed"] == 0

    streaming = Message.objects.get(conversation__owner=caller.user, role="assistant")
    reply = wait_for_message(streaming.pk, lambda m: m.status != "streaming")
    assert reply.status == "stopped"
    assert reply.content and expected_content(SLOW_TOKENS).startswith(reply.content)
    assert len(reply.content) < len(expected_content(SLOW_TOKENS))
    row = ledger(caller)
    assert row.completion_tokens > 0 and row.message_id == reply.pk


def test_a_reply_stopped_by_the_output_guardrails_ends_with_content_filter(caller: Caller) -> None:
    client = caller.client()
    message: list[ChatCompletionMessageParam] = [{"role": "user", "content": f"please repeat {HALTING_WORD}"}]

    chunks = list(client.chat.completions.create(model=DEFAULT_MODEL, messages=message, stream=True))
    completion = client.chat.completions.create(model=DEFAULT_MODEL, messages=message)

    shown = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["content_filter"]
    assert HALTING_WORD not in shown and shown.startswith("**Offline model.**")
    assert completion.choices[0].finish_reason == "content_filter"
    # Each answer is what its reply kept: the text before the chunk that tripped the guardrail.
    replies = list(Message.objects.filter(conversation__owner=caller.user, role="assistant").order_by("id"))
    assert [m.status for m in replies] == ["blocked", "blocked"]
    assert [m.content for m in replies] == [shown, completion.choices[0].message.content]
    assert Flag.objects.filter(user=caller.user, direction="output", category="policy").count() == 2


def test_an_upstream_failure_before_any_text_is_an_http_error(caller: Caller) -> None:
    client = caller.client()
    message: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]

    with pytest.raises(openai.APIStatusError) as whole:
        client.chat.completions.create(model="fake-down", messages=message)
    with pytest.raises(openai.APIStatusError) as streamed:
        client.chat.completions.create(model="fake-down", messages=message, stream=True)

    for refused in (whole, streamed):
        assert refused.value.status_code == 502 and refused.value.code == "upstream_bad_request"
    replies = Message.objects.filter(conversation__owner=caller.user, role="assistant")
    assert [(m.status, m.content) for m in replies] == [("failed", ""), ("failed", "")]
    assert [r.ok for r in UsageRecord.objects.filter(user=caller.user)] == [False, False]


def test_a_stream_cut_by_the_upstream_ends_with_an_error_event(caller: Caller) -> None:
    stream = caller.client().chat.completions.create(
        model="fake-cut", messages=[{"role": "user", "content": "hello"}], stream=True
    )
    shown: list[str] = []

    with pytest.raises(openai.APIError) as failed:
        for chunk in stream:
            shown.append(chunk.choices[0].delta.content or "")

    assert failed.value.code == "upstream_error"
    reply = only_reply(caller)
    assert reply.status == "failed"
    assert "".join(shown) == reply.content == expected_content(CUT_AFTER)


def test_retention_deletes_stateless_exchanges_but_keeps_their_ledger_rows_and_flags(caller: Caller) -> None:
    client = caller.client()
    client.chat.completions.create(
        model="fake", messages=[{"role": "user", "content": "mail jane.doe@proton.me the plan"}]
    )
    client.chat.completions.create(
        model="fake", messages=[{"role": "user", "content": "keep this one"}], extra_headers={"X-Parley-Store": "true"}
    )
    [hidden] = Conversation.objects.filter(owner=caller.user, temporary=True)
    flag = Flag.objects.get(user=caller.user, category__startswith="pii")
    assert flag.conversation_id == hidden.pk and flag.message_id is not None

    assert hidden_conversations_purge() == 0, "not before the retention period"
    assert not Message.objects.filter(conversation_id=hidden.pk, embedding__isnull=False).exists(), "never searched"
    Conversation.objects.filter(pk=hidden.pk).update(deleted_at=timezone.now() - timedelta(days=2))
    assert purge_hidden_conversations() == 0, "an open flag holds it for review"
    flag_dismiss(flag=flag, reviewer=User.objects.create_user("reviewer", password="x" * 12), note="fine")
    assert purge_hidden_conversations() == 1, "the beat task purges it once reviewed"

    assert not Conversation.objects.filter(pk=hidden.pk).exists()
    assert not Message.objects.filter(conversation_id=hidden.pk).exists()
    [kept] = conversations_for_user(user=caller.user)
    assert kept.messages.count() == 2, "a stored conversation is the user's, never purged"
    rows = UsageRecord.objects.filter(user=caller.user, purpose="chat").order_by("id")
    assert rows.count() == 2 and rows[0].message_id is None and rows[0].completion_tokens == 20
    flag.refresh_from_db()
    assert (flag.message_id, flag.conversation_id) == (None, None)
    assert "the plan" in flag.excerpt and "jane.doe@proton.me" not in flag.excerpt, "kept, with the data masked"
    assert BudgetReservation.objects.filter(user=caller.user, state="settled").count() == 2
