"""Flags raised by guardrails and users, the decisions moderators take, and suspensions."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Case, Q, When


class Flag(models.Model):
    class Direction(models.TextChoices):
        INPUT = "input"
        OUTPUT = "output"
        REPORT = "report"

    class ActionTaken(models.TextChoices):
        ALLOWED = "allowed"
        FLAGGED = "flagged"
        REDACTED = "redacted"
        BLOCKED = "blocked"

    class Review(models.TextChoices):
        OPEN = "open"
        CONFIRMED = "confirmed"
        DISMISSED = "dismissed"

    message = models.ForeignKey(
        "conversations.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="flags"
    )
    conversation = models.ForeignKey(
        "conversations.Conversation", null=True, blank=True, on_delete=models.SET_NULL, related_name="flags"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="flags"
    )
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="reports_made"
    )
    direction = models.CharField(max_length=8, choices=Direction.choices)
    detector = models.CharField(max_length=64, blank=True, default="")
    category = models.CharField(max_length=64, db_index=True)
    score = models.FloatField(default=1.0)
    action = models.CharField(max_length=10, choices=ActionTaken.choices)
    # The offending text with PII masked: what a moderator reads, kept if the message is deleted.
    excerpt = models.TextField(blank=True, default="")
    reason = models.TextField(blank=True, default="")  # a reporter's words, or the detector's detail
    latency_ms = models.FloatField(null=True, blank=True)
    review_status = models.CharField(max_length=10, choices=Review.choices, default=Review.OPEN)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="flags_reviewed"
    )
    decision_note = models.TextField(blank=True, default="")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        # Open flags first (alphabetical order would put "open" after "confirmed" and "dismissed").
        ordering = [Case(When(review_status="open", then=0), default=1), "-created_at"]
        indexes = [
            models.Index(fields=["-created_at"], condition=Q(review_status="open"), name="flag_queue_open"),
            models.Index(fields=["category", "created_at"], name="flag_category_day"),
        ]
        permissions = [("review_flag", "Can review flags and take moderation actions")]

    def __str__(self) -> str:
        return f"{self.category} ({self.direction}, {self.review_status})"


class ModerationDecision(models.Model):
    """Every moderator action, with who took it and why: the audit trail of the queue."""

    class Kind(models.TextChoices):
        CONFIRM = "confirm"
        DISMISS = "dismiss"
        SUSPEND_USER = "suspend_user"
        UNSUSPEND_USER = "unsuspend_user"
        DELETE_MESSAGE = "delete_message"

    flag = models.ForeignKey(Flag, null=True, blank=True, on_delete=models.SET_NULL, related_name="decisions")
    subject_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    note = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} by {self.reviewer_id}"


class Suspension(models.Model):
    """A suspended user cannot send; lifting it keeps the row (ended_at) for the record."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="suspensions")
    reason = models.TextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["user"], condition=Q(ended_at__isnull=True), name="one_active_suspension"),
        ]

    def __str__(self) -> str:
        return f"Suspension of {self.user_id}"
