from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from conversations.models import Conversation, Message, UsageRecord


class MessageInline(admin.TabularInline):
    model = Message
    fk_name = "conversation"
    fields = ("role", "status", "short_content", "model", "completion_tokens", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    @admin.display(description="content")
    def short_content(self, obj: Message) -> str:
        return obj.content[:120]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        return super().get_queryset(request).defer("embedding")


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("title", "owner", "created_at", "updated_at", "pinned", "archived", "deleted_at")
    list_filter = ("archived", "pinned", ("deleted_at", admin.EmptyFieldListFilter))
    list_select_related = ("owner",)
    search_fields = ("title", "owner__username", "id")
    raw_id_fields = ("owner", "active_leaf")
    date_hierarchy = "created_at"
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "conversation_link",
        "role",
        "status_badge",
        "model",
        "completion_tokens",
        "ttft_ms",
        "created_at",
    )
    list_filter = ("role", "status", "model")
    list_select_related = ("conversation",)
    search_fields = ("content", "conversation__title", "conversation__owner__username")
    raw_id_fields = ("conversation", "parent")
    exclude = ("embedding",)
    readonly_fields = ("created_at", "updated_at", "finished_at")
    date_hierarchy = "created_at"

    @admin.display(description="conversation")
    def conversation_link(self, obj: Message) -> str:
        return format_html('<a href="../conversation/{}/change/">{}</a>', obj.conversation_id, obj.conversation.title)

    @admin.display(description="status")
    def status_badge(self, obj: Message) -> str:
        colours = {"complete": "#2e7d32", "streaming": "#1565c0", "failed": "#c62828", "interrupted": "#ef6c00"}
        return format_html('<b style="color:{}">{}</b>', colours.get(obj.status, "#555"), obj.status)


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "user",
        "purpose",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "latency_ms",
        "ok",
    )
    list_filter = ("purpose", "model", "ok")
    list_select_related = ("user",)
    search_fields = ("user__username", "model")
    raw_id_fields = ("user", "conversation", "message")
    date_hierarchy = "created_at"
