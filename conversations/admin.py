from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, cast
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db.models import Count, DecimalField, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from conversations.limits.budgets import budget_status
from conversations.limits.ratelimit import (
    Action,
    Kind,
    LimitedSubject,
    limited_subject_clear,
    limited_subjects,
    subject_parse,
)
from conversations.models import ApiKey, Conversation, Message, Plan, UsageRecord, UserPlan
from conversations.services.api_keys import api_keys_revoke

logger = logging.getLogger(__name__)


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


# --- Usage ---------------------------------------------------------------------------------------

USAGE_REPORT_DAYS = 30  # the default range, ending today
USAGE_REPORT_MAX_DAYS = 366
USAGE_REPORT_TOP_USERS = 100


class UsageUserFilter(admin.SimpleListFilter):
    """Records of one user, by id: reached from the user column and the report, so it scales to any
    number of users (a choice per user would not). Listed only while applied, to clear it."""

    title = "user"
    parameter_name = "user"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        # The admin applies a filter only while it lists a choice: list whatever was asked for.
        value = self.value()
        if not value:
            return []
        account = get_user_model().objects.filter(pk=int(value)).first() if value.isdigit() else None
        return [(value, account.get_username() if account else f"no user {value[:40]}")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        return queryset.filter(user_id=int(value)) if value.isdigit() else queryset.none()


class UsageReportForm(forms.Form):
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    purpose = forms.ChoiceField(choices=[("", "All purposes"), *UsageRecord.Purpose.choices], required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        end = data.get("end") or timezone.localdate()
        start = data.get("start") or end - timedelta(days=USAGE_REPORT_DAYS - 1)
        if start > end:
            raise forms.ValidationError("The start date is after the end date.")
        if (end - start).days >= USAGE_REPORT_MAX_DAYS:
            raise forms.ValidationError(f"Pick a range of at most {USAGE_REPORT_MAX_DAYS} days.")
        data["start"], data["end"] = start, end
        return data


@dataclass(frozen=True)
class UsageRow:
    label: str
    link: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class UsageReport:
    start: date
    end: date
    totals: UsageRow
    by_user: list[UsageRow]
    users: int  # how many users used anything; by_user shows the top USAGE_REPORT_TOP_USERS
    by_model: list[UsageRow]
    by_day: list[UsageRow]


# Named apart from the model's fields, which annotations may not shadow.
USAGE_SUMS: dict[str, Any] = {
    "n_calls": Count("id"),
    "n_prompt": Coalesce(Sum("prompt_tokens"), 0),
    "n_completion": Coalesce(Sum("completion_tokens"), 0),
    "n_cost": Coalesce(Sum("cost"), Value(Decimal(0)), output_field=DecimalField(max_digits=20, decimal_places=8)),
}


def _summed(grouped: QuerySet[Any, Any]) -> QuerySet[Any, Any]:
    """One row per group of a `values()` query, with the sums computed by PostgreSQL."""
    return grouped.annotate(**USAGE_SUMS)


def _usage_row(sums: Mapping[str, Any], *, label: str, link: str = "") -> UsageRow:
    return UsageRow(
        label=label,
        link=link,
        calls=sums["n_calls"],
        prompt_tokens=sums["n_prompt"],
        completion_tokens=sums["n_completion"],
        cost=sums["n_cost"],
    )


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


def usage_report(*, start: date, end: date, purpose: str = "", changelist_url: str) -> UsageReport:
    """Tokens, calls and cost per user, per model and per day between two dates (inclusive, in the
    server's time zone), each summed by PostgreSQL; every row links to its ledger entries."""
    since, until = _day_start(start), _day_start(end + timedelta(days=1))
    records = UsageRecord.objects.filter(created_at__gte=since, created_at__lt=until)
    scope: dict[str, str] = {}
    if purpose:
        records = records.filter(purpose=purpose)
        scope["purpose__exact"] = purpose

    def link(window: tuple[datetime, datetime] = (since, until), **query: object) -> str:
        bounds = {"created_at__gte": str(window[0]), "created_at__lt": str(window[1])}
        return f"{changelist_url}?{urlencode({**bounds, **scope, **query})}"

    def day_link(day: date) -> str:
        return link((_day_start(day), _day_start(day + timedelta(days=1))))

    by_user = _summed(records.values("user_id", "user__username")).order_by("-n_cost", "-n_prompt", "user_id")
    by_model = _summed(records.values("model")).order_by("model")
    tz = timezone.get_current_timezone()
    by_day = _summed(records.annotate(day=TruncDate("created_at", tzinfo=tz)).values("day")).order_by("day")
    return UsageReport(
        start=start,
        end=end,
        totals=_usage_row(records.aggregate(**USAGE_SUMS), label="Total", link=link()),
        by_user=[
            _usage_row(
                row,
                label=row["user__username"] or "(deleted account)",
                link=link(user=row["user_id"]) if row["user_id"] else link(user__isnull="True"),
            )
            for row in by_user[:USAGE_REPORT_TOP_USERS]
        ],
        users=records.values("user_id").distinct().count(),
        by_model=[_usage_row(row, label=row["model"], link=link(model__exact=row["model"])) for row in by_model],
        by_day=[_usage_row(row, label=row["day"].isoformat(), link=day_link(row["day"])) for row in by_day],
    )


# --- Rate limits -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LimitedRow:
    subject: LimitedSubject
    label: str
    link: str
    seconds_left: int


def _limited_rows(subjects: list[LimitedSubject]) -> list[LimitedRow]:
    user_ids = [int(s.value) for s in subjects if s.kind == Kind.USER and s.value.isdigit()]
    names = dict(get_user_model().objects.filter(pk__in=user_ids).values_list("pk", "username"))
    now = timezone.now()
    rows = []
    for subject in subjects:
        label, link = subject.value, ""
        if subject.kind == Kind.USER and subject.value.isdigit():
            label = names.get(int(subject.value), f"user {subject.value} (deleted)")
            link = reverse("admin:auth_user_change", args=[int(subject.value)]) if int(subject.value) in names else ""
        seconds_left = max(0, math.ceil((subject.until - now).total_seconds()))
        rows.append(LimitedRow(subject=subject, label=label, link=link, seconds_left=seconds_left))
    return rows


def _log_limit_cleared(request: HttpRequest, action: Action, kind: Kind, value: str) -> None:
    """The admin's own audit trail, like a change: on the user's entry when the subject is a user."""
    account = None
    if kind == Kind.USER and value.isdigit():
        account = get_user_model().objects.filter(pk=int(value)).first()
    LogEntry.objects.create(
        user_id=cast("int", request.user.pk),  # the admin lets only signed-in staff this far
        content_type=ContentType.objects.get_for_model(get_user_model()) if account else None,
        object_id=str(account.pk) if account else None,
        object_repr=(account.get_username() if account else f"{kind} {value}")[:200],
        action_flag=CHANGE,
        change_message=f"Cleared the {action} rate limit on {kind} {value}.",
    )
    logger.info("rate limit on %s %s (%s) cleared by %s", kind, value, action, request.user)


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    """The usage ledger: read-only rows written by each LLM call, a report, and who is rate limited."""

    list_display = (
        "created_at",
        "user_link",
        "purpose",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "latency_ms",
        "ok",
    )
    list_filter = ("purpose", "model", ("created_at", admin.DateFieldListFilter), "ok", UsageUserFilter)
    list_select_related = ("user",)
    search_fields = ("user__username", "model")
    raw_id_fields = ("user", "conversation", "message")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the ledger is written by LLM calls only

    def has_change_permission(self, request: HttpRequest, obj: UsageRecord | None = None) -> bool:
        return False  # quotas and reports read it: it is evidence, not a setting

    @admin.display(description="user", ordering="user__username")
    def user_link(self, obj: UsageRecord) -> str:
        if obj.user is None:
            return "—"
        url = reverse("admin:conversations_usagerecord_changelist") + "?" + urlencode({"user": obj.user_id})
        return format_html('<a href="{}" title="All usage of this user">{}</a>', url, obj.user.get_username())

    def get_urls(self) -> list[URLPattern]:
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("report/", self.admin_site.admin_view(self.report_view), name=f"{info}_report"),
            path("rate-limits/", self.admin_site.admin_view(self.rate_limits_view), name=f"{info}_rate_limits"),
            *super().get_urls(),
        ]

    def _page(self, request: HttpRequest, title: str, **context: Any) -> dict[str, Any]:
        return {**self.admin_site.each_context(request), "title": title, "opts": self.opts, **context}

    def report_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        today = timezone.localdate()
        # The inputs show the range the report covers, the default one included.
        defaults = {"start": str(today - timedelta(days=USAGE_REPORT_DAYS - 1)), "end": str(today)}
        form = UsageReportForm({**defaults, **{name: value for name, value in request.GET.items() if value}})
        report = None
        if form.is_valid():
            report = usage_report(
                start=form.cleaned_data["start"],
                end=form.cleaned_data["end"],
                purpose=form.cleaned_data["purpose"],
                changelist_url=reverse("admin:conversations_usagerecord_changelist"),
            )
        context = self._page(request, "Usage report", form=form, report=report, top_users=USAGE_REPORT_TOP_USERS)
        return TemplateResponse(
            request, "admin/conversations/usagerecord/report.html", context, status=200 if report else 400
        )

    def rate_limits_view(self, request: HttpRequest) -> HttpResponse:
        """Who is refused right now, and a button to lift it (POST, staff only, logged)."""
        if request.method not in ("GET", "HEAD", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        if request.method == "POST":
            subject = request.POST.get("subject", "")
            parsed = subject_parse(subject)
            if parsed is None:
                self.message_user(request, "That is not a rate-limited subject.", messages.ERROR)
            elif limited_subject_clear(subject=subject):
                _log_limit_cleared(request, *parsed)
                self.message_user(request, f"Cleared the limit on {subject}.", messages.SUCCESS)
            else:
                self.message_user(request, f"{subject} was no longer limited.", messages.WARNING)
            return HttpResponseRedirect(request.path)
        rows = _limited_rows(limited_subjects())
        context = self._page(request, "Rate-limited now", rows=rows)
        return TemplateResponse(request, "admin/conversations/usagerecord/rate_limits.html", context)


# --- plans and budgets ------------------------------------------------------------------------------


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "label",
        "daily_token_limit",
        "monthly_token_limit",
        "queue_priority",
        "fallback_model",
        "subscribers",
    )
    search_fields = ("name", "label")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Plan]:
        return super().get_queryset(request).annotate(subscriber_count=Count("subscriptions"))

    @admin.display(description="users with this plan", ordering="subscriber_count")
    def subscribers(self, obj: Plan) -> int:
        # Users with no plan of their own are on BUDGET_DEFAULT_PLAN and not counted here.
        return int(getattr(obj, "subscriber_count", 0))


@admin.register(UserPlan)
class UserPlanAdmin(admin.ModelAdmin):
    list_display = ("user", "plan", "daily_token_limit", "monthly_token_limit")
    list_filter = ("plan",)
    list_select_related = ("user", "plan")
    search_fields = ("user__username", "user__email")
    raw_id_fields = ("user",)
    readonly_fields = ("budget_now",)

    @admin.display(description="budget now")
    def budget_now(self, obj: UserPlan) -> str:
        if obj.user_id is None:
            return "-"
        status = budget_status(user_id=obj.user_id)
        return format_html(
            "today: {} used, {} reserved of {}<br>this month: {} used, {} reserved of {}",
            f"{status.day.used:,}",
            f"{status.day.reserved:,}",
            "unlimited" if status.day.unlimited else f"{status.day.limit:,}",
            f"{status.month.used:,}",
            f"{status.month.reserved:,}",
            "unlimited" if status.month.unlimited else f"{status.month.limit:,}",
        )


# --- API keys ------------------------------------------------------------------------------------


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Every user's API keys. Read-only but for revoking: a key's secret exists only with its owner."""

    list_display = ("name", "user", "prefix_shown", "created_at", "last_used_at", "state")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), ("created_at", admin.DateFieldListFilter))
    list_select_related = ("user",)
    search_fields = ("name", "prefix", "user__username")
    fields = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    actions = ["revoke_keys"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # people create their own keys, on their settings page, where the secret is shown

    @admin.display(description="key", ordering="prefix")
    def prefix_shown(self, obj: ApiKey) -> str:
        return f"{obj.prefix}…"

    @admin.display(description="state", ordering="revoked_at")
    def state(self, obj: ApiKey) -> str:
        if obj.revoked_at is None:
            return format_html('<b style="color:#2e7d32">{}</b>', "active")
        return format_html('<span style="color:#c62828">revoked {}</span>', f"{obj.revoked_at:%Y-%m-%d %H:%M}")

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        active = list(queryset.filter(revoked_at__isnull=True))
        revoked = api_keys_revoke(keys=queryset)
        for key in active:
            self.log_change(request, key, "Revoked the key.")
        note = f"Revoked {revoked} key(s): requests with them are refused from now on."
        self.message_user(request, note, messages.SUCCESS)
