"""Downloading all of one's data, and deleting the account: one transaction, nothing left behind."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models.functions import Cast
from django.test import Client
from django.utils import timezone

from conversations.models import (
    ApiKey,
    BudgetCounter,
    BudgetReservation,
    Conversation,
    Message,
    Plan,
    UsageRecord,
    UserPlan,
)
from conversations.services import erasure
from conversations.services.api_keys import api_key_create
from memory.models import ConversationSummary, MemoryProfile, UserFact
from moderation.models import Flag, ModerationDecision, Suspension
from tests.conftest import make_user
from tests.factories import conversation_with_turns

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
MARK = "Zebra7319"  # planted in everything the person wrote or the product learned about them
USERNAME = "zebra7319-person"
# What the operator keeps on purpose: a flag's excerpt, masked when it was written.
KEPT_ON_PURPOSE = {("moderation.flag", "excerpt")}


def plant_everything(person: User, moderator: User) -> dict[str, Any]:
    """A person who used every part of the product, with the marker in all they left."""
    conversation, messages = conversation_with_turns(
        person, [(f"{MARK} my question", f"{MARK} the answer"), (f"{MARK} again", f"{MARK} more")], title=f"{MARK} chat"
    )
    # A second branch: a regenerated reply beside the first answer.
    sibling = Message.objects.create(
        conversation=conversation, parent=messages[0], role="assistant", content=f"{MARK} another take"
    )
    Message.objects.filter(pk=messages[1].pk).update(
        redacted_content=f"{MARK} redacted", context_report={"note": MARK}, embedding=[0.1] * 384
    )
    temporary, _ = conversation_with_turns(person, [(f"{MARK} secret", "ok")], title=f"{MARK} temp", temporary=True)
    ConversationSummary.objects.create(conversation=conversation, through_message=messages[1], text=f"{MARK} summary")
    UserFact.objects.create(user=person, text=f"{MARK} lives in Lisbon", key="location", source_message=messages[0])
    MemoryProfile.objects.create(user=person, enabled=False)
    key, secret = api_key_create(user=person, name=f"{MARK} laptop")
    plan = Plan.objects.get_or_create(name="free", defaults={"label": "Free"})[0]
    UserPlan.objects.create(user=person, plan=plan, daily_token_limit=5)
    now = timezone.now()
    BudgetCounter.objects.create(user=person, period="day", starts_at=now, used=10)
    record = UsageRecord.objects.create(
        user=person, conversation=conversation, message=messages[1], model="offline/parley-mini",
        prompt_tokens=11, completion_tokens=22, cost=Decimal("0.25"),
    )  # fmt: skip
    BudgetReservation.objects.create(
        user=person, message=messages[1], model="m", tokens=5, day_starts_at=now, month_starts_at=now,
        usage_record=record,
    )  # fmt: skip
    flag = Flag.objects.create(
        user=person, conversation=conversation, message=messages[0], direction="input", category="pii",
        action="redacted", excerpt=f"{MARK} ***", reason="email address",
    )  # fmt: skip
    report = Flag.objects.create(
        user=person, reporter=person, conversation=conversation, message=messages[1], direction="report",
        category="user_report", action="flagged", excerpt="*** reply", reason=f"{MARK} this is wrong",
    )  # fmt: skip
    ModerationDecision.objects.create(flag=flag, subject_user=person, reviewer=moderator, kind="confirm", note="ok")
    Suspension.objects.create(user=person, reason="spam", created_by=moderator)
    LogEntry.objects.create(
        user=moderator, content_type=ContentType.objects.get_for_model(User), object_id=str(person.pk),
        object_repr=USERNAME, action_flag=CHANGE, change_message=f"Changed {USERNAME}",
    )  # fmt: skip
    share = _share_model()
    if share is not None:
        share._default_manager.create(
            conversation=conversation, owner=person, token=secrets.token_urlsafe(32), title=f"{MARK} shared",
            snapshot=[{"role": "user", "content": f"{MARK} shared"}],
        )  # fmt: skip
    return {
        "conversation": conversation,
        "temporary": temporary,
        "messages": messages,
        "sibling": sibling,
        "key": key,
        "secret": secret,
        "record": record,
        "flag": flag,
        "report": report,
    }


def _share_model() -> type[models.Model] | None:
    try:
        return apps.get_model("conversations", "SharedConversation")
    except LookupError:
        return None


@pytest.fixture
def person(db: None) -> User:
    return User.objects.create_user(username=USERNAME, password=PASSWORD, email=f"{MARK}@example.org")


@pytest.fixture
def moderator(db: None) -> User:
    return make_user("moderator")


@pytest.fixture
def planted(person: User, moderator: User) -> dict[str, Any]:
    return plant_everything(person, moderator)


@pytest.fixture
def bystander(db: None) -> Iterator[User]:
    """Someone else, whose rows must survive the person's deletion untouched."""
    other = make_user("bystander")
    conversation_with_turns(other, [("bystander question", "bystander answer")], title="bystander chat")
    UserFact.objects.create(user=other, text="bystander fact")
    UsageRecord.objects.create(user=other, model="m", prompt_tokens=1)
    yield other


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- download ------------------------------------------------------------------------------------


def test_the_download_holds_everything_of_the_person_and_nothing_of_others(
    person: User, planted: dict[str, Any], bystander: User
) -> None:
    response = signed_in(person).get("/settings/account/export/")

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="parley-data-')
    body = response.content.decode()
    data = json.loads(body)
    assert data["format"] == "parley-account-export" and data["version"] == 1
    assert data["profile"]["username"] == USERNAME and data["profile"]["email"] == f"{MARK}@example.org"
    chats = {c["title"]: c for c in data["conversations"]}
    assert set(chats) == {f"{MARK} chat", f"{MARK} temp"}
    tree = chats[f"{MARK} chat"]["messages"]
    expected_ids = [m.pk for m in planted["messages"]] + [planted["sibling"].pk]
    assert sorted(m["id"] for m in tree) == sorted(expected_ids), "every branch, not only the active one"
    sibling = next(m for m in tree if m["id"] == planted["sibling"].pk)
    assert sibling["parent_id"] == planted["messages"][0].pk and sibling["content"] == f"{MARK} another take"
    assert chats[f"{MARK} chat"]["active_leaf_id"] == planted["messages"][-1].pk
    assert chats[f"{MARK} temp"]["temporary"] is True
    assert data["memory"]["enabled"] is False
    assert [f["text"] for f in data["memory"]["facts"]] == [f"{MARK} lives in Lisbon"]
    assert data["memory"]["facts"][0]["source_conversation_id"] == str(planted["conversation"].pk)
    assert data["api_keys"] == [
        {
            "name": f"{MARK} laptop",
            "prefix": planted["key"].prefix,
            "created_at": planted["key"].created_at.isoformat(),
            "last_used_at": None,
            "revoked_at": None,
        }
    ]
    assert planted["secret"] not in body and planted["key"].hashed_secret not in body, "never a secret"
    [usage] = data["usage"]["by_month_and_model"]
    assert (usage["model"], usage["calls"], usage["prompt_tokens"], usage["completion_tokens"]) == (
        "offline/parley-mini",
        1,
        11,
        22,
    )
    assert Decimal(usage["cost"]) == Decimal("0.25")
    assert [r["reason"] for r in data["reports"]] == [f"{MARK} this is wrong"]
    if _share_model() is not None:
        assert [s["title"] for s in data["shares"]] == [f"{MARK} shared"]
    assert "bystander" not in body


def test_the_download_needs_a_login(planted: dict[str, Any]) -> None:
    response = Client().get("/settings/account/export/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


# --- deletion ------------------------------------------------------------------------------------


def _user_foreign_keys() -> Iterator[tuple[type[models.Model], models.ForeignKey[Any, Any]]]:
    for model in apps.get_models(include_auto_created=True):
        for field in model._meta.concrete_fields:
            if isinstance(field, models.ForeignKey) and field.related_model is User:
                yield model, field


def _text_fields(model: type[models.Model]) -> Iterator[models.Field[Any, Any]]:
    for field in model._meta.concrete_fields:
        if isinstance(field, (models.CharField, models.TextField, models.JSONField)) and not field.is_relation:
            yield field


def rows_containing(needle: str) -> list[tuple[str, str, int]]:
    """(model, field, rows) for every text or JSON column of every table that contains needle."""
    found = []
    for model in apps.get_models(include_auto_created=True):
        if model._meta.proxy or not model._meta.managed:
            continue
        for field in _text_fields(model):
            label = (model._meta.label_lower, field.name)
            if label in KEPT_ON_PURPOSE:
                continue
            rows = model._default_manager.annotate(_as_text=Cast(field.name, models.TextField()))
            count = rows.filter(_as_text__icontains=needle).count()
            if count:
                found.append((*label, count))
    return found


def test_the_scan_sees_what_it_must_find(planted: dict[str, Any]) -> None:
    """The all-tables check below is only worth something if it finds the planted rows first."""
    found = {(model, field) for model, field, _ in rows_containing(MARK)}
    for expected in (
        ("conversations.conversation", "title"),
        ("conversations.message", "content"),
        ("conversations.message", "redacted_content"),
        ("conversations.message", "context_report"),
        ("conversations.apikey", "name"),
        ("memory.conversationsummary", "text"),
        ("memory.userfact", "text"),
        ("moderation.flag", "reason"),
        ("auth.user", "email"),
    ):
        assert expected in found
    assert ("admin.logentry", "object_repr") in {(m, f) for m, f, _ in rows_containing(USERNAME)}
    assert any(field.model is Flag and field.name == "user" for _, field in _user_foreign_keys())


def test_deleting_the_account_leaves_no_row_of_the_person_behind(
    person: User, planted: dict[str, Any], bystander: User
) -> None:
    user_id = person.pk
    conversation_ids = [planted["conversation"].pk, planted["temporary"].pk]
    client = signed_in(person)

    response = client.post("/settings/account/delete/", {"password": PASSWORD})

    assert response.status_code == 200 and b'data-testid="account-deleted"' in response.content
    assert not User.objects.filter(pk=user_id).exists()
    # No foreign key in any table still names the person.
    for model, field in _user_foreign_keys():
        assert not model._default_manager.filter(**{field.attname: user_id}).exists(), f"{model.__name__}.{field.name}"
    # No text or JSON column of any table holds what they wrote, their name or their chats' ids.
    assert rows_containing(MARK) == []
    assert rows_containing(USERNAME) == []
    for conversation_id in conversation_ids:
        assert rows_containing(str(conversation_id)) == []
    assert not Message.objects.filter(conversation_id__in=conversation_ids).exists()
    # What the operator keeps, kept without the person.
    record = UsageRecord.objects.get(pk=planted["record"].pk)
    assert (record.user_id, record.conversation_id, record.message_id) == (None, None, None)
    assert (record.model, record.prompt_tokens, record.completion_tokens, record.cost) == (
        "offline/parley-mini",
        11,
        22,
        Decimal("0.25"),
    )
    flag = Flag.objects.get(pk=planted["flag"].pk)
    assert (flag.user_id, flag.message_id, flag.category, flag.excerpt) == (None, None, "pii", f"{MARK} ***")
    report = Flag.objects.get(pk=planted["report"].pk)
    assert report.reporter_id is None and report.reason == erasure.REPORT_REASON_ERASED
    decision = ModerationDecision.objects.get()
    assert decision.subject_user_id is None and decision.flag_id == flag.pk
    assert LogEntry.objects.get().object_repr == erasure.LOG_REPR_ERASED
    # Others are untouched, and the person is signed out.
    assert Conversation.objects.filter(owner=bystander).count() == 1
    assert UserFact.objects.filter(user=bystander).count() == 1
    assert UsageRecord.objects.filter(user=bystander).count() == 1
    assert client.get("/").status_code == 302


def test_a_failure_midway_rolls_everything_back(
    person: User, planted: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(user: User, result: erasure.ErasureResult) -> None:
        raise RuntimeError("the disk filled up")

    steps = list(erasure.ERASURE_STEPS)
    # After the ledger and flags are anonymised and the conversations deleted, before the rest.
    middle = steps.index(erasure._delete_conversations) + 1
    monkeypatch.setattr(erasure, "ERASURE_STEPS", [*steps[:middle], explode, *steps[middle:]])
    before = snapshot(person)

    with pytest.raises(RuntimeError, match="disk filled up"):
        erasure.account_delete(user=User.objects.get(pk=person.pk), password=PASSWORD)

    assert snapshot(person) == before
    assert before["conversations"] == 2 and before["usage_linked"] == 1 and before["flags_linked"] == 2


def snapshot(person: User) -> dict[str, int]:
    return {
        "user": User.objects.filter(pk=person.pk).count(),
        "conversations": Conversation.objects.filter(owner=person).count(),
        "messages": Message.objects.filter(conversation__owner=person).count(),
        "facts": UserFact.objects.filter(user=person).count(),
        "keys": ApiKey.objects.filter(user=person).count(),
        "usage_linked": UsageRecord.objects.filter(user=person, message__isnull=False).count(),
        "flags_linked": Flag.objects.filter(user=person).count(),
        "reports_with_words": Flag.objects.filter(reporter=person, reason__contains=MARK).count(),
        "decisions": ModerationDecision.objects.filter(subject_user=person).count(),
        "counters": BudgetCounter.objects.filter(user=person).count(),
        "plans": UserPlan.objects.filter(user=person).count(),
    }


@pytest.mark.parametrize("password", ["", "wrong password", None])
def test_a_wrong_password_deletes_nothing(person: User, planted: dict[str, Any], password: str | None) -> None:
    client = signed_in(person)
    before = snapshot(person)
    data = {} if password is None else {"password": password}

    response = client.post("/settings/account/delete/", data)

    assert response.status_code == 400
    assert "That is not your password. Nothing was deleted." in response.content.decode()
    assert snapshot(person) == before
    assert client.get("/").status_code == 200, "still signed in"


def test_deletion_needs_a_post(person: User) -> None:
    assert signed_in(person).get("/settings/account/delete/").status_code == 405
    assert User.objects.filter(pk=person.pk).exists()


def test_the_account_page_counts_what_is_held(person: User, planted: dict[str, Any]) -> None:
    response = signed_in(person).get("/settings/account/")
    assert response.status_code == 200
    assert response.context["held"] == {"conversations": 2, "messages": 7, "facts": 1, "api_keys": 1}


def test_a_reply_streaming_while_the_account_goes_finalizes_quietly(person: User, planted: dict[str, Any]) -> None:
    """A generation that ends after the deletion must not resurrect a ledger row for the person."""
    from conversations.services.messages import Outcome, message_finalize

    streaming = Message.objects.create(
        conversation=planted["conversation"], parent=planted["messages"][-1], role="assistant", status="streaming"
    )
    erasure.account_delete(user=person, password=PASSWORD)
    outcome = Outcome(
        status="complete", content="late", seq=1, model="m", prompt_tokens=1, completion_tokens=1, cost=0.0,
        ttft_ms=1, duration_ms=5,
    )  # fmt: skip
    assert message_finalize(message_id=streaming.pk, user_id=person.pk, outcome=outcome) is None
    assert not UsageRecord.objects.filter(model="m", prompt_tokens=1, completion_tokens=1).exists()
