"""A person's own data: download all of it, or delete the account with it (docs/operations.md).

Deleting an account removes everything that holds what the person wrote or what the product
learned about them, and anonymises what the operator must keep: ledger rows keep model, tokens,
cost and date; moderation flags keep their masked excerpt, category and decisions. Everything
happens in one transaction: a failure anywhere leaves the account exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Count, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from conversations.models import ApiKey, BudgetCounter, BudgetReservation, Conversation, Message, UsageRecord, UserPlan
from memory.models import MemoryProfile, UserFact
from moderation.models import Flag, ModerationDecision

if TYPE_CHECKING:
    from django.contrib.auth.models import User

EXPORT_FORMAT = "parley-account-export"
EXPORT_VERSION = 1
# What a moderator reads in place of the words of a reporter who deleted their account.
REPORT_REASON_ERASED = "[the reporter deleted their account]"
LOG_REPR_ERASED = "[deleted account]"


class ErasureRefused(Exception):
    """An account deletion the product refuses, with words a person can read."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- download ------------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _profile(user: User) -> dict[str, Any]:
    return {
        "id": user.pk,
        "username": user.get_username(),
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "date_joined": _iso(user.date_joined),
        "last_login": _iso(user.last_login),
    }


def _message(message: Message) -> dict[str, Any]:
    return {
        "id": message.pk,
        "parent_id": message.parent_id,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "model": message.model,
        "prompt_tokens": message.prompt_tokens,
        "completion_tokens": message.completion_tokens,
        "error": message.error_message or None,
        "created_at": _iso(message.created_at),
    }


def _conversations(user: User) -> Iterator[dict[str, Any]]:
    """Every stored conversation, archived, temporary or deleted-but-not-yet-purged too: the
    person is owed all of it. Messages are the whole tree (every branch), oldest first."""
    for conversation in Conversation.objects.filter(owner=user).order_by("created_at"):
        messages = Message.objects.filter(conversation=conversation).defer("embedding").order_by("created_at", "id")
        yield {
            "id": str(conversation.pk),
            "title": conversation.title,
            "created_at": _iso(conversation.created_at),
            "updated_at": _iso(conversation.updated_at),
            "pinned": conversation.pinned,
            "archived": conversation.archived,
            "temporary": conversation.temporary,
            "deleted_at": _iso(conversation.deleted_at),
            "active_leaf_id": conversation.active_leaf_id,
            "messages": [_message(m) for m in messages.iterator(chunk_size=500)],
        }


def _facts(user: User) -> list[dict[str, Any]]:
    facts = UserFact.objects.filter(user=user).select_related("source_message").defer("embedding")
    return [
        {
            "text": fact.text,
            "key": fact.key,
            "status": fact.status,
            "confidence": fact.confidence,
            "edited_by_you": fact.edited_by_user,
            "source_conversation_id": str(fact.source_message.conversation_id) if fact.source_message else None,
            "source_message_id": fact.source_message_id,
            "created_at": _iso(fact.created_at),
            "updated_at": _iso(fact.updated_at),
        }
        for fact in facts.defer("source_message__embedding")
    ]


def _memory_settings(user: User) -> dict[str, Any]:
    enabled = MemoryProfile.objects.filter(user=user).values_list("enabled", flat=True).first()
    return {"enabled": True if enabled is None else enabled}


def _api_keys(user: User) -> list[dict[str, Any]]:
    """Names and visible prefixes only: the stored hash of a secret is never handed out."""
    return [
        {
            "name": key.name,
            "prefix": key.prefix,
            "created_at": _iso(key.created_at),
            "last_used_at": _iso(key.last_used_at),
            "revoked_at": _iso(key.revoked_at),
        }
        for key in ApiKey.objects.filter(user=user).only("name", "prefix", "created_at", "last_used_at", "revoked_at")
    ]


def _usage(user: User) -> dict[str, Any]:
    """The ledger summed per month and model: what was used and what it cost, not each call."""
    rows = (
        UsageRecord.objects.filter(user=user)
        .annotate(month=TruncMonth("created_at"))
        .values("month", "model", "purpose")
        .annotate(
            calls=Count("id"),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            cost=Sum("cost"),
        )
        .order_by("month", "model", "purpose")
    )
    return {
        "by_month_and_model": [
            {
                "month": row["month"].strftime("%Y-%m"),
                "model": row["model"],
                "purpose": row["purpose"],
                "calls": row["calls"],
                "prompt_tokens": row["prompt_tokens"] or 0,
                "completion_tokens": row["completion_tokens"] or 0,
                "cost": str(row["cost"] or Decimal("0")),
            }
            for row in rows
        ]
    }


def _reports(user: User) -> list[dict[str, Any]]:
    """Replies the person reported, in their words."""
    reports = Flag.objects.filter(reporter=user, direction=Flag.Direction.REPORT).order_by("created_at")
    return [
        {
            "conversation_id": str(flag.conversation_id) if flag.conversation_id else None,
            "message_id": flag.message_id,
            "reason": flag.reason,
            "review_status": flag.review_status,
            "created_at": _iso(flag.created_at),
        }
        for flag in reports
    ]


def _shares(user: User) -> list[dict[str, Any]]:
    """Share links, when the product has them (looked up by name: sharing is its own feature)."""
    try:
        shares = apps.get_model("conversations", "SharedConversation")
    except LookupError:
        return []
    return [
        {
            "conversation_id": str(share.conversation_id),
            "title": share.title,
            "created_at": _iso(share.created_at),
            "revoked_at": _iso(share.revoked_at),
        }
        for share in shares._default_manager.filter(owner=user).order_by("created_at")
    ]


def _attachments(user: User) -> list[dict[str, Any]]:
    """What is known of each uploaded image (when the product has them); the images themselves
    are opened from their messages, not packed into this document."""
    try:
        attachments = apps.get_model("conversations", "Attachment")
    except LookupError:
        return []
    return [
        {
            "id": str(item.pk),
            "message_id": item.message_id,
            "content_type": item.content_type,
            "width": item.width,
            "height": item.height,
            "bytes": item.bytes,
            "created_at": _iso(item.created_at),
        }
        for item in attachments._default_manager.filter(owner=user).order_by("created_at")
    ]


def account_data_export(*, user: User) -> dict[str, Any]:
    """Everything the product holds about a person, as one JSON-ready document: profile,
    conversations with every message of every branch, memory (facts and its switch), API key
    names (never secrets), share links, uploaded images (what they are, not their bytes), reports
    made, and usage per month and model."""
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": _iso(timezone.now()),
        "profile": _profile(user),
        "memory": {**_memory_settings(user), "facts": _facts(user)},
        "conversations": list(_conversations(user)),
        "api_keys": _api_keys(user),
        "shares": _shares(user),
        "images": _attachments(user),
        "reports": _reports(user),
        "usage": _usage(user),
    }


# --- deletion ------------------------------------------------------------------------------------


@dataclass
class ErasureResult:
    """Rows removed or anonymised, per kind: what the confirmation page and the log report."""

    counts: dict[str, int] = field(default_factory=dict)


def _anonymise_ledger(user: User, result: ErasureResult) -> None:
    # Tokens, cost, model and date stay for the operator's accounts; nothing says whose they were.
    result.counts["usage_records_anonymised"] = UsageRecord.objects.filter(user=user).update(
        user=None, conversation=None, message=None
    )


def _anonymise_moderation(user: User, result: ErasureResult) -> None:
    # A report's reason is the reporter's own words; the excerpt is masked text the operator keeps.
    Flag.objects.filter(reporter=user, direction=Flag.Direction.REPORT).update(reason=REPORT_REASON_ERASED)
    flagged = Flag.objects.filter(user=user).update(user=None)
    reported = Flag.objects.filter(reporter=user).update(reporter=None)
    Flag.objects.filter(reviewer=user).update(reviewer=None)
    decided = ModerationDecision.objects.filter(subject_user=user).update(subject_user=None)
    ModerationDecision.objects.filter(reviewer=user).update(reviewer=None)
    result.counts["flags_anonymised"] = flagged + reported
    result.counts["decisions_anonymised"] = decided


def _delete_conversations(user: User, result: ErasureResult) -> None:
    # Messages, their embeddings, summaries and share links go with their conversations.
    result.counts["messages_deleted"] = Message.objects.filter(conversation__owner=user).count()
    _, by_model = Conversation.objects.filter(owner=user).delete()
    result.counts["conversations_deleted"] = by_model.get(Conversation._meta.label, 0)


def _delete_memory(user: User, result: ErasureResult) -> None:
    result.counts["facts_deleted"], _ = UserFact.objects.filter(user=user).delete()
    MemoryProfile.objects.filter(user=user).delete()


def _delete_access(user: User, result: ErasureResult) -> None:
    result.counts["api_keys_deleted"], _ = ApiKey.objects.filter(user=user).delete()


def _delete_budgets(user: User, result: ErasureResult) -> None:
    UserPlan.objects.filter(user=user).delete()
    BudgetReservation.objects.filter(user=user).delete()
    BudgetCounter.objects.filter(user=user).delete()


def _anonymise_admin_log(user: User, result: ErasureResult) -> None:
    # The admin's history of changes to this account names it; the entries stay, the name goes.
    about_user = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(get_user_model()), object_id=str(user.pk)
    )
    result.counts["admin_log_anonymised"] = about_user.update(object_repr=LOG_REPR_ERASED, change_message="")


def _delete_user(user: User, result: ErasureResult) -> None:
    # Whatever else points at the account (suspensions, group memberships) cascades with it.
    user.delete()


# In order: anonymise what stays before deleting what it points at, the account last.
ERASURE_STEPS: list[Callable[[User, ErasureResult], None]] = [
    _anonymise_ledger,
    _anonymise_moderation,
    _delete_conversations,
    _delete_memory,
    _delete_access,
    _delete_budgets,
    _anonymise_admin_log,
    _delete_user,
]


def account_delete(*, user: User, password: object) -> ErasureResult:
    """Delete a person's account and everything of theirs, confirmed with their password.

    One transaction: every step commits together or none does. A wrong password changes nothing.
    The caller logs the person out (their session row names an account that no longer exists).
    """
    if not isinstance(password, str) or not password or not user.check_password(password):
        raise ErasureRefused("wrong_password", "That is not your password. Nothing was deleted.")
    result = ErasureResult()
    with transaction.atomic():
        # Lock the account so a second request (another tab) waits and then finds nothing.
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        for step in ERASURE_STEPS:
            step(user, result)
    return result
