"""Summaries, facts and embeddings, visible and searchable for operators."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from conversations.models import Message
from memory.models import ConversationSummary, MemoryProfile, MessageEmbedding, UserFact


def _vector_preview(vector: object, model: str) -> str:
    if vector is None:
        return "—"
    values = list(vector)  # type: ignore[call-overload]
    head = ", ".join(f"{v:.3f}" for v in values[:4])
    return format_html("<code>{}d [{}, …]</code> <small>{}</small>", len(values), head, model or "unknown model")


@admin.register(ConversationSummary)
class ConversationSummaryAdmin(admin.ModelAdmin):
    list_display = ("conversation", "owner", "covered_messages", "token_count", "model", "created_at")
    list_select_related = ("conversation", "conversation__owner")
    search_fields = ("text", "conversation__title", "conversation__owner__username")
    raw_id_fields = ("conversation", "through_message")
    readonly_fields = ("created_at",)
    date_hierarchy = "created_at"

    @admin.display(description="owner", ordering="conversation__owner__username")
    def owner(self, obj: ConversationSummary) -> str:
        return obj.conversation.owner.get_username()


@admin.register(UserFact)
class UserFactAdmin(admin.ModelAdmin):
    list_display = ("text", "user", "key", "status", "source_link", "edited_by_user", "updated_at")
    list_filter = ("status", "edited_by_user")
    list_select_related = ("user", "source_message")
    search_fields = ("text", "key", "user__username")
    raw_id_fields = ("user", "source_message")
    readonly_fields = ("embedding_preview", "previous_text", "created_at", "updated_at")
    exclude = ("embedding",)
    date_hierarchy = "updated_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[UserFact]:
        return super().get_queryset(request).defer("source_message__embedding")

    @admin.display(description="source")
    def source_link(self, obj: UserFact) -> str:
        if obj.source_message_id is None:
            return "—"
        return format_html(
            '<a href="../../conversations/message/{}/change/">message {}</a>',
            obj.source_message_id,
            obj.source_message_id,
        )

    @admin.display(description="embedding")
    def embedding_preview(self, obj: UserFact) -> str:
        return _vector_preview(obj.embedding, obj.embedding_model)


@admin.register(MemoryProfile)
class MemoryProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "enabled", "facts_through_message_id", "updated_at")
    list_filter = ("enabled",)
    list_select_related = ("user",)
    search_fields = ("user__username",)
    raw_id_fields = ("user",)


class MessageEmbeddingAdmin(admin.ModelAdmin):
    """Messages as the memory sees them: which have vectors, from which model."""

    list_display = ("id", "conversation", "role", "short_content", "embedding_model")
    list_filter = ("embedding_model", "role")
    list_select_related = ("conversation",)
    search_fields = ("content", "embedding_model")
    readonly_fields = ("embedding_preview",)
    fields = ("conversation", "role", "content", "embedding_model", "embedding_preview")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="content")
    def short_content(self, obj: Message) -> str:
        return obj.content[:100]

    @admin.display(description="embedding")
    def embedding_preview(self, obj: Message) -> str:
        return _vector_preview(obj.embedding, obj.embedding_model)


admin.site.register(MessageEmbedding, MessageEmbeddingAdmin)
