"""Writes for moderation: flags from verdicts and reports, moderator decisions, suspensions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from conversations.models import Message
from moderation.detectors.base import Action, Span
from moderation.models import Flag, ModerationDecision, Suspension
from moderation.pipeline import Stage, Verdict, personal_data_spans

if TYPE_CHECKING:
    from django.contrib.auth.models import User

EXCERPT_CHARS = 2000
REMOVED_TEXT = "[This message was removed by a moderator.]"

_ACTION_TAKEN = {
    Action.FLAG: Flag.ActionTaken.FLAGGED,
    Action.REDACT: Flag.ActionTaken.REDACTED,
    Action.BLOCK: Flag.ActionTaken.BLOCKED,
    Action.ALLOW: Flag.ActionTaken.ALLOWED,
}


class ModerationError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def mask_spans(text: str, spans: Sequence[Span]) -> str:
    """Hide personal data from moderators while keeping its shape: `j***@e***.com`-like."""
    for span in sorted(spans, key=lambda s: s.start, reverse=True):
        value = text[span.start : span.end]
        keep = 1 if len(value) > 4 else 0
        hidden = value[:keep] + "".join("*" if ch.isalnum() else ch for ch in value[keep:])
        text = text[: span.start] + hidden + text[span.end :]
    return text


def excerpt_of(text: str, pii_spans: Sequence[Span]) -> str:
    return mask_spans(text, pii_spans)[:EXCERPT_CHARS]


def _pii_spans(verdict: Verdict) -> list[Span]:
    return [span for hit in verdict.hits if hit.finding.category.startswith("pii") for span in hit.finding.spans]


def flags_record(
    *, verdict: Verdict, user_id: int | None, conversation_id: str | UUID | None = None, message_id: int | None = None
) -> list[Flag]:
    """One flag per non-allow finding of a verdict, with the text masked for reviewers."""
    hits = verdict.reportable
    if not hits:
        return []
    excerpt = excerpt_of(verdict.original, _pii_spans(verdict))
    direction = Flag.Direction.INPUT if verdict.stage is Stage.INPUT else Flag.Direction.OUTPUT
    return Flag.objects.bulk_create(
        [
            Flag(
                message_id=message_id,
                conversation_id=conversation_id,
                user_id=user_id,
                direction=direction,
                detector=hit.detector,
                category=hit.finding.category,
                score=hit.finding.score,
                action=_ACTION_TAKEN[hit.action],
                excerpt=excerpt,
                reason=hit.finding.detail,
                latency_ms=verdict.latency_ms.get(hit.detector),
            )
            for hit in hits
        ]
    )


def report_create(*, reporter: User, message: Message, reason: str) -> Flag:
    """A user's report of a reply: it enters the queue like any flag."""
    cleaned = " ".join(reason.split())[:1000]
    if not cleaned:
        raise ModerationError("empty_reason", "Say briefly what is wrong with this reply.")
    if message.role != Message.Role.ASSISTANT:
        raise ModerationError("not_a_reply", "Only the assistant's replies can be reported.")
    if message.status == Message.Status.STREAMING:
        raise ModerationError("still_streaming", "Wait until the reply is finished to report it.")
    already = Flag.objects.filter(
        message=message, reporter=reporter, direction=Flag.Direction.REPORT, review_status=Flag.Review.OPEN
    ).first()
    if already is not None:
        return already  # one open report per person and reply: reporting twice adds nothing
    return Flag.objects.create(
        message=message,
        conversation_id=message.conversation_id,
        user=reporter,
        reporter=reporter,
        direction=Flag.Direction.REPORT,
        detector="user_report",
        category="user_report",
        action=Flag.ActionTaken.FLAGGED,
        excerpt=excerpt_of(message.content, personal_data_spans(message.content)),
        reason=cleaned,
    )


def _decide(flag: Flag, reviewer: User, status: str, kind: str, note: str) -> Flag:
    with transaction.atomic():
        locked = Flag.objects.select_for_update().get(pk=flag.pk)
        locked.review_status = status
        locked.reviewer = reviewer
        locked.decision_note = note
        locked.reviewed_at = timezone.now()
        locked.save()
        ModerationDecision.objects.create(
            flag=locked, subject_user_id=locked.user_id, reviewer=reviewer, kind=kind, note=note
        )
    return locked


def flag_confirm(*, flag: Flag, reviewer: User, note: str = "") -> Flag:
    return _decide(flag, reviewer, Flag.Review.CONFIRMED, ModerationDecision.Kind.CONFIRM, note)


def flag_dismiss(*, flag: Flag, reviewer: User, note: str = "") -> Flag:
    return _decide(flag, reviewer, Flag.Review.DISMISSED, ModerationDecision.Kind.DISMISS, note)


def _confirm_by_action(flag: Flag, reviewer: User, note: str) -> None:
    """Acting on a flag (suspending its user, removing its message) confirms it, whatever it said."""
    Flag.objects.select_for_update().filter(pk=flag.pk).update(
        review_status=Flag.Review.CONFIRMED, reviewer=reviewer, reviewed_at=timezone.now(), decision_note=note
    )


def user_suspend(*, user: User, reviewer: User, reason: str, flag: Flag | None = None) -> Suspension:
    with transaction.atomic():
        suspension = Suspension.objects.filter(user=user, ended_at__isnull=True).first()
        if suspension is None:
            suspension = Suspension.objects.create(user=user, reason=reason or "suspended", created_by=reviewer)
        ModerationDecision.objects.create(
            flag=flag, subject_user=user, reviewer=reviewer, kind=ModerationDecision.Kind.SUSPEND_USER, note=reason
        )
        if flag is not None:
            _confirm_by_action(flag, reviewer, reason)
    return suspension


def user_unsuspend(*, user: User, reviewer: User, note: str = "") -> int:
    with transaction.atomic():
        ended = Suspension.objects.filter(user=user, ended_at__isnull=True).update(ended_at=timezone.now())
        ModerationDecision.objects.create(
            subject_user=user, reviewer=reviewer, kind=ModerationDecision.Kind.UNSUSPEND_USER, note=note
        )
    return ended


def message_remove(*, message: Message, reviewer: User, note: str = "", flag: Flag | None = None) -> Message:
    """Replace a message's text with a tombstone. The row stays: later turns branch from it."""
    with transaction.atomic():
        Message.objects.filter(pk=message.pk).update(
            content=REMOVED_TEXT,
            redacted_content="",
            status=Message.Status.BLOCKED,
            error_code="removed",
            error_message="This message was removed by a moderator.",
            embedding=None,
            embedding_model="",
        )
        ModerationDecision.objects.create(
            flag=flag,
            subject_user_id=message.conversation.owner_id,
            reviewer=reviewer,
            kind=ModerationDecision.Kind.DELETE_MESSAGE,
            note=note,
        )
        if flag is not None:
            _confirm_by_action(flag, reviewer, note)
    message.refresh_from_db()
    return message


def user_is_suspended(*, user_id: int) -> bool:
    return Suspension.objects.filter(user_id=user_id, ended_at__isnull=True).exists()
