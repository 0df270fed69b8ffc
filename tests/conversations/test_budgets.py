"""Token budgets: reservations under real concurrency (PostgreSQL row locks), settlement from the
ledger, refusals that say when they reset, per-user overrides and the fallback model."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import F, Sum

from chatproject.llm.config import configured_models, default_model
from conversations.limits import queue as llm_queue
from conversations.limits.budgets import (
    BudgetExceeded,
    budget_estimate,
    budget_release,
    budget_reserve,
    budget_settle,
    budget_status,
    plan_for_user,
)
from conversations.models import BudgetReservation, Conversation, Message, Plan, UsageRecord, UserPlan
from conversations.services.messages import messages_reap_interrupted
from tests.conftest import Socket, make_user, open_socket

pytestmark = pytest.mark.django_db(transaction=True)


def set_plan(name: str = "free", **fields: Any) -> Plan:
    plan, _ = Plan.objects.update_or_create(name=name, defaults={"label": name.title(), **fields})
    return plan


def ledger_tokens(user: User) -> int:
    total = UsageRecord.objects.filter(user=user, purpose="chat").aggregate(
        tokens=Sum(F("prompt_tokens") + F("completion_tokens"), default=0)
    )
    return int(total["tokens"])


def chat_record(user: User, prompt: int, completion: int) -> UsageRecord:
    return UsageRecord.objects.create(
        user=user, model="offline/parley-mini", prompt_tokens=prompt, completion_tokens=completion
    )


def is_outcome(frame: dict[str, Any]) -> bool:
    """A send ends in an error frame (refused) or the assistant's message.created (admitted)."""
    return frame["type"] == "error" or (frame["type"] == "message.created" and frame["message"]["role"] == "assistant")


def is_done(frame: dict[str, Any]) -> bool:
    return frame["type"] == "done"


# --- reserving under concurrency ----------------------------------------------------------------


def test_simultaneous_reservations_never_overspend(user: User) -> None:
    set_plan(daily_token_limit=3_500, monthly_token_limit=10_000)
    barrier = threading.Barrier(10)
    outcomes: list[str] = []

    def reserve() -> None:
        try:
            barrier.wait(timeout=10)
            budget_reserve(user_id=user.pk, model="m", tokens=1_000)
            outcomes.append("reserved")
        except BudgetExceeded:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=reserve) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["refused"] * 7 + ["reserved"] * 3
    status = budget_status(user_id=user.pk)
    assert (status.day.used, status.day.reserved) == (0, 3_000)
    assert (status.month.used, status.month.reserved) == (0, 3_000)
    assert status.day.remaining == 500

    for reservation in BudgetReservation.objects.filter(user=user):
        assert budget_settle(reservation_id=reservation.pk, record=chat_record(user, 120, 180))
    status = budget_status(user_id=user.pk)
    assert status.day.reserved == status.month.reserved == 0
    assert status.day.used == status.month.used == ledger_tokens(user) == 900


async def test_simultaneous_turns_run_exactly_as_many_as_the_budget_allows(
    user: User, settings: Any, empty_llm_queue: None
) -> None:
    # Replies of up to 4,000 tokens each: three fit in 13,500 whatever the prompt (under 500), four never.
    settings.LLM_MAX_OUTPUT_TOKENS = 4_000
    settings.LLM_CONTEXT_WINDOW = 16_000
    settings.LLM_QUEUE_MAX_CONCURRENCY = 1
    configured_models.cache_clear()
    await sync_to_async(set_plan)(daily_token_limit=13_500, monthly_token_limit=0)
    # The test holds the model's only slot, so no admitted turn can finish (and settle) before
    # all ten have been decided: the ten really compete for the budget.
    held = await llm_queue.slot_acquire(model=default_model().name)
    sockets = [await open_socket(user) for _ in range(10)]
    await asyncio.gather(
        *(
            sock.send({"type": "send", "content": f"question {i}", "client_id": f"c{i}"})
            for i, sock in enumerate(sockets)
        )
    )
    outcomes = [(await sock.receive_until(is_outcome))[-1] for sock in sockets]

    admitted = [(sock, frame) for sock, frame in zip(sockets, outcomes, strict=True) if frame["type"] != "error"]
    refused = [frame for frame in outcomes if frame["type"] == "error"]
    assert len(admitted) == 3
    assert len(refused) == 7
    for frame in refused:
        assert frame["code"] == "budget_exceeded"
        assert frame["retryable"] is False
        assert "daily token budget" in frame["message"]
        assert "13,500" in frame["message"]
        assert "resets at 00:00 UTC, in" in frame["message"]

    status = await sync_to_async(budget_status)(user_id=user.pk)
    assert status.day.used + status.day.reserved <= 13_500
    # A refused turn stores nothing: no conversation, no message.
    assert await sync_to_async(Conversation.objects.filter(owner=user).count)() == 3
    assert await sync_to_async(Message.objects.filter(conversation__owner=user).count)() == 6

    await held.release()
    finals = [(await sock.receive_until(is_done))[-1] for sock, _ in admitted]
    assert [done["status"] for done in finals] == ["complete"] * 3
    for sock in sockets:
        await sock.close()

    status = await sync_to_async(budget_status)(user_id=user.pk)
    assert status.day.reserved == 0
    assert status.day.used == await sync_to_async(ledger_tokens)(user) > 0
    states = await sync_to_async(lambda: sorted(BudgetReservation.objects.values_list("state", flat=True)))()
    assert states == ["settled"] * 3


def test_the_estimate_is_the_prompt_plus_the_longest_reply(settings: Any) -> None:
    settings.LLM_MAX_OUTPUT_TOKENS = 1_000
    configured_models.cache_clear()
    name = default_model().name
    assert budget_estimate(model=name, prompt_tokens=50) == 1_050
    assert budget_estimate(model=name, prompt_tokens=50, max_tokens=200) == 250  # a caller's lower cap
    assert budget_estimate(model=name, prompt_tokens=50, max_tokens=5_000) == 1_050


# --- settling -------------------------------------------------------------------------------------


def test_settling_twice_charges_once(user: User) -> None:
    reservation = budget_reserve(user_id=user.pk, model="m", tokens=2_000)
    record = chat_record(user, 300, 200)

    assert budget_settle(reservation_id=reservation.pk, record=record) is True
    assert budget_settle(reservation_id=reservation.pk, record=record) is False
    assert budget_release(reservation_id=reservation.pk) is False

    status = budget_status(user_id=user.pk)
    assert (status.day.used, status.day.reserved) == (500, 0)
    assert (status.month.used, status.month.reserved) == (500, 0)
    reservation.refresh_from_db()
    assert (reservation.state, reservation.charged, reservation.usage_record_id) == ("settled", 500, record.pk)


def test_a_release_gives_the_hold_back_without_charging(user: User) -> None:
    reservation = budget_reserve(user_id=user.pk, model="m", tokens=2_000)
    assert budget_release(reservation_id=reservation.pk) is True
    status = budget_status(user_id=user.pk)
    assert (status.day.used, status.day.reserved) == (0, 0)


async def test_a_failure_before_the_first_token_costs_nothing(
    socket: Socket, user: User, settings: Any, upstream_model: Any
) -> None:
    settings.LLM_MODELS[0]["extra_headers"] = {"x-fake-status": "400"}
    configured_models.cache_clear()
    await socket.send({"type": "send", "content": "this will be refused upstream"})
    done = (await socket.receive_until(is_done))[-1]

    assert done["status"] == "failed"
    assert done["content"] == ""
    record = await sync_to_async(UsageRecord.objects.get)(user=user)
    assert (record.prompt_tokens, record.completion_tokens, record.ok) == (0, 0, False)
    status = await sync_to_async(budget_status)(user_id=user.pk)
    assert (status.day.used, status.day.reserved, status.month.used, status.month.reserved) == (0, 0, 0, 0)
    reservation = await sync_to_async(BudgetReservation.objects.get)(user=user)
    assert (reservation.state, reservation.charged) == ("settled", 0)


async def test_a_completed_turn_is_charged_what_the_ledger_says(socket: Socket, user: User) -> None:
    await socket.send({"type": "send", "content": "count me"})
    done = (await socket.receive_until(is_done))[-1]
    assert done["status"] == "complete"
    status = await sync_to_async(budget_status)(user_id=user.pk)
    usage = done["usage"]
    assert (
        status.day.used
        == usage["prompt_tokens"] + usage["completion_tokens"]
        == await sync_to_async(ledger_tokens)(user)
    )
    assert status.day.reserved == 0


def test_the_hold_of_a_reply_whose_process_died_is_released(user: User, settings: Any) -> None:
    conversation = Conversation.objects.create(owner=user)
    reply = Message.objects.create(conversation=conversation, role="assistant", status="streaming")
    reservation = budget_reserve(user_id=user.pk, model="m", tokens=1_500, message_id=reply.pk)
    Message.objects.filter(pk=reply.pk).update(updated_at=datetime(2000, 1, 1, tzinfo=UTC))
    assert [m.pk for m in messages_reap_interrupted()] == [reply.pk]

    budget_reserve(user_id=user.pk, model="m", tokens=10)  # the next turn sweeps dead holds first

    reservation.refresh_from_db()
    assert reservation.state == "released"
    assert budget_status(user_id=user.pk).day.reserved == 10


# --- refusals -------------------------------------------------------------------------------------


def test_the_refusal_names_the_budget_its_limit_and_when_it_resets(user: User) -> None:
    set_plan(daily_token_limit=1_000, monthly_token_limit=0)
    evening = datetime(2025, 3, 10, 20, 48, tzinfo=UTC)
    budget_reserve(user_id=user.pk, model="m", tokens=700, now=evening)

    with pytest.raises(BudgetExceeded) as refused:
        budget_reserve(user_id=user.pk, model="m", tokens=400, now=evening)

    assert refused.value.code == "budget_exceeded"
    assert refused.value.period == "day"
    assert refused.value.resets_at == datetime(2025, 3, 11, tzinfo=UTC)
    assert refused.value.message == (
        "You have reached your daily token budget: 700 of 1,000 tokens used, and this message needs up to 400. "
        "Your daily budget resets at 00:00 UTC, in 3 h 12 min."
    )
    assert budget_status(user_id=user.pk, now=evening).day.reserved == 700  # nothing changed


def test_when_both_budgets_are_spent_the_later_reset_is_named(user: User) -> None:
    set_plan(daily_token_limit=1_000, monthly_token_limit=1_000)
    now = datetime(2025, 2, 20, 12, 0, tzinfo=UTC)
    budget_reserve(user_id=user.pk, model="m", tokens=900, now=now)
    with pytest.raises(BudgetExceeded) as refused:
        budget_reserve(user_id=user.pk, model="m", tokens=200, now=now)
    assert refused.value.period == "month"
    assert "monthly budget resets on 1 March at 00:00 UTC, in 9 days" in refused.value.message


def test_a_message_bigger_than_the_whole_budget_says_so(user: User) -> None:
    set_plan(daily_token_limit=1_000, monthly_token_limit=0)
    with pytest.raises(BudgetExceeded) as refused:
        budget_reserve(user_id=user.pk, model="m", tokens=1_500)
    assert "more than your whole daily budget of 1,000" in refused.value.message


async def test_an_over_budget_send_stores_nothing(socket: Socket, user: User) -> None:
    await sync_to_async(set_plan)(daily_token_limit=2_000, monthly_token_limit=0)
    await sync_to_async(budget_reserve)(user_id=user.pk, model="m", tokens=1_500)
    await socket.send({"type": "send", "content": "anything", "client_id": "c-9"})
    error = await socket.receive()
    assert (error["type"], error["code"], error["client_id"]) == ("error", "budget_exceeded", "c-9")
    assert "resets at 00:00 UTC" in error["message"]
    assert await socket.nothing_pending()
    assert await sync_to_async(Conversation.objects.count)() == 0
    assert await sync_to_async(BudgetReservation.objects.count)() == 1  # the one made above


# --- plans and overrides ----------------------------------------------------------------------------


def test_new_users_are_on_the_default_plan(user: User, settings: Any) -> None:
    Plan.objects.all().delete()  # even if an operator deleted it, it comes back at the settings' limits
    settings.BUDGET_FREE_DAILY_TOKENS = 1_234
    plan = plan_for_user(user_id=user.pk)
    assert (plan.name, plan.daily_token_limit) == ("free", 1_234)
    settings.BUDGET_DEFAULT_PLAN = "premium"
    assert plan_for_user(user_id=make_user("newcomer").pk).name == "premium"


def test_a_limit_set_on_the_user_beats_the_plan(user: User, other_user: User) -> None:
    free = set_plan(daily_token_limit=100_000, monthly_token_limit=0)
    UserPlan.objects.create(user=user, plan=free, daily_token_limit=500)
    with pytest.raises(BudgetExceeded):
        budget_reserve(user_id=user.pk, model="m", tokens=1_000)
    budget_reserve(user_id=other_user.pk, model="m", tokens=1_000)  # the plan alone allows it

    tight = set_plan("tight", daily_token_limit=100, monthly_token_limit=100)
    UserPlan.objects.filter(user=user).update(plan=tight, daily_token_limit=5_000, monthly_token_limit=0)
    budget_reserve(user_id=user.pk, model="m", tokens=1_000)
    status = budget_status(user_id=user.pk)
    assert (status.plan.name, status.day.limit, status.month.unlimited) == ("tight", 5_000, True)


# --- the fallback model -----------------------------------------------------------------------------


@pytest.fixture
def two_models(settings: Any) -> None:
    settings.LLM_MODEL = "main"
    settings.LLM_MODELS = [
        {"name": "main", "model": "offline/parley-main"},
        {"name": "cheap", "model": "offline/parley-cheap"},
    ]
    configured_models.cache_clear()


@pytest.mark.parametrize("named_by", ["plan", "setting"])
async def test_over_budget_a_turn_runs_on_the_fallback_model_uncounted(
    socket: Socket, user: User, settings: Any, two_models: None, named_by: str
) -> None:
    if named_by == "plan":
        await sync_to_async(set_plan)(daily_token_limit=10, monthly_token_limit=0, fallback_model="cheap")
    else:
        await sync_to_async(set_plan)(daily_token_limit=10, monthly_token_limit=0, fallback_model="")
        settings.BUDGET_FALLBACK_MODEL = "cheap"
    await socket.send({"type": "send", "content": "still answer me"})
    created = (await socket.receive_until(is_outcome))[-1]
    assert created["type"] == "message.created"
    assert created["message"]["model"] == "cheap"
    done = (await socket.receive_until(is_done))[-1]
    assert done["status"] == "complete"

    reply = await sync_to_async(Message.objects.get)(pk=created["message"]["id"])
    record = await sync_to_async(UsageRecord.objects.get)(message=reply)
    assert reply.model == record.model == "offline/parley-cheap"
    assert record.completion_tokens > 0
    status = await sync_to_async(budget_status)(user_id=user.pk)
    assert (status.day.used, status.day.reserved) == (0, 0)
    assert await sync_to_async(BudgetReservation.objects.count)() == 0


async def test_within_budget_the_main_model_answers(socket: Socket, two_models: None) -> None:
    await sync_to_async(set_plan)(daily_token_limit=100_000, fallback_model="cheap")
    await socket.send({"type": "send", "content": "hello"})
    done = (await socket.receive_until(is_done))[-1]
    reply = await sync_to_async(Message.objects.get)(pk=done["message_id"])
    assert reply.model == "offline/parley-main"
