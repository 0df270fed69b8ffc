"""The usage ledger in the admin: the list with its filters, and the report summed by PostgreSQL."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conversations.models import UsageRecord
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

REPORT = "admin:conversations_usagerecord_report"
CHANGELIST = "admin:conversations_usagerecord_changelist"
TODAY = date(2025, 3, 20)


def at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=timezone.get_current_timezone())


def record(user: User | None, *, day: date, model: str, prompt: int, completion: int, cost: str, **extra: Any) -> Any:
    row = UsageRecord.objects.create(
        user=user, model=model, prompt_tokens=prompt, completion_tokens=completion, cost=Decimal(cost), **extra
    )
    UsageRecord.objects.filter(pk=row.pk).update(created_at=at(day))  # auto_now_add ignores a given value
    row.refresh_from_db()
    return row


@pytest.fixture
def ledger(db: None) -> list[UsageRecord]:
    alice, bob = make_user("alice"), make_user("bob")
    ghost = make_user("ghost")
    rows = [
        record(alice, day=TODAY, model="offline/parley-mini", prompt=100, completion=40, cost="0.0010"),
        record(alice, day=TODAY, model="openai/gpt-4o-mini", prompt=300, completion=90, cost="0.0123"),
        record(
            alice,
            day=TODAY - timedelta(days=1),
            model="offline/parley-mini",
            prompt=50,
            completion=0,
            cost="0",
            purpose=UsageRecord.Purpose.SUMMARY,
        ),
        record(bob, day=TODAY - timedelta(days=1), model="openai/gpt-4o-mini", prompt=700, completion=210, cost="0.05"),
        record(bob, day=TODAY - timedelta(days=2), model="offline/parley-mini", prompt=10, completion=5, cost="0.0001"),
        record(
            ghost, day=TODAY - timedelta(days=2), model="offline/parley-mini", prompt=7, completion=3, cost="0.0002"
        ),
        # Outside the range the tests ask for:
        record(bob, day=TODAY - timedelta(days=40), model="openai/gpt-4o-mini", prompt=9999, completion=1, cost="9"),
    ]
    ghost.delete()  # the ledger keeps the row, without a user
    for row in rows:
        row.refresh_from_db()
    return rows


@pytest.fixture
def staff(db: None) -> Client:
    account = User.objects.create_user(username="ops", password="correct horse battery staple", is_staff=True)
    account.user_permissions.add(Permission.objects.get(codename="view_usagerecord"))
    client = Client()
    client.force_login(account)
    return client


def expected(rows: list[UsageRecord], key: Any) -> dict[Any, tuple[int, int, int, Decimal]]:
    sums: dict[Any, list[Any]] = defaultdict(lambda: [0, 0, 0, Decimal(0)])
    for row in rows:
        entry = sums[key(row)]
        entry[0] += 1
        entry[1] += row.prompt_tokens
        entry[2] += row.completion_tokens
        entry[3] += row.cost
    return {k: (v[0], v[1], v[2], v[3]) for k, v in sums.items()}


def shown(rows: Any) -> dict[str, tuple[int, int, int, Decimal]]:
    return {r.label: (r.calls, r.prompt_tokens, r.completion_tokens, r.cost) for r in rows}


def in_range(rows: list[UsageRecord], start: date, end: date) -> list[UsageRecord]:
    return [r for r in rows if start <= timezone.localtime(r.created_at).date() <= end]


def report(client: Client, **query: str) -> Any:
    response = client.get(reverse(REPORT), query)
    assert response.status_code == 200, response.content.decode()[:2000]
    return response


def test_the_report_sums_match_the_ledger(staff: Client, ledger: list[UsageRecord]) -> None:
    start, end = TODAY - timedelta(days=6), TODAY
    response = report(staff, start=start.isoformat(), end=end.isoformat())
    data = response.context["report"]
    rows = in_range(ledger, start, end)
    assert len(rows) == 6, "the record 40 days back is outside the range"

    def user_label(r: UsageRecord) -> str:
        return r.user.username if r.user else "(deleted account)"

    assert shown(data.by_user) == expected(rows, user_label)
    assert shown(data.by_model) == expected(rows, lambda r: r.model)
    assert shown(data.by_day) == expected(rows, lambda r: timezone.localtime(r.created_at).date().isoformat())
    [total] = expected(rows, lambda r: "all").values()
    assert (data.totals.calls, data.totals.prompt_tokens, data.totals.completion_tokens, data.totals.cost) == total
    assert data.totals.total_tokens == total[1] + total[2]
    assert data.users == 3
    assert data.by_user[0].label == "bob", "highest cost first"
    assert [r.label for r in data.by_day] == sorted(r.label for r in data.by_day)

    html = response.content.decode()
    for testid in ("usage-by-user", "usage-by-model", "usage-by-day"):
        assert f'data-testid="{testid}"' in html
    assert f"<td>{total[1]}</td>" in html, "the totals row shows the prompt tokens of everyone"


def test_the_report_filters_by_purpose(staff: Client, ledger: list[UsageRecord]) -> None:
    data = report(staff, start=(TODAY - timedelta(days=6)).isoformat(), end=TODAY.isoformat(), purpose="summary")
    data = data.context["report"]
    assert shown(data.by_user) == {"alice": (1, 50, 0, Decimal("0"))}
    assert data.totals.calls == 1


def test_the_report_defaults_to_the_last_30_days(staff: Client, ledger: list[UsageRecord]) -> None:
    response = report(staff)
    data = response.context["report"]
    assert data.end == timezone.localdate()
    assert data.start == data.end - timedelta(days=29)
    html = response.content.decode()
    assert f'name="start" value="{data.start.isoformat()}"' in html, "the inputs show the range used"
    assert f'name="end" value="{data.end.isoformat()}"' in html


def test_an_empty_range_reports_zeros(staff: Client, ledger: list[UsageRecord]) -> None:
    data = report(staff, start="2001-01-01", end="2001-01-31").context["report"]
    assert (data.totals.calls, data.totals.prompt_tokens, data.totals.cost) == (0, 0, Decimal(0))
    assert data.by_user == data.by_model == data.by_day == []


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"start": "2025-03-10", "end": "2025-03-01"}, "The start date is after the end date."),
        ({"start": "2020-01-01", "end": "2025-03-01"}, "Pick a range of at most 366 days."),
        ({"start": "yesterday"}, "Enter a valid date."),
        ({"purpose": "mining"}, "Select a valid choice."),
    ],
)
def test_a_bad_range_gets_a_clear_error_and_no_report(staff: Client, query: dict[str, str], error: str) -> None:
    response = staff.get(reverse(REPORT), query)
    assert response.status_code == 400
    assert response.context["report"] is None
    assert error in response.content.decode()


def test_every_report_row_links_to_its_ledger_entries(staff: Client, ledger: list[UsageRecord]) -> None:
    data = report(staff, start=(TODAY - timedelta(days=6)).isoformat(), end=TODAY.isoformat()).context["report"]
    for row in [*data.by_user, *data.by_model, *data.by_day, data.totals]:
        url = urlsplit(row.link)
        changelist = staff.get(url.path + "?" + url.query)
        assert changelist.status_code == 200, row.link
        assert changelist.context["cl"].result_count == row.calls, row.label


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ({"purpose__exact": "summary"}, 1),
        ({"model__exact": "openai/gpt-4o-mini"}, 3),
        ({"ok__exact": "1"}, 7),
        ({"created_at__gte": str(at(TODAY, 0)), "created_at__lt": str(at(TODAY + timedelta(days=1), 0))}, 2),
    ],
)
def test_the_ledger_list_filters(staff: Client, ledger: list[UsageRecord], query: dict[str, str], count: int) -> None:
    response = staff.get(reverse(CHANGELIST), query)
    assert response.status_code == 200
    assert response.context["cl"].result_count == count


def test_the_ledger_list_filters_by_user_from_the_user_column(staff: Client, ledger: list[UsageRecord]) -> None:
    bob = User.objects.get(username="bob")
    page = staff.get(reverse(CHANGELIST)).content.decode()
    by_bob = f"{reverse(CHANGELIST)}?user={bob.pk}"
    assert f'href="{by_bob}"' in page
    filtered = staff.get(by_bob)
    assert filtered.context["cl"].result_count == 3
    assert staff.get(reverse(CHANGELIST), {"user": "bob"}).context["cl"].result_count == 0, "ids only"


def test_the_ledger_list_costs_the_same_queries_for_more_rows(
    staff: Client, ledger: list[UsageRecord], django_assert_max_num_queries: Any
) -> None:
    staff.get(reverse(CHANGELIST))  # warm caches (content types, sessions)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        staff.get(reverse(CHANGELIST))
    carol = make_user("carol")
    for n in range(20):
        record(carol, day=TODAY, model=f"m{n}", prompt=1, completion=1, cost="0")
    with django_assert_max_num_queries(len(few.captured_queries)):
        staff.get(reverse(CHANGELIST))


def test_the_ledger_cannot_be_edited_in_the_admin(staff: Client, ledger: list[UsageRecord]) -> None:
    admin = User.objects.create_superuser(username="root", password="correct horse battery staple")
    client = Client()
    client.force_login(admin)
    row = ledger[0]
    url = reverse("admin:conversations_usagerecord_change", args=[row.pk])
    client.post(url, {"prompt_tokens": 1})
    row.refresh_from_db()
    assert row.prompt_tokens == 100
    assert client.get(reverse("admin:conversations_usagerecord_add")).status_code == 403


def test_the_report_needs_the_view_permission(ledger: list[UsageRecord]) -> None:
    plain_staff = User.objects.create_user(username="intern", password="correct horse battery staple", is_staff=True)
    client = Client()
    client.force_login(plain_staff)
    assert client.get(reverse(REPORT)).status_code == 403
    client.force_login(User.objects.get(username="alice"))  # not staff at all
    response = client.get(reverse(REPORT))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_the_admin_index_and_the_ledger_link_the_report(staff: Client) -> None:
    for page in (staff.get(reverse("admin:index")), staff.get(reverse(CHANGELIST))):
        html = page.content.decode()
        assert reverse(REPORT) in html
        assert reverse("admin:conversations_usagerecord_rate_limits") in html
