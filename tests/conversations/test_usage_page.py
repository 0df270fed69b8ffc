"""The user's own usage page: tokens and cost per day and per model, and what is left of the budget."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from conversations.limits.budgets import budget_reserve, budget_settle
from conversations.models import Plan, UsageRecord

pytestmark = pytest.mark.django_db


def record(
    user: User, *, days_ago: int, model: str, prompt: int, completion: int, cost: str, purpose: str = "chat"
) -> UsageRecord:
    row = UsageRecord.objects.create(
        user=user,
        model=model,
        purpose=purpose,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost=Decimal(cost),
    )
    UsageRecord.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    return row


def text_of(html: str, testid: str) -> str:
    match = re.search(rf'data-testid="{testid}"[^>]*>([^<]*)<', html)
    assert match, f"no {testid} on the page"
    return match.group(1).strip()


def test_the_page_needs_a_login(client: Client) -> None:
    response = client.get("/usage/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_shows_usage_per_day_and_model_and_the_budget_left(client: Client, user: User, other_user: User) -> None:
    Plan.objects.update_or_create(
        name="free", defaults={"label": "Free", "daily_token_limit": 10_000, "monthly_token_limit": 200_000}
    )
    today = budget_reserve(user_id=user.pk, model="fast", tokens=3_000)
    budget_settle(
        reservation_id=today.pk,
        record=record(user, days_ago=0, model="openai/fast", prompt=1_200, completion=800, cost="0.0021"),
    )
    record(user, days_ago=0, model="openai/fast", prompt=90, completion=10, cost="0.0001", purpose="summary")
    record(user, days_ago=3, model="openai/smart", prompt=500, completion=500, cost="0.0300")
    record(user, days_ago=45, model="openai/smart", prompt=9_999, completion=1, cost="9")  # outside 30 days
    record(other_user, days_ago=0, model="openai/other", prompt=7_000, completion=7_000, cost="5")  # not theirs
    budget_reserve(user_id=user.pk, model="fast", tokens=1_500)  # a reply being written right now
    client.force_login(user)

    response = client.get("/usage/")

    assert response.status_code == 200
    html = response.content.decode()
    assert text_of(html, "plan") == "Free"
    assert text_of(html, "used-day") == "2,000"
    assert text_of(html, "limit-day") == "10,000"
    assert text_of(html, "remaining-day") == "6,500"  # 10,000 - 2,000 used - 1,500 held
    assert text_of(html, "remaining-month") == "196,500"
    assert text_of(html, "reset-day").startswith("Budget resets at 00:00 UTC, in ")
    assert "Budget resets on 1 " in text_of(html, "reset-month")

    assert html.count('data-testid="usage-day"') == 2
    assert text_of(html, "total-tokens") == "3,100 tokens"
    assert text_of(html, "total-cost") == "$0.0322"
    models = re.findall(r'data-testid="usage-model">\s*<th scope="row"><code>([^<]+)</code>', html)
    assert models == ["openai/fast", "openai/smart"]
    assert "openai/other" not in html


def test_a_new_user_sees_an_empty_page_with_the_whole_budget(client: Client, user: User) -> None:
    Plan.objects.update_or_create(name="free", defaults={"daily_token_limit": 5_000, "monthly_token_limit": 0})
    client.force_login(user)
    html = client.get("/usage/").content.decode()
    assert text_of(html, "remaining-day") == "5,000"
    assert 'data-testid="usage-empty"' in html
    assert "Unlimited" in html  # the month


def test_the_chat_page_links_to_it(client: Client, user: User) -> None:
    client.force_login(user)
    html = client.get("/").content.decode()
    assert 'href="/usage/"' in html
