"""The memory page: what the product remembers about the user, with the controls to change it.

Every write is a POST with a CSRF token that redirects back to the page with a notice (PRG), or
answers JSON when the request asks for it (`Accept: application/json`), as the chat views do. A
fact id that is not the user's is a 404 and changes nothing: the services look facts up by owner.

`context_gauge` also lives here: it turns a reply's context report into what the chat page shows
under the reply (the same numbers chat.js computes from a live `done` frame).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince
from django.views.decorators.http import require_GET, require_POST

from conversations.models import Conversation
from memory.models import UserFact
from memory.selectors import facts_for_user, memory_enabled
from memory.services import MemoryError, fact_delete, fact_update, facts_delete_all, memory_set_enabled

TRUE_VALUES = ("1", "true", "on", "yes")
FALSE_VALUES = ("0", "false", "off", "no")


# --- the page -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FactRow:
    """A fact as the page shows it: where it came from, if that is still there to open."""

    fact: UserFact
    source_url: str | None
    source_title: str
    learned: str
    changed: str


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # login_required guards every view here
    return user


def _ago(moment: datetime) -> str:
    if timezone.now() - moment < timedelta(minutes=1):
        return "just now"
    return f"{timesince(moment, depth=1)} ago"


def _changed(fact: UserFact) -> str:
    if fact.edited_by_user:
        return f"edited by you {_ago(fact.updated_at)}"
    if fact.previous_text:  # restated later, so the newer statement replaced the older one
        return f"updated {_ago(fact.updated_at)}"
    return ""


def _fact_rows(user: User) -> list[FactRow]:
    facts = facts_for_user(user_id=user.pk)
    conversation_ids = {f.source_message.conversation_id for f in facts if f.source_message is not None}
    # One query for the sources' conversations: a deleted (or someone else's) one is no source to open.
    titles = dict(
        Conversation.objects.filter(pk__in=conversation_ids, owner=user, deleted_at__isnull=True).values_list(
            "pk", "title"
        )
    )
    rows: list[FactRow] = []
    for fact in facts:
        source = fact.source_message
        url, title = None, ""
        if source is not None and source.conversation_id in titles:
            path = reverse("conversation-detail", kwargs={"conversation_id": source.conversation_id})
            url, title = f"{path}#m-{source.pk}", titles[source.conversation_id]
        rows.append(FactRow(fact, url, title, _ago(fact.created_at), _changed(fact)))
    return rows


def _fact_json(row: FactRow) -> dict[str, Any]:
    return {
        "id": row.fact.pk,
        "text": row.fact.text,
        "created_at": row.fact.created_at.isoformat(),
        "updated_at": row.fact.updated_at.isoformat(),
        "edited_by_user": row.fact.edited_by_user,
        "source_url": row.source_url,
    }


def _render_page(
    request: HttpRequest, *, editing: int | None = None, draft: str = "", error: str = "", status: int = 200
) -> HttpResponse:
    user = _user(request)
    rows = _fact_rows(user)
    context = {
        "memory_on": memory_enabled(user_id=user.pk),
        "rows": rows,
        "editing": editing,
        "edit_draft": draft,
        "edit_error": error,
    }
    return render(request, "memory/memory.html", context, status=status)


@login_required
@require_GET
def memory_page(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        user = _user(request)
        rows = _fact_rows(user)
        return JsonResponse({"enabled": memory_enabled(user_id=user.pk), "facts": [_fact_json(r) for r in rows]})
    return _render_page(request)


# --- writes -------------------------------------------------------------------------------------


def _back(request: HttpRequest, notice: str, *, anchor: str = "") -> HttpResponse:
    messages.success(request, notice)
    return redirect(reverse("memory") + (f"#{anchor}" if anchor else ""))


def _error_json(error: MemoryError) -> JsonResponse:
    return JsonResponse(
        {"error": {"code": error.code, "message": error.message}}, status=404 if error.code == "not_found" else 400
    )


@login_required
@require_POST
def memory_toggle(request: HttpRequest) -> HttpResponse:
    value = request.POST.get("enabled", "").strip().lower()
    if value not in TRUE_VALUES + FALSE_VALUES:
        if _wants_json(request):
            return JsonResponse({"error": {"code": "invalid", "message": "Say whether memory is on."}}, status=400)
        messages.error(request, "Say whether memory should be on or off.")
        return redirect("memory")
    profile = memory_set_enabled(user=_user(request), enabled=value in TRUE_VALUES)
    if _wants_json(request):
        return JsonResponse({"enabled": profile.enabled})
    if profile.enabled:
        return _back(request, "Memory is on. New facts you share will be remembered and used in replies.")
    return _back(request, "Memory is off. Nothing new will be remembered, and saved memories won’t be used.")


@login_required
@require_POST
def fact_edit(request: HttpRequest, fact_id: int) -> HttpResponse:
    text = request.POST.get("text", "")
    try:
        fact = fact_update(user=_user(request), fact_id=fact_id, text=text)
    except MemoryError as exc:
        if _wants_json(request):
            return _error_json(exc)
        if exc.code == "not_found":
            raise Http404(exc.message) from exc
        # Shown beside the form, with what was typed kept, rather than lost in a redirect.
        return _render_page(request, editing=fact_id, draft=text, error=exc.message, status=400)
    if _wants_json(request):
        return JsonResponse({"fact": {"id": fact.pk, "text": fact.text, "updated_at": fact.updated_at.isoformat()}})
    return _back(request, "Memory updated.", anchor=f"fact-{fact.pk}")


@login_required
@require_POST
def fact_remove(request: HttpRequest, fact_id: int) -> HttpResponse:
    try:
        fact_delete(user=_user(request), fact_id=fact_id)
    except MemoryError as exc:
        if _wants_json(request):
            return _error_json(exc)
        raise Http404(exc.message) from exc
    if _wants_json(request):
        return JsonResponse({"deleted": fact_id})
    return _back(request, "Memory deleted.")


@login_required
@require_POST
def facts_remove_all(request: HttpRequest) -> HttpResponse:
    if request.POST.get("confirm") != "yes":  # the page asks first; so must any other client
        if _wants_json(request):
            return JsonResponse(
                {"error": {"code": "confirm_required", "message": "Send confirm=yes to delete every memory."}},
                status=400,
            )
        messages.error(request, "Nothing was deleted: confirm to delete all memories.")
        return redirect("memory")
    deleted = facts_delete_all(user=_user(request))
    if _wants_json(request):
        return JsonResponse({"deleted": deleted})
    if deleted == 0:
        return _back(request, "There were no memories to delete.")
    return _back(request, "Deleted your one memory." if deleted == 1 else f"Deleted all {deleted} memories.")


# --- the context gauge under each reply ----------------------------------------------------------

# Tier keys of the context report, in the builder's priority order, with what the gauge calls them.
TIERS = (
    ("system", "Instructions"),
    ("user", "Your message"),
    ("recent", "Recent turns"),
    ("summary", "Summary"),
    ("recalled", "Recalled turns"),
    ("facts", "Facts"),
    ("older", "Older turns"),
)
COUNTED = {"recent": "turn", "recalled": "turn", "facts": "fact", "older": "turn"}
DROPPED_NOUNS = {"recent": "recent turn", "recalled": "recalled turn", "facts": "fact", "older": "older turn"}


def compact_tokens(n: int) -> str:
    """2104 -> "2.1k", 8192 -> "8k", 128000 -> "128k", 131072 -> "128k", 1_048_576 -> "1M"; chat.js alike."""
    if n < 1000:
        return str(n)
    kibi = n // 1024
    if n % 1024 == 0 and kibi < 1024 and kibi & (kibi - 1) == 0:  # windows sized 2^k: 8192 is "8k"
        return f"{kibi}k"
    if n < 10_000:
        return f"{n / 1000:.1f}".removesuffix(".0") + "k"
    if n < 1_000_000:
        return f"{round(n / 1000)}k"
    if n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)}M"
    return f"{n / 1_000_000:.1f}".removesuffix(".0") + "M"


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _int(value: object) -> int:
    try:
        return max(int(value), 0)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def context_gauge(report: Mapping[str, Any] | None, *, reply_tokens: int | None = None) -> dict[str, Any] | None:
    """What the gauge under a reply shows, from its context report; None when there is none."""
    if not isinstance(report, Mapping) or not report:
        return None
    window = _int(report.get("window"))
    budget = _int(report.get("budget"))
    used = _int(report.get("tokens_used"))
    tiers, included, dropped_counts = (_mapping(report.get(part)) for part in ("tiers", "included", "dropped"))

    def share(tokens: int) -> float:
        return round(min(tokens / window * 100, 100.0), 2) if window else 0.0

    segments = []
    brief: list[str] = []
    for key, label in TIERS:
        tokens = _int(tiers.get(key))
        count = _int(included.get(key)) if key in COUNTED else None
        if tokens == 0 and key not in ("system", "user"):
            continue
        segments.append(
            {
                "key": key,
                "label": label,
                "tokens": tokens,
                "tokens_text": f"{tokens:,}",
                "count": _plural(count, COUNTED[key]) if count is not None else "",
                "percent": share(tokens),
                "width": f"{share(tokens):.2f}%",
            }
        )
        if key in ("recent", "summary"):
            brief.append(f"{key} {tokens:,}")
        elif key == "recalled":
            brief.append(f"recalled {_plural(_int(included.get(key)), 'turn')}")
        elif key == "facts":
            brief.append(f"facts {_int(included.get(key))}")
        elif key == "older":
            brief.append(f"older {_plural(_int(included.get(key)), 'turn')}")
    dropped = [
        _plural(_int(dropped_counts.get(key)), noun) for key, noun in DROPPED_NOUNS.items() if dropped_counts.get(key)
    ]
    if _int(dropped_counts.get("summary")):
        dropped.insert(0, "the summary")
    brief += [f"dropped {item}" for item in dropped]
    ratio = used / budget if budget else 0.0
    title = f"Context: {used:,} of {window:,} tokens"
    if brief:
        title += " · " + " · ".join(brief)
    return {
        "used": used,
        "window": window,
        "budget": budget,
        "reserved": max(window - budget, 0),
        "used_text": f"{used:,}",
        "window_text": f"{window:,}",
        "reserved_text": f"{max(window - budget, 0):,}",
        "used_label": compact_tokens(used),
        "window_label": compact_tokens(window),
        "percent": share(used),
        "level": "full" if ratio >= 0.9 else "high" if ratio >= 0.7 else "ok",
        "segments": segments,
        "dropped": dropped,
        "truncated": bool(report.get("truncated_user_message")),
        "brief": " · ".join(brief),
        "title": title,
        "reply_tokens": f"{reply_tokens:,}" if reply_tokens else "",
    }
