"""What the product remembers: rolling conversation summaries and facts about each user."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from pgvector.django import HnswIndex, VectorField

from conversations.models import Message

EMBEDDING_DIMENSIONS = 384


class ConversationSummary(models.Model):
    """A summary of a conversation's branch from its root through `through_message`.

    Rolling: each new row is written from the previous summary plus the turns it newly covers, so
    a long conversation never needs re-reading from the start. The newest row is the current one.
    """

    conversation = models.ForeignKey("conversations.Conversation", on_delete=models.CASCADE, related_name="summaries")
    through_message = models.ForeignKey("conversations.Message", on_delete=models.CASCADE, related_name="+")
    text = models.TextField()
    token_count = models.PositiveIntegerField(default=0)
    covered_messages = models.PositiveIntegerField(default=0)
    model = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "through_message"], name="one_summary_per_boundary"),
        ]
        verbose_name_plural = "conversation summaries"

    def __str__(self) -> str:
        return f"Summary of {self.conversation_id} through {self.through_message_id}"


class UserFact(models.Model):
    """Something the assistant learned about a user, with the message it came from."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        PROPOSED = "proposed"
        DELETED = "deleted"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="facts")
    text = models.TextField()
    # A stable subject ("location", "name", "diet") so a new statement replaces a contradicted one.
    key = models.CharField(max_length=100, blank=True, default="")
    source_message = models.ForeignKey(
        "conversations.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="facts"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    confidence = models.FloatField(default=0.8)
    previous_text = models.TextField(blank=True, default="")
    edited_by_user = models.BooleanField(default=False)
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True)
    embedding_model = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [
            models.Index(fields=["user", "status"], name="fact_user_status"),
            HnswIndex(
                name="fact_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "key"],
                condition=Q(status="active") & ~Q(key=""),
                name="one_active_fact_per_key",
            ),
        ]

    def __str__(self) -> str:
        return self.text[:80]


class MemoryProfile(models.Model):
    """Per-user memory switch and the extraction watermark (work claimed with conditional updates)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memory_profile")
    enabled = models.BooleanField(default=True)
    # Highest message id already read for facts: extraction resumes after it, never rereads.
    facts_through_message_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Memory of {self.user_id} ({'on' if self.enabled else 'off'})"


class MessageEmbedding(Message):
    """Messages seen as memory sees them (their vectors), for the admin."""

    class Meta:
        proxy = True
        verbose_name = "message embedding"
