"""The moderators' review queue in the Django admin (DESIGN.md §7, §9).

Flags are evidence: what a detector or a reporter wrote is read-only here. Every decision goes
through `moderation.services` (which records a `ModerationDecision`) and is also written to the
admin's own `LogEntry`, the way `django/contrib/auth/admin.py` logs a password change. Moderators
never see personal data in clear: excerpts were masked when the flag was written, and the review
page masks the conversation around a flag with the configured "pii" detector.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Case, Count, Exists, OuterRef, Q, QuerySet, Value, When
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator

from conversations.models import Message
from conversations.selectors import branch_messages
from moderation.detectors.base import CheckContext, Detector, Direction, Span
from moderation.models import Flag, ModerationDecision, Suspension
from moderation.pipeline import configured_detectors
from moderation.services import (
    REMOVED_TEXT,
    ModerationError,
    flag_confirm,
    flag_dismiss,
    mask_spans,
    message_remove,
    user_is_suspended,
    user_suspend,
    user_unsuspend,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

PII_DETECTOR_NAME = "pii"
CONTEXT_BEFORE = 3  # messages shown before the flagged one on its branch
CONTEXT_AFTER = 2
PREVIEW_CHARS = 80
DASHBOARD_DAYS = 30
MASK = "*"


# --- Masking ---------------------------------------------------------------------------------------


def pii_detector() -> Detector | None:
    """The detector configured under the name "pii", if the deployment has one."""
    return next((c.detector for c in configured_detectors() if c.name == PII_DETECTOR_NAME), None)


class Masker:
    """Masks personal data in what a moderator reads, with the "pii" detector and known flag excerpts.

    A detector that fails hides the whole text (and says so): a moderator seeing less is better
    than a moderator seeing an unchecked email address or card number.
    """

    def __init__(self, detector: Detector | None) -> None:
        self.detector = detector
        self.failed = False

    @property
    def available(self) -> bool:
        return self.detector is not None

    def spans(self, text: str) -> list[Span]:
        if self.detector is None or not text:
            return []
        try:
            findings = self.detector.check(text, direction=Direction.OUTPUT, context=CheckContext())
        except Exception:
            logger.exception("the pii detector failed on a text shown to a moderator; hiding the text")
            self.failed = True
            return [Span(0, len(text), "UNCHECKED")]
        return [span for finding in findings for span in finding.spans]

    def mask(self, text: str, excerpts: Iterable[str] = ()) -> str:
        masked = mask_spans(text, self.spans(text))
        for excerpt in excerpts:
            masked = overlay_excerpt(masked, original=text, excerpt=excerpt)
        return masked


def overlay_excerpt(masked: str, *, original: str, excerpt: str) -> str:
    """Apply the masking a flag's excerpt already carries to a text: the spans detectors found then.

    `excerpt_of` masks in place (same length, letters and digits become `*`) and cuts at the end, so
    where the excerpt lines up with the original, each `*` it has over a character the original
    does not marks one the detector hid. An excerpt of another text (a streamed chunk, a stored
    redaction) does not line up and adds nothing.
    """
    if not excerpt or len(excerpt) > len(original) or len(masked) != len(original):
        return masked
    if any(e != o and e != MASK for e, o in zip(excerpt, original, strict=False)):
        return masked
    chars = list(masked)
    for index, (e, o) in enumerate(zip(excerpt, original, strict=False)):
        if e == MASK and o != MASK:
            chars[index] = MASK
    return "".join(chars)


def masked_preview(text: str, length: int = PREVIEW_CHARS) -> str:
    """A one-line excerpt for lists; masked again because user reports store the reply as it was."""
    one_line = " ".join(Masker(pii_detector()).mask(text).split())
    return Truncator(one_line).chars(length)


# --- The flagged message in its conversation ------------------------------------------------------


@dataclass(frozen=True)
class ContextLine:
    message_id: int
    role: str
    status: str
    created_at: datetime
    text: str
    flagged: bool
    removed: bool


def _newest_descendants(message: Message, limit: int) -> list[Message]:
    """What followed a message the user later branched away from: the newest child at each step."""
    found: list[Message] = []
    cursor = message
    for _ in range(limit):
        child = Message.objects.filter(parent=cursor).defer("embedding").order_by("-created_at", "-id").first()
        if child is None:
            break
        found.append(child)
        cursor = child
    return found


def messages_around(message: Message, *, before: int = CONTEXT_BEFORE, after: int = CONTEXT_AFTER) -> list[Message]:
    """The flagged message with its neighbours on its branch, oldest first.

    The active branch when the message is on it; otherwise (the user edited or regenerated since)
    the path to the message and the newest replies under it.
    """
    branch = branch_messages(conversation=message.conversation)
    if message.pk not in {m.pk for m in branch}:
        branch = branch_messages(conversation=message.conversation, leaf_id=message.pk)
        branch += _newest_descendants(message, after)
    index = next((i for i, m in enumerate(branch) if m.pk == message.pk), None)
    if index is None:  # not reachable from its conversation's rows: show it alone
        return [message]
    return branch[max(0, index - before) : index + after + 1]


def context_lines(flag: Flag, masker: Masker) -> list[ContextLine]:
    if flag.message is None:
        return []
    shown = messages_around(flag.message)
    excerpts: dict[int, list[str]] = {}
    for message_id, excerpt in Flag.objects.filter(message_id__in=[m.pk for m in shown]).values_list(
        "message_id", "excerpt"
    ):
        excerpts.setdefault(message_id, []).append(excerpt)
    return [
        ContextLine(
            message_id=m.pk,
            role=m.role,
            status=m.status,
            created_at=m.created_at,
            text=masker.mask(m.content, excerpts.get(m.pk, [])),
            flagged=m.pk == flag.message_id,
            removed=m.content == REMOVED_TEXT,
        )
        for m in shown
    ]


# --- Decisions ---------------------------------------------------------------------------------------


class Decision:
    CONFIRM = "confirm"
    DISMISS = "dismiss"
    SUSPEND = "suspend"
    DELETE = "delete"

    choices = (
        (CONFIRM, "Confirm"),
        (DISMISS, "Dismiss"),
        (SUSPEND, "Suspend user"),
        (DELETE, "Delete message"),
    )


def _confirm(flag: Flag, reviewer: User, note: str) -> str:
    flag_confirm(flag=flag, reviewer=reviewer, note=note)
    return "Flag confirmed."


def _dismiss(flag: Flag, reviewer: User, note: str) -> str:
    flag_dismiss(flag=flag, reviewer=reviewer, note=note)
    return "Flag dismissed."


def flag_subject(flag: Flag) -> User | None:
    """Whose account a flag is about: its user, else the owner of its conversation."""
    if flag.user is not None:
        return flag.user
    return flag.conversation.owner if flag.conversation is not None else None


def _suspend(flag: Flag, reviewer: User, note: str) -> str:
    subject = flag_subject(flag)
    if subject is None:
        raise ModerationError("no_user", "This flag has no user to suspend (the account may have been deleted).")
    user_suspend(user=subject, reviewer=reviewer, reason=note, flag=flag)
    return f"{subject.get_username()} is suspended."


def _delete(flag: Flag, reviewer: User, note: str) -> str:
    if flag.message is None:
        raise ModerationError("no_message", "The flagged message is no longer stored.")
    if flag.message.content == REMOVED_TEXT:
        raise ModerationError("already_removed", "The flagged message was already removed.")
    message_remove(message=flag.message, reviewer=reviewer, note=note, flag=flag)
    return "The message was removed."


DECIDERS: dict[str, Callable[[Flag, User, str], str]] = {
    Decision.CONFIRM: _confirm,
    Decision.DISMISS: _dismiss,
    Decision.SUSPEND: _suspend,
    Decision.DELETE: _delete,
}


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=Decision.choices)
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        # CharField strips whitespace, so a blank note fails `required`: every decision says why.
        help_text="Why: kept in the audit trail with your name.",
    )


class NoteForm(forms.Form):
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text="Why: kept in the audit trail with your name, for each selected item.",
    )


def _reviewer(request: HttpRequest) -> User:
    # The admin only lets authenticated staff this far; services want the concrete user.
    return cast("User", request.user)


def ask_note_then(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    action: str,
    title: str,
    items: Sequence[str],
    apply: Callable[[str], str],
) -> TemplateResponse | None:
    """An admin action in two steps: a page that asks for the note, then `apply(note)` on its post.

    Returning None sends the moderator back to the changelist, where the message is shown.
    """
    form = NoteForm(request.POST if "post" in request.POST else None)
    if form.is_valid():
        model_admin.message_user(request, apply(form.cleaned_data["note"]), messages.SUCCESS)
        return None
    opts = model_admin.model._meta
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": opts,
        "app_label": opts.app_label,
        "items": items,
        "selected": [str(pk) for pk in queryset.values_list("pk", flat=True)],
        "action": action,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "select_across": request.POST.get("select_across", "0"),
        "form": form,
    }
    return TemplateResponse(request, "admin/moderation/action_note.html", context)


# --- Filters -------------------------------------------------------------------------------------------


class UserFilter(admin.SimpleListFilter):
    """Flags of one user, by id: reached from the user column, so it scales to any number of users
    (a choice list of every user would not). Shown only while it is applied, to clear it."""

    title = "user"
    parameter_name = "user"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        value = self.value()
        if not value or not value.isdigit():
            return []
        account = get_user_model().objects.filter(pk=int(value)).first()
        return [(value, account.get_username() if account else f"user {value}")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(user_id=int(value))
        return queryset


class SuspendedUserFilter(admin.SimpleListFilter):
    title = "user suspension"
    parameter_name = "suspended"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("active", "Suspended now"), ("ever", "Ever suspended"), ("never", "Never suspended")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        suspensions = Suspension.objects.filter(user_id=OuterRef("user_id"))
        if self.value() == "active":
            return queryset.filter(Exists(suspensions.filter(ended_at__isnull=True)))
        if self.value() == "ever":
            return queryset.filter(Exists(suspensions))
        if self.value() == "never":
            return queryset.filter(~Exists(suspensions))
        return queryset


class SuspensionStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("active", "Active"), ("ended", "Ended")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "active":
            return queryset.filter(ended_at__isnull=True)
        if self.value() == "ended":
            return queryset.filter(ended_at__isnull=False)
        return queryset


# --- Dashboard ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayRow:
    day: date
    cells: list[tuple[int, str]]  # per category: the count and a link to those flags
    total: int
    open: int
    reviewed: int
    link: str


@dataclass(frozen=True)
class FlagStats:
    categories: list[str]
    rows: list[DayRow]  # newest day first
    category_totals: list[int]
    total: int
    open: int
    reviewed: int


def flag_counts(*, since: datetime) -> list[dict[str, Any]]:
    """Flags per (local day, category) since a moment, with how many are still open: one query."""
    rows = (
        Flag.objects.filter(created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day", "category")
        .annotate(total=Count("id"), open=Count("id", filter=Q(review_status=Flag.Review.OPEN)))
        # Without clearing Meta.ordering its fields would join the GROUP BY and split the counts.
        .order_by()
    )
    return [dict(row) for row in rows]


def flag_stats(*, days: int = DASHBOARD_DAYS, today: date | None = None, changelist_url: str = "") -> FlagStats:
    today = today or timezone.localdate()
    first_day = today - timedelta(days=days - 1)
    cells = flag_counts(since=timezone.make_aware(datetime.combine(first_day, time.min)))
    categories = sorted({cell["category"] for cell in cells})
    counts = {(cell["day"], cell["category"]): cell["total"] for cell in cells}
    open_by_day: dict[date, int] = {}
    for cell in cells:
        open_by_day[cell["day"]] = open_by_day.get(cell["day"], 0) + cell["open"]

    def link(day: date, category: str | None = None) -> str:
        query = {
            "created_at__year": str(day.year),
            "created_at__month": str(day.month),
            "created_at__day": str(day.day),
        }
        if category is not None:
            query["category__exact"] = category
        return f"{changelist_url}?{urlencode(query)}"

    rows: list[DayRow] = []
    for offset in range(days):
        day = today - timedelta(days=offset)
        per_category = [counts.get((day, category), 0) for category in categories]
        total = sum(per_category)
        opened = open_by_day.get(day, 0)
        rows.append(
            DayRow(
                day=day,
                cells=[(n, link(day, c)) for n, c in zip(per_category, categories, strict=True)],
                total=total,
                open=opened,
                reviewed=total - opened,
                link=link(day),
            )
        )
    return FlagStats(
        categories=categories,
        rows=rows,
        category_totals=[sum(counts.get((r.day, c), 0) for r in rows) for c in categories],
        total=sum(r.total for r in rows),
        open=sum(r.open for r in rows),
        reviewed=sum(r.reviewed for r in rows),
    )


# --- Flags -------------------------------------------------------------------------------------------

_STATUS_COLOURS: dict[str, str] = {
    Flag.Review.OPEN: "#ef6c00",
    Flag.Review.CONFIRMED: "#c62828",
    Flag.Review.DISMISSED: "#2e7d32",
}

# Open flags first, then newest. (Sorting on `review_status` itself would put "confirmed" first.)
OPEN_FIRST = Case(When(review_status=Flag.Review.OPEN, then=Value(0)), default=Value(1)).asc()


@admin.register(Flag)
class FlagAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "category",
        "direction",
        "action",
        "score_display",
        "user_link",
        "excerpt_preview",
        "status_badge",
        "reviewer",
        "review_link",
    )
    list_filter = (
        "review_status",
        "category",
        "direction",
        "action",
        SuspendedUserFilter,
        UserFilter,
    )
    list_select_related = ("user", "reviewer")
    search_fields = ("user__username", "reporter__username", "category", "detector")
    search_help_text = "Search by username, category or detector."
    date_hierarchy = "created_at"
    ordering = (OPEN_FIRST, "-created_at")
    actions = ("confirm_selected", "dismiss_selected")
    fieldsets = (
        (
            "Evidence",
            {
                "fields": (
                    "created_at",
                    "direction",
                    "category",
                    "detector",
                    "score",
                    "action",
                    "masked_excerpt",
                    "masked_reason",
                    "latency_ms",
                )
            },
        ),
        ("Where", {"fields": ("user", "reporter", "conversation_link", "message_link")}),
        ("Review", {"fields": ("review_status", "reviewer", "reviewed_at", "decision_note")}),
    )
    readonly_fields = (
        "created_at",
        "direction",
        "category",
        "detector",
        "score",
        "action",
        "masked_excerpt",
        "masked_reason",
        "latency_ms",
        "user",
        "reporter",
        "conversation_link",
        "message_link",
        "review_status",
        "reviewer",
        "reviewed_at",
        "decision_note",
    )

    # Permissions -------------------------------------------------------------------------------------

    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.review_flag")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # flags come from detectors and user reports only

    def has_change_permission(self, request: HttpRequest, obj: Flag | None = None) -> bool:
        # A flag's page is view-only: decisions go through the review page, which records them.
        if obj is not None:
            return False
        return super().has_change_permission(request)

    # Columns ----------------------------------------------------------------------------------------

    @admin.display(description="score", ordering="score")
    def score_display(self, obj: Flag) -> str:
        return f"{obj.score:.2f}"

    @admin.display(description="user", ordering="user__username")
    def user_link(self, obj: Flag) -> str:
        if obj.user is None:
            return "—"
        url = reverse("admin:moderation_flag_changelist") + "?" + urlencode({"user": obj.user_id})
        return format_html('<a href="{}" title="All flags of this user">{}</a>', url, obj.user.get_username())

    @admin.display(description="excerpt")
    def excerpt_preview(self, obj: Flag) -> str:
        return masked_preview(obj.excerpt)

    @admin.display(description="review", ordering="review_status")
    def status_badge(self, obj: Flag) -> str:
        colour = _STATUS_COLOURS.get(obj.review_status, "#555")
        return format_html(
            '<span style="color:#fff;background:{};padding:1px 6px;border-radius:8px">{}</span>',
            colour,
            obj.get_review_status_display(),
        )

    @admin.display(description="")
    def review_link(self, obj: Flag) -> str:
        url = reverse("admin:moderation_flag_review", args=[obj.pk])
        return format_html('<a class="button" href="{}">Review</a>', url)

    @admin.display(description="excerpt (masked)")
    def masked_excerpt(self, obj: Flag) -> str:
        return Masker(pii_detector()).mask(obj.excerpt)

    @admin.display(description="reason (masked)")
    def masked_reason(self, obj: Flag) -> str:
        return Masker(pii_detector()).mask(obj.reason)

    @admin.display(description="conversation")
    def conversation_link(self, obj: Flag) -> str:
        if obj.conversation_id is None:
            return "—"
        url = reverse("admin:conversations_conversation_change", args=[obj.conversation_id])
        return format_html('<a href="{}">{}</a>', url, obj.conversation_id)

    @admin.display(description="message")
    def message_link(self, obj: Flag) -> str:
        if obj.message_id is None:
            return "— (not stored)"
        # Its text is shown, masked, on the review page; the message's own admin page is not masked.
        url = reverse("admin:moderation_flag_review", args=[obj.pk])
        return format_html('<a href="{}">message {} in its conversation</a>', url, obj.message_id)

    # Pages ------------------------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("dashboard/", self.admin_site.admin_view(self.dashboard_view), name=f"{info}_dashboard"),
            path("<int:flag_id>/review/", self.admin_site.admin_view(self.review_view), name=f"{info}_review"),
            *super().get_urls(),
        ]

    def review_view(self, request: HttpRequest, flag_id: int) -> HttpResponse:
        if request.method not in ("GET", "HEAD", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        if not self.has_review_permission(request):
            raise PermissionDenied
        flag = get_object_or_404(
            Flag.objects.select_related("user", "reporter", "reviewer", "conversation__owner", "message").defer(
                "message__embedding"
            ),
            pk=flag_id,
        )
        form = DecisionForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            decision, note = form.cleaned_data["decision"], form.cleaned_data["note"]
            try:
                outcome = DECIDERS[decision](flag, _reviewer(request), note)
            except ModerationError as error:
                form.add_error(None, error.message)
            else:
                self.log_change(request, flag, f"Review: {decision}. Note: {note}")
                self.message_user(request, outcome, messages.SUCCESS)
                return HttpResponseRedirect(self._after_decision_url(flag))
        return TemplateResponse(request, "admin/moderation/flag/review.html", self._review_context(request, flag, form))

    def _after_decision_url(self, decided: Flag) -> str:
        """The next open flag of the queue, so a moderator can work through it; else the queue."""
        following = Flag.objects.filter(review_status=Flag.Review.OPEN).exclude(pk=decided.pk)
        next_id = following.order_by("-created_at").values_list("pk", flat=True).first()
        if next_id is None:
            return reverse("admin:moderation_flag_changelist")
        return reverse("admin:moderation_flag_review", args=[next_id])

    def _review_context(self, request: HttpRequest, flag: Flag, form: DecisionForm) -> dict[str, Any]:
        masker = Masker(pii_detector())
        lines = context_lines(flag, masker)
        subject = flag_subject(flag)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Review flag {flag.pk}",
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "original": flag,
            "flag": flag,
            "lines": lines,
            "excerpt": masker.mask(flag.excerpt),
            "reason": masker.mask(flag.reason),
            "masking_available": masker.available,
            "subject": subject,
            "subject_suspended": subject is not None and user_is_suspended(user_id=subject.pk),
            "subject_flag_count": Flag.objects.filter(user=subject).count() if subject is not None else 0,
            "decisions": flag.decisions.select_related("reviewer", "subject_user"),
            "form": form,
            "can_delete_message": flag.message is not None and flag.message.content != REMOVED_TEXT,
        }
        # Set after masking everything above, so a detector failure on any text is reported.
        context["masking_failed"] = masker.failed
        return context

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        stats = flag_stats(changelist_url=reverse("admin:moderation_flag_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Flags of the last {DASHBOARD_DAYS} days",
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "stats": stats,
            "days": DASHBOARD_DAYS,
        }
        return TemplateResponse(request, "admin/moderation/flag/dashboard.html", context)

    # Actions ----------------------------------------------------------------------------------------

    @admin.action(description="Confirm selected open flags…", permissions=["review"])
    def confirm_selected(self, request: HttpRequest, queryset: QuerySet[Flag]) -> TemplateResponse | None:
        return self._bulk_decide(request, queryset, "confirm_selected", "Confirm", flag_confirm)

    @admin.action(description="Dismiss selected open flags…", permissions=["review"])
    def dismiss_selected(self, request: HttpRequest, queryset: QuerySet[Flag]) -> TemplateResponse | None:
        return self._bulk_decide(request, queryset, "dismiss_selected", "Dismiss", flag_dismiss)

    def _bulk_decide(
        self,
        request: HttpRequest,
        queryset: QuerySet[Flag],
        action: str,
        verb: str,
        decide: Callable[..., Flag],
    ) -> TemplateResponse | None:
        # Only open flags: reversing a decision is a deliberate act on the review page, not a side
        # effect of a broad selection.
        open_flags = list(queryset.filter(review_status=Flag.Review.OPEN).order_by("created_at"))

        def apply(note: str) -> str:
            reviewer = _reviewer(request)
            for flag in open_flags:
                decide(flag=flag, reviewer=reviewer, note=note)
                self.log_change(request, flag, f"Review ({action}): {verb.lower()}. Note: {note}")
            skipped = queryset.count() - len(open_flags)
            done = f"{verb}ed {len(open_flags)} flag(s)."
            return done + (f" {skipped} already reviewed were left as they were." if skipped else "")

        items = [f"{f.pk}: {f.category} ({f.direction}) {masked_preview(f.excerpt, 60)}" for f in open_flags]
        return ask_note_then(
            self,
            request,
            queryset,
            action=action,
            title=f"{verb} {len(open_flags)} open flag(s)",
            items=items,
            apply=apply,
        )


# --- Decisions log -------------------------------------------------------------------------------------


@admin.register(ModerationDecision)
class ModerationDecisionAdmin(admin.ModelAdmin):
    """The audit trail: nobody edits or deletes it from the admin."""

    list_display = ("created_at", "kind", "flag_link", "subject_user", "reviewer", "short_note")
    list_filter = ("kind", ("reviewer", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("flag", "subject_user", "reviewer")
    search_fields = ("subject_user__username", "reviewer__username", "note")
    date_hierarchy = "created_at"
    fields = ("created_at", "kind", "flag_link", "subject_user", "reviewer", "note")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ModerationDecision | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ModerationDecision | None = None) -> bool:
        return False

    @admin.display(description="flag", ordering="flag")
    def flag_link(self, obj: ModerationDecision) -> str:
        if obj.flag_id is None:
            return "—"
        url = reverse("admin:moderation_flag_review", args=[obj.flag_id])
        return format_html('<a href="{}">{} #{}</a>', url, obj.flag.category if obj.flag else "flag", obj.flag_id)

    @admin.display(description="note")
    def short_note(self, obj: ModerationDecision) -> str:
        return Truncator(obj.note).chars(PREVIEW_CHARS)


# --- Suspensions ---------------------------------------------------------------------------------------


class SuspensionAddForm(forms.ModelForm):
    class Meta:
        model = Suspension
        fields = ("user", "reason")

    def clean_user(self) -> Any:
        user = self.cleaned_data["user"]
        if user is not None and user_is_suspended(user_id=user.pk):
            raise forms.ValidationError("This user is already suspended.")
        return user


@admin.register(Suspension)
class SuspensionAdmin(admin.ModelAdmin):
    list_display = ("user", "status_badge", "short_reason", "created_by", "created_at", "ended_at")
    list_filter = (SuspensionStatusFilter,)
    list_select_related = ("user", "created_by")
    search_fields = ("user__username", "reason")
    raw_id_fields = ("user",)
    date_hierarchy = "created_at"
    actions = ("lift_selected",)
    add_form = SuspensionAddForm

    def get_fields(self, request: HttpRequest, obj: Suspension | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("user", "reason")
        return ("user", "reason", "created_by", "created_at", "ended_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Suspension | None = None) -> tuple[str, ...]:
        # A suspension is changed only by lifting it (an action that records who and why).
        return () if obj is None else ("user", "reason", "created_by", "created_at", "ended_at")

    def get_form(self, request: HttpRequest, obj: Suspension | None = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request: HttpRequest, obj: Suspension, form: Any, change: bool) -> None:
        if change:
            return  # nothing on a saved suspension is editable here
        # Through the service, so a suspension made from the admin is in the audit trail too.
        created = user_suspend(user=obj.user, reviewer=_reviewer(request), reason=obj.reason)
        obj.pk = created.pk
        obj.created_by = created.created_by
        obj.created_at = created.created_at
        obj._state.adding = False

    @admin.display(description="status", ordering="ended_at")
    def status_badge(self, obj: Suspension) -> str:
        if obj.ended_at is None:
            return format_html('<b style="color:{}">{}</b>', "#c62828", "active")
        return format_html('<span style="color:{}">{}</span>', "#555", "ended")

    @admin.display(description="reason")
    def short_reason(self, obj: Suspension) -> str:
        return Truncator(obj.reason).chars(PREVIEW_CHARS)

    @admin.action(description="Lift selected suspensions…", permissions=["change"])
    def lift_selected(self, request: HttpRequest, queryset: QuerySet[Suspension]) -> TemplateResponse | None:
        active = list(queryset.filter(ended_at__isnull=True).select_related("user"))

        def apply(note: str) -> str:
            reviewer = _reviewer(request)
            for suspension in active:
                user_unsuspend(user=suspension.user, reviewer=reviewer, note=note)
                self.log_change(request, suspension, f"Lifted. Note: {note}")
            return f"Lifted {len(active)} suspension(s)."

        return ask_note_then(
            self,
            request,
            queryset,
            action="lift_selected",
            title=f"Lift {len(active)} active suspension(s)",
            items=[f"{s.user.get_username()}: {Truncator(s.reason).chars(60)}" for s in active],
            apply=apply,
        )
