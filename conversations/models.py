"""Conversations and messages: one row per message, a tree through `parent` (DESIGN.md §2)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.db.models.signals import post_delete
from django.dispatch import receiver
from pgvector.django import HnswIndex, VectorField

EMBEDDING_DIMENSIONS = 384


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=200, default="New chat")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The leaf of the branch the user is looking at; edits and regenerations move it.
    active_leaf = models.ForeignKey("Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model = models.CharField(max_length=200, blank=True, default="")
    pinned = models.BooleanField(default=False)
    archived = models.BooleanField(default=False)
    # Temporary chats are never read for memory and are deleted after the retention period.
    temporary = models.BooleanField(default=False)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pinned", "-updated_at"]
        indexes = [models.Index(fields=["owner", "-updated_at"], name="conv_owner_recent")]

    def __str__(self) -> str:
        return self.title


class Message(models.Model):
    class Role(models.TextChoices):
        SYSTEM = "system"
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        STREAMING = "streaming"
        COMPLETE = "complete"
        STOPPED = "stopped"
        INTERRUPTED = "interrupted"
        FAILED = "failed"
        BLOCKED = "blocked"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True, default="")
    # What models receive when it differs from `content`: personal data redacted by the guardrails.
    # The user sees what they wrote; no model, now or in a later turn or task, sees the original.
    redacted_content = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    # Number of the last streamed delta whose text is included in `content`.
    seq = models.PositiveIntegerField(default=0)
    model = models.CharField(max_length=200, blank=True, default="")
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    # What the context builder put in the prompt for this reply (tokens per tier): the UI's gauge.
    context_report = models.JSONField(null=True, blank=True)
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True)
    embedding_model = models.CharField(max_length=200, blank=True, default="")
    # The table also has a column `search_vector` (tsvector, generated from `content`) and its GIN
    # index, made by migration 0006_search and read only by conversations/search.py in SQL. It is
    # not a field here so that ordinary message queries do not load it.
    # Likewise `segment` (bigint): the chain of the tree the message belongs to, set by a trigger
    # on insert (migration 0010_message_segments) and read in SQL by memory/selectors.py to tell the
    # active branch's ancestors from other branches. Not a field, so a save() cannot overwrite it.
    created_at = models.DateTimeField(auto_now_add=True)
    # Doubles as the heartbeat of a streaming row: the reaper treats a stale one as orphaned.
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["conversation", "created_at"], name="msg_conv_created"),
            models.Index(fields=["updated_at"], condition=Q(status="streaming"), name="msg_streaming_heartbeat"),
            HnswIndex(
                name="msg_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
        ]
        constraints = [
            # At most one reply streams per conversation: the database, not the socket, enforces it.
            models.UniqueConstraint(
                fields=["conversation"], condition=Q(status="streaming"), name="one_streaming_reply_per_conversation"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"

    @property
    def model_content(self) -> str:
        return self.redacted_content or self.content

    @property
    def is_final(self) -> bool:
        return self.status != self.Status.STREAMING


class UsageRecord(models.Model):
    """One row per LLM call: what quotas read and the admin reports."""

    class Purpose(models.TextChoices):
        CHAT = "chat"
        SUMMARY = "summary"
        FACTS = "facts"
        GUARD = "guard"
        EMBEDDING = "embedding"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage_records"
    )
    conversation = models.ForeignKey(Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage_records")
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.CHAT)
    model = models.CharField(max_length=200)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal("0"))
    latency_ms = models.PositiveIntegerField(default=0)
    ok = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "created_at"], name="usage_user_created")]

    def __str__(self) -> str:
        return f"{self.model} {self.prompt_tokens}+{self.completion_tokens}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


# --- Token budgets (conversations/limits/budgets.py) ----------------------------------------------


class Plan(models.Model):
    """What a class of users may spend, and how they queue; edited in the admin."""

    name = models.SlugField(max_length=50, unique=True)
    label = models.CharField(max_length=100)
    # Tokens (prompt + reply) of chat replies per UTC day and month; 0 means unlimited.
    daily_token_limit = models.PositiveBigIntegerField(default=0)
    monthly_token_limit = models.PositiveBigIntegerField(default=0)
    # Higher goes first in the LLM queue.
    queue_priority = models.IntegerField(default=0)
    # A model name (from LLM_MODELS) that answers, uncounted, once the budget is spent; blank: refuse.
    fallback_model = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["-queue_priority", "name"]

    def __str__(self) -> str:
        return self.label or self.name


class UserPlan(models.Model):
    """A user's plan, with optional limits of their own that beat the plan's."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="user_plan")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    daily_token_limit = models.PositiveBigIntegerField(null=True, blank=True, help_text="Blank: the plan's limit.")
    monthly_token_limit = models.PositiveBigIntegerField(null=True, blank=True, help_text="Blank: the plan's limit.")

    def __str__(self) -> str:
        return f"{self.user} on {self.plan}"


class BudgetCounter(models.Model):
    """Tokens used and reserved by one user in one period: the row concurrent turns lock."""

    class Period(models.TextChoices):
        DAY = "day"
        MONTH = "month"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    period = models.CharField(max_length=8, choices=Period.choices)
    starts_at = models.DateTimeField()
    used = models.BigIntegerField(default=0)
    reserved = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "period", "starts_at"], name="one_budget_counter_per_period"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.period} {self.starts_at:%Y-%m-%d}: {self.used}+{self.reserved}"


class BudgetReservation(models.Model):
    """Tokens held for one reply until its ledger row settles them (once) or they are released."""

    class State(models.TextChoices):
        RESERVED = "reserved"
        SETTLED = "settled"
        RELEASED = "released"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model = models.CharField(max_length=200)
    tokens = models.PositiveBigIntegerField()
    # The periods the tokens are held in: settlement gives them back there even after a reset.
    day_starts_at = models.DateTimeField()
    month_starts_at = models.DateTimeField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.RESERVED)
    charged = models.PositiveBigIntegerField(default=0)
    usage_record = models.ForeignKey(UsageRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["user"], condition=Q(state="reserved"), name="budget_reservation_open"),
        ]

    def __str__(self) -> str:
        return f"{self.tokens} tokens for message {self.message_id} ({self.state})"


# --- API keys (conversations/services/api_keys.py, docs/api.md) ------------------------------------


class ApiKey(models.Model):
    """A secret that lets a program call the OpenAI-compatible API as its user.

    Only a SHA-256 of the secret is stored: the secret is shown once, when the key is created.
    A fast hash is enough because the secret is 256 random bits (nothing to guess, unlike a
    password), and it lets a request find its key by an indexed lookup in microseconds.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    # The secret's first characters, so people can tell their keys apart; too few to use.
    prefix = models.CharField(max_length=32)
    hashed_secret = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Written at most once a minute per key, not on every request.
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "-created_at"], name="apikey_user_recent")]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


# --- Share links (conversations/services/shares.py, docs/data.md) ----------------------------------


class SharedConversation(models.Model):
    """A read-only snapshot of a conversation's active branch, seen by anyone holding the link.

    The snapshot is copied at share time, so later messages, edits and branches never show; the
    token is 256 random bits in the URL and is the only thing that grants access.
    """

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="shares")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="shared_conversations")
    token = models.CharField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    # [{"role", "content", "model", "created_at"}, ...]: the branch from the root, oldest first.
    snapshot = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="share_owner_recent")]

    def __str__(self) -> str:
        return f"{self.title} ({'revoked' if self.revoked_at else 'active'})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


# --- Images attached to messages (conversations/services/attachments.py) ---------------------------


def attachment_path(instance: Attachment, filename: str) -> str:
    # Random names: the owner's id or the upload's name in a path would leak through a listing.
    return f"attachments/{uuid.uuid4().hex[:2]}/{uuid.uuid4().hex}{filename[filename.rfind('.') :]}"


class Attachment(models.Model):
    """An image a user uploaded, linked to the message it was sent with (None until sent).

    The file lives in Django's default storage and is only ever served through a view that checks
    the owner; `sha256` lets a later upload of the same bytes be recognised.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attachments")
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to=attachment_path, max_length=200)
    content_type = models.CharField(max_length=32)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["owner", "created_at"], name="attachment_owner_created")]

    def __str__(self) -> str:
        return f"{self.content_type} {self.width}×{self.height}"

    @property
    def format_label(self) -> str:
        """`PNG, 640×480`: how prompts and notes name the image."""
        return f"{self.content_type.rsplit('/', 1)[-1].upper()}, {self.width}×{self.height}"


@receiver(post_delete, sender=Attachment)
def _attachment_file_delete(sender: type[Attachment], instance: Attachment, **kwargs: object) -> None:
    # Rows go by cascade too (a message, a conversation, an account erased), so the file follows the
    # row here rather than in each service; after commit, so a rolled-back delete keeps its file.
    name, storage = instance.file.name, instance.file.storage
    if name:
        transaction.on_commit(lambda: storage.delete(name))
