"""Several deployments of a model through litellm's Router, over real HTTP to fake servers.

Each deployment is its own FakeUpstream, so what a server saw (requests, streams, disconnects)
says which deployment litellm called; failures are injected per deployment with x-fake-* headers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured

from bench.fake_upstream import FakeUpstream, expected_content
from chatproject.llm import gateway
from chatproject.llm.config import configured_models, resolve_model
from chatproject.llm.types import LLMError
from conversations.models import Message, UsageRecord
from tests.conftest import Socket

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, FakeUpstream]]:
    with FakeUpstream(tokens=6) as a, FakeUpstream(tokens=6) as b, FakeUpstream(tokens=4) as c:
        yield {"a": a, "b": b, "c": c}


@pytest.fixture
def fakes(servers: dict[str, FakeUpstream], settings: Any) -> dict[str, FakeUpstream]:
    for server in servers.values():
        server.reset()
    # Strict and slow to forgive, so one failure is enough and a cooldown outlasts the test.
    settings.LLM_ROUTER_ALLOWED_FAILS = 0
    settings.LLM_ROUTER_COOLDOWN_SECONDS = 300
    settings.LLM_ROUTER_RETRIES = 2
    settings.LLM_ROUTER_TIMEOUT = 10
    return servers


def deployment(server: FakeUpstream, deployment_id: str, **fake: object) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": deployment_id,
        "model": "openai/fake-model",
        "api_base": server.url,
        "api_key": "test-key",
    }
    if fake:
        entry["extra_headers"] = {f"x-fake-{name.replace('_', '-')}": str(value) for name, value in fake.items()}
    return entry


def serve(settings: Any, *models: dict[str, Any]) -> None:
    settings.LLM_MODEL = models[0]["name"]
    settings.LLM_MODELS = list(models)
    configured_models.cache_clear()


def requests_to(server: FakeUpstream) -> int:
    return server.stats()["requests"]


async def collect(model: str | None = None) -> tuple[str, Any]:
    text, last = [], None
    async for delta in gateway.stream(HELLO, model=model):  # type: ignore[arg-type]
        text.append(delta.text)
        last = delta
    return "".join(text), last


@pytest.fixture
async def chat(socket: Socket, user: Any) -> Socket:
    from memory.services import memory_set_enabled

    # Memory off: fact extraction would otherwise add requests of its own to the servers' counts.
    await sync_to_async(memory_set_enabled)(user=user, enabled=False)
    return socket


async def turn(sock: Socket, content: str) -> tuple[dict[str, Any], Message, UsageRecord]:
    """A whole chat turn over the socket: the done frame, the stored reply and its ledger row."""
    await sock.send({"type": "send", "content": content})
    frames = await sock.receive_until(lambda f: f["type"] == "done")
    done = frames[-1]
    message = await sync_to_async(Message.objects.get)(pk=done["message_id"])
    usage = await sync_to_async(UsageRecord.objects.get)(message_id=done["message_id"])
    return done, message, usage


# --- through the product ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_turn_completes_through_the_healthy_deployment_and_names_it(
    chat: Socket, fakes: dict[str, FakeUpstream], settings: Any
) -> None:
    a, b = fakes["a"], fakes["b"]
    serve(
        settings,
        {"name": "main", "deployments": [deployment(a, "deployment-a", status=500), deployment(b, "deployment-b")]},
    )

    for number in range(4):
        done, message, usage = await turn(chat, f"question {number}")
        assert (done["status"], done["content"]) == ("complete", expected_content(6))
        assert message.model == usage.model == "openai/fake-model@deployment-b"
        assert usage.completion_tokens == 6 and usage.ok
    assert b.stats()["streams_completed"] == 4
    assert requests_to(a) <= 1, "a failing deployment is tried at most once before its cooldown"


@pytest.mark.django_db(transaction=True)
async def test_a_failing_deployment_gets_no_requests_while_it_cools_down(
    chat: Socket, fakes: dict[str, FakeUpstream], settings: Any
) -> None:
    a, b = fakes["a"], fakes["b"]
    serve(
        settings,
        {"name": "main", "deployments": [deployment(a, "deployment-a", status=503), deployment(b, "deployment-b")]},
    )

    # The Router shuffles, so turns go on until it has picked the failing deployment once.
    for number in range(30):
        await turn(chat, f"warm-up {number}")
        if requests_to(a):
            break
    assert requests_to(a) == 1, "the Router never tried the failing deployment"
    served_before = requests_to(b)

    for number in range(6):
        done, message, _ = await turn(chat, f"during cooldown {number}")
        assert done["status"] == "complete"
        assert message.model == "openai/fake-model@deployment-b"
    assert requests_to(a) == 1, "a deployment in cooldown must get no requests"
    assert requests_to(b) == served_before + 6


@pytest.mark.django_db(transaction=True)
async def test_it_falls_back_to_another_model_when_every_deployment_fails(
    chat: Socket, fakes: dict[str, FakeUpstream], settings: Any
) -> None:
    a, b, c = fakes["a"], fakes["b"], fakes["c"]
    serve(
        settings,
        {
            "name": "main",
            "deployments": [deployment(a, "main-a", status=500), deployment(b, "main-b", status=503)],
            "fallbacks": ["backup"],
        },
        {"name": "backup", **deployment(c, "backup-c")},
    )

    done, message, usage = await turn(chat, "anyone there?")

    assert (done["status"], done["content"]) == ("complete", expected_content(4))
    assert message.model == usage.model == "openai/fake-model@backup-c"
    assert requests_to(a) >= 1 and requests_to(b) >= 1, "the model's own deployments are tried first"
    assert c.stats()["streams_completed"] == 1


@pytest.mark.django_db(transaction=True)
async def test_a_deployment_silent_past_the_timeout_falls_back(
    chat: Socket, fakes: dict[str, FakeUpstream], settings: Any
) -> None:
    a, c = fakes["a"], fakes["c"]
    settings.LLM_ROUTER_TIMEOUT = 0.5
    serve(
        settings,
        # It answers with headers at once, then says nothing for 30 s.
        {"name": "main", **deployment(a, "main-a", first_token_delay_ms=30_000), "fallbacks": ["backup"]},
        {"name": "backup", **deployment(c, "backup-c")},
    )

    done, message, usage = await turn(chat, "hello?")

    assert (done["status"], done["content"]) == ("complete", expected_content(4))
    assert message.model == usage.model == "openai/fake-model@backup-c"
    stats = await a.wait_for_async(lambda s: s["client_disconnects"] == 1, timeout=10)
    assert stats["streams_completed"] == 0, "the silent request was given up on, and closed"

    # Cooled down: the next turn goes straight to the fallback instead of waiting again.
    done, message, _ = await turn(chat, "hello again?")
    assert message.model == "openai/fake-model@backup-c"
    assert requests_to(a) == 1


@pytest.mark.django_db(transaction=True)
async def test_a_failure_after_the_first_token_keeps_the_text_and_never_splices_another_answer(
    chat: Socket, fakes: dict[str, FakeUpstream], settings: Any
) -> None:
    a, c = fakes["a"], fakes["c"]
    serve(
        settings,
        {"name": "main", **deployment(a, "main-a", fail_after=3), "fallbacks": ["backup"]},
        {"name": "backup", **deployment(c, "backup-c")},
    )

    done, message, usage = await turn(chat, "this one breaks")

    assert done["status"] == "failed"
    assert done["content"] == message.content == "tok0 tok1 tok2 "
    assert done["error"]["code"] in {"upstream_error", "upstream_cut"}
    assert requests_to(c) == 0, "no fallback may continue a reply that has started"
    assert not usage.ok


# --- the gateway ----------------------------------------------------------------------------------


async def test_a_stream_cut_before_its_first_token_is_retried_on_another_deployment(
    fakes: dict[str, FakeUpstream], settings: Any
) -> None:
    a, b = fakes["a"], fakes["b"]
    serve(settings, {"name": "main", "deployments": [deployment(a, "main-a", fail_after=0), deployment(b, "main-b")]})

    answers = [await collect() for _ in range(6)]

    assert all(text == expected_content(6) for text, _ in answers)
    assert {last.model for _, last in answers} == {"openai/fake-model@main-b"}
    assert requests_to(a) <= 1


async def test_load_is_spread_over_two_healthy_deployments(fakes: dict[str, FakeUpstream], settings: Any) -> None:
    a, b = fakes["a"], fakes["b"]
    serve(settings, {"name": "main", "deployments": [deployment(a, "main-a"), deployment(b, "main-b")]})

    answered_by = Counter([(await collect())[1].model for _ in range(20)])

    # Shuffled evenly, one deployment serving fewer than 2 of 20 happens about once in 25,000 runs.
    assert answered_by["openai/fake-model@main-a"] == a.stats()["streams_completed"] >= 2
    assert answered_by["openai/fake-model@main-b"] == b.stats()["streams_completed"] >= 2
    assert sum(answered_by.values()) == 20


async def test_a_model_with_one_deployment_is_called_directly(fakes: dict[str, FakeUpstream], settings: Any) -> None:
    serve(settings, {"name": "solo", **deployment(fakes["a"], "solo-a")})
    assert not resolve_model("solo").is_routed

    text, last = await collect()

    assert text == expected_content(6)
    assert last.model == "openai/fake-model", "the direct path names the model, not a Router deployment"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("routed", [False, True])
async def test_the_products_own_keys_are_never_sent_to_the_provider(
    fakes: dict[str, FakeUpstream], settings: Any, routed: bool
) -> None:
    entry: dict[str, Any] = {"name": "solo", "max_concurrency": 2, **deployment(fakes["a"], "solo-a")}
    if routed:
        entry["deployments"] = [{"id": "solo-b", "api_base": fakes["b"].url}]
    serve(settings, entry)
    assert resolve_model("solo").max_concurrency == 2

    await collect()

    sent = fakes["b" if routed else "a"].last_request()
    assert sent is not None and sent["messages"] and "max_concurrency" not in sent


@pytest.mark.django_db(transaction=True)
async def test_the_queue_limit_of_a_routed_model_is_the_sum_of_its_deployments(
    fakes: dict[str, FakeUpstream], settings: Any
) -> None:
    entry: dict[str, Any] = {"name": "pair", **deployment(fakes["a"], "pair-a")}
    entry["deployments"] = [
        {"id": "pair-a", "max_concurrency": 3},
        {"id": "pair-b", "api_base": fakes["b"].url, "max_concurrency": 5},
    ]
    serve(settings, entry)
    assert resolve_model("pair").max_concurrency == 8

    await collect()

    sent = [server.last_request() for server in (fakes["a"], fakes["b"])]
    assert any(sent) and not any(body and "max_concurrency" in body for body in sent)


def test_a_limit_on_some_deployments_only_is_a_clear_error(settings: Any) -> None:
    settings.LLM_MODELS = [
        {"name": "pair", "model": "openai/x", "deployments": [{"id": "a", "max_concurrency": 3}, {"id": "b"}]}
    ]
    configured_models.cache_clear()
    with pytest.raises(ImproperlyConfigured, match="every deployment"):
        configured_models()


async def test_when_every_deployment_is_cooling_the_error_says_so(
    fakes: dict[str, FakeUpstream], settings: Any
) -> None:
    a, b = fakes["a"], fakes["b"]
    serve(
        settings,
        {"name": "main", "deployments": [deployment(a, "main-a", status=500), deployment(b, "main-b", status=500)]},
    )
    with pytest.raises(LLMError):
        await collect()
    tried = requests_to(a) + requests_to(b)

    with pytest.raises(LLMError) as caught:
        await collect()

    assert (caught.value.code, caught.value.retryable) == ("model_unavailable", True)
    assert requests_to(a) + requests_to(b) == tried, "nothing is sent while every deployment cools down"


async def test_background_work_goes_through_the_router_too(fakes: dict[str, FakeUpstream], settings: Any) -> None:
    a, b = fakes["a"], fakes["b"]
    serve(settings, {"name": "main", "deployments": [deployment(a, "main-a", status=500), deployment(b, "main-b")]})

    for _ in range(3):
        text, usage = await gateway.complete(HELLO)  # type: ignore[arg-type]
        assert text == expected_content(6)
        assert usage.completion_tokens == 6
    assert b.stats()["requests"] == 3
    assert requests_to(a) <= 1


# --- configuration ------------------------------------------------------------------------------


def test_entries_sharing_a_name_are_deployments_of_one_model(settings: Any) -> None:
    serve(
        settings,
        {"name": "main", "model": "openai/m", "api_base": "http://one/v1", "context_window": 4096},
        {"name": "main", "model": "openai/m", "api_base": "http://two/v1"},
        {"name": "other", "model": "openai/o"},
    )
    main = resolve_model("main")
    assert [d.api_base for d in main.deployments] == ["http://one/v1", "http://two/v1"]
    assert [d.id for d in main.deployments] == ["main-1", "main-2"]
    assert main.context_window == 4096 and main.is_routed
    assert [spec.name for spec in configured_models()] == ["main", "other"]
    assert not resolve_model("other").is_routed


def test_a_deployments_list_inherits_the_entrys_keys(settings: Any) -> None:
    serve(
        settings,
        {
            "name": "main",
            "model": "openai/m",
            "api_key": "shared",
            "extra_headers": {"x-team": "1"},
            "deployments": [{"api_base": "http://one/v1", "id": "eu"}, {"api_base": "http://two/v1", "api_key": "own"}],
        },
    )
    first, second = resolve_model("main").deployments
    assert (first.id, first.api_key, first.extra) == ("eu", "shared", {"extra_headers": {"x-team": "1"}})
    assert (second.id, second.api_key, second.litellm_model) == ("main-2", "own", "openai/m")
    assert first.label == "openai/m@eu"


@pytest.mark.parametrize(
    ("models", "complaint"),
    [
        ([{"name": "main", "model": "openai/m", "fallbacks": ["missing"]}], "not another served model"),
        ([{"name": "main", "model": "openai/m", "fallbacks": ["main"]}], "not another served model"),
        ([{"name": "main", "model": "openai/m", "fallbacks": "other"}], "not another served model"),
        ([{"name": "main", "deployments": [{"api_base": "http://x"}]}], "has no model"),
        ([{"name": "main", "model": "openai/m", "deployments": []}], "non-empty list"),
        ([{"name": "main", "model": "openai/m", "fallbacks": [3]}], "list of model names"),
        ([{"name": "a", "model": "openai/m", "id": "x"}, {"name": "b", "model": "openai/m", "id": "x"}], "used twice"),
        (["openai/m"], "JSON objects"),
    ],
)
def test_a_bad_model_list_is_a_clear_error(settings: Any, models: list[Any], complaint: str) -> None:
    settings.LLM_MODEL = "main"
    settings.LLM_MODELS = models
    configured_models.cache_clear()
    with pytest.raises(ImproperlyConfigured, match=complaint):
        configured_models()


async def test_a_bad_routing_strategy_is_a_clear_error(fakes: dict[str, FakeUpstream], settings: Any) -> None:
    settings.LLM_ROUTER_STRATEGY = "fastest-please"
    serve(settings, {"name": "main", "deployments": [deployment(fakes["a"], "a1"), deployment(fakes["b"], "b1")]})
    with pytest.raises(ImproperlyConfigured, match="simple-shuffle"):
        await collect()
    assert requests_to(fakes["a"]) + requests_to(fakes["b"]) == 0
