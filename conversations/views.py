"""Server-rendered chat pages. Streaming happens over the socket; these render what is stored."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.db.models import prefetch_related_objects
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from conversations.limits.budgets import (
    USAGE_DAYS,
    BudgetStatus,
    budget_status,
    reset_phrase,
    usage_by_day,
    usage_by_model,
)
from conversations.models import Conversation, SharedConversation
from conversations.rendering import render_markdown
from conversations.search import DEFAULT_LIMIT as DEFAULT_SEARCH_LIMIT
from conversations.search import SearchQueryInvalid, messages_search
from conversations.selectors import (
    branch_messages,
    conversation_forks,
    conversation_get_for_user,
    conversations_for_user,
    message_payload,
)
from conversations.services.exports import (
    ImportRejected,
    conversations_export_json,
    conversations_export_markdown,
    conversations_import,
    import_max_bytes,
    import_size_check,
)
from conversations.services.messages import TurnRejected, branch_select, conversation_delete, conversation_rename
from conversations.services.organise import (
    conversation_archive,
    conversation_pin,
    flag_value_parse,
    temporary_chat_create,
)
from conversations.services.shares import (
    ShareError,
    share_continue,
    share_create,
    share_for_token,
    share_revoke,
    shares_for_user,
)
from moderation.services import user_is_suspended


def _conversation_or_404(request: HttpRequest, conversation_id: str) -> Conversation:
    conversation = conversation_get_for_user(user=request.user, conversation_id=conversation_id)
    if conversation is None:
        raise Http404("No such conversation.")
    return conversation


def branch_position(siblings: list[int] | None, message_id: int) -> dict[str, Any] | None:
    """Where a message stands among its siblings, for its "‹ 2 / 3 ›" controls; None alone."""
    if not siblings or len(siblings) < 2 or message_id not in siblings:
        return None
    index = siblings.index(message_id)
    return {
        "index": index + 1,
        "count": len(siblings),
        "previous": siblings[index - 1] if index > 0 else None,
        "next": siblings[index + 1] if index + 1 < len(siblings) else None,
    }


def _page_context(request: HttpRequest, conversation: Conversation | None) -> dict[str, Any]:
    from memory.selectors import summary_for_branch
    from memory.views import context_gauge

    messages = branch_messages(conversation=conversation) if conversation else []
    prefetch_related_objects(messages, "attachments")
    forks = conversation_forks(conversation_id=conversation.pk) if conversation else {}
    payloads = [message_payload(m, siblings=forks.get(m.parent_id)) for m in messages]
    return {
        # Archived chats have their own page; temporary ones stay out of the history by design.
        "conversations": conversations_for_user(user=request.user).filter(archived=False, temporary=False)[:200],
        "conversation": conversation,
        # Each message with the context gauge its footer shows (None when it has no context report).
        "messages": [
            {
                **p,
                "gauge": context_gauge(p["context"], reply_tokens=p["completion_tokens"]),
                "branch": branch_position(p.get("siblings"), p["id"]),
            }
            for p in payloads
        ],
        "summary": (
            summary_for_branch(conversation_id=conversation.pk, leaf_id=conversation.active_leaf_id)
            if conversation
            else None
        ),
        "chat_config": {
            "conversationId": str(conversation.pk) if conversation else None,
            "socketPath": "/ws/chat/",
            "maxMessageChars": settings.CHAT_MAX_MESSAGE_CHARS,
            "streaming": [{"messageId": p["id"], "seq": p["seq"]} for p in payloads if p["status"] == "streaming"],
            "suspended": user_is_suspended(user_id=int(request.user.pk or 0)),  # pages need a login
            "suspendedMessage": "Your account is suspended, so you cannot send messages. Contact the operator.",
        },
        "temporary_retention_hours": settings.TEMPORARY_CHAT_RETENTION_HOURS,
    }


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/chat.html", _page_context(request, None))


@login_required
@require_GET
def conversation_detail(request: HttpRequest, conversation_id: str) -> HttpResponse:
    conversation = _conversation_or_404(request, conversation_id)
    _show_branch_of_linked_message(request, conversation)
    return render(request, "chat/chat.html", _page_context(request, conversation))


def _show_branch_of_linked_message(request: HttpRequest, conversation: Conversation) -> None:
    """A link into a message (`?m=<id>`, as search results give) shows the branch it is on, as if
    the user had switched to it; a message already on screen, or a reply still streaming, leaves
    the conversation as it is."""
    raw = request.GET.get("m", "")
    if not raw.isdigit():
        return
    message_id = int(raw)
    if any(message.pk == message_id for message in branch_messages(conversation=conversation)):
        return
    try:
        branch_select(user=request.user, conversation_id=str(conversation.pk), message_id=message_id)  # type: ignore[arg-type]
    except TurnRejected:
        return
    conversation.refresh_from_db()


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@login_required
@require_POST
def conversation_rename_view(request: HttpRequest, conversation_id: str) -> HttpResponse:
    conversation = _conversation_or_404(request, conversation_id)
    try:
        conversation_rename(conversation=conversation, title=request.POST.get("title", ""))
    except TurnRejected as exc:
        if _wants_json(request):
            return JsonResponse({"error": {"code": exc.code, "message": exc.message}}, status=400)
        return redirect("conversation-detail", conversation_id=conversation.pk)
    if _wants_json(request):
        return JsonResponse({"id": str(conversation.pk), "title": conversation.title})
    return redirect("conversation-detail", conversation_id=conversation.pk)


@login_required
@require_POST
def conversation_delete_view(request: HttpRequest, conversation_id: str) -> HttpResponse:
    conversation = _conversation_or_404(request, conversation_id)
    conversation_delete(conversation=conversation)
    if _wants_json(request):
        return JsonResponse({"deleted": str(conversation.pk)})
    return HttpResponseRedirect(reverse("chat-home"))


def _organise(request: HttpRequest, conversation_id: str, field: str) -> HttpResponse:
    """Set one of a conversation's organising switches (pinned, archived) from a POST field."""
    conversation = _conversation_or_404(request, conversation_id)
    try:
        value = flag_value_parse(name=field, raw=request.POST.get(field))
    except TurnRejected as exc:
        if _wants_json(request):
            return JsonResponse({"error": {"code": exc.code, "message": exc.message}}, status=400)
        return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
    if field == "pinned":
        conversation_pin(conversation=conversation, pinned=value)
    else:
        conversation_archive(conversation=conversation, archived=value)
    if _wants_json(request):
        return JsonResponse(
            {"id": str(conversation.pk), "pinned": conversation.pinned, "archived": conversation.archived}
        )
    # The archive page's forms come back to it; the chat page's to the conversation.
    if request.POST.get("next") == "archived":
        return redirect("archived-conversations")
    return redirect("conversation-detail", conversation_id=conversation.pk)


@login_required
@require_POST
def conversation_pin_view(request: HttpRequest, conversation_id: str) -> HttpResponse:
    return _organise(request, conversation_id, "pinned")


@login_required
@require_POST
def conversation_archive_view(request: HttpRequest, conversation_id: str) -> HttpResponse:
    return _organise(request, conversation_id, "archived")


@login_required
@require_GET
def archived_page(request: HttpRequest) -> HttpResponse:
    """The archived conversations, newest activity first, each with a way back to the sidebar."""
    archived = conversations_for_user(user=request.user).filter(archived=True).order_by("-updated_at")[:500]
    return render(request, "conversations/archived.html", {"archived": archived})


@login_required
@require_POST
def temporary_chat_view(request: HttpRequest) -> HttpResponse:
    """Open a new temporary chat: never in memory, never in the sidebar, deleted after a while."""
    conversation = temporary_chat_create(owner=request.user)  # type: ignore[arg-type]  # login_required
    if _wants_json(request):
        return JsonResponse({"id": str(conversation.pk), "url": reverse("conversation-detail", args=[conversation.pk])})
    return redirect("conversation-detail", conversation_id=conversation.pk)


# --- search across the user's own conversations (conversations/search.py) ------------------------


def _search_limit(request: HttpRequest) -> int:
    try:
        return int(request.GET.get("limit", DEFAULT_SEARCH_LIMIT))
    except ValueError:
        return DEFAULT_SEARCH_LIMIT


@login_required
@require_GET
def search_page(request: HttpRequest) -> HttpResponse:
    """The search form, and with ?q= the best matches, each linking to its message."""
    query = request.GET.get("q", "")
    context: dict[str, Any] = {"query": query, "hits": [], "error": None, "searched": bool(query.strip())}
    if context["searched"]:
        try:
            context["hits"] = messages_search(user_id=int(request.user.pk or 0), query=query)
        except SearchQueryInvalid as exc:
            context["error"] = exc.message
    return render(request, "search.html", context, status=400 if context["error"] else 200)


@require_GET
def search_json(request: HttpRequest) -> JsonResponse:
    """GET ?q=&limit= as JSON; `snippet_html` is escaped HTML whose only tags are <mark>."""
    if not request.user.is_authenticated:
        return JsonResponse({"error": {"code": "not_signed_in", "message": "Sign in to search."}}, status=401)
    query = request.GET.get("q", "")
    try:
        hits = messages_search(user_id=int(request.user.pk or 0), query=query, limit=_search_limit(request))
    except SearchQueryInvalid as exc:
        return JsonResponse({"error": {"code": exc.code, "message": exc.message}}, status=400)
    return JsonResponse({"query": query, "results": [hit.as_json() for hit in hits]})


# --- the user's own usage -----------------------------------------------------------------------


def _budget_rows(status: BudgetStatus, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for period in status.periods:
        spent = period.used + period.reserved
        rows.append(
            {
                "status": period,
                "title": "Today" if period.period == "day" else "This month",
                "percent": 0 if period.unlimited else min(100, round(100 * spent / period.limit)),
                "resets": reset_phrase(period.period, period.resets_at, now),
            }
        )
    return rows


@login_required
@require_GET
def usage_page(request: HttpRequest) -> HttpResponse:
    """Tokens and cost per day (last 30) and per model, and what remains of the budgets."""
    user_id = int(request.user.pk or 0)  # login_required
    now = timezone.now()
    days = usage_by_day(user_id=user_id, now=now)
    models = usage_by_model(user_id=user_id, now=now)
    busiest = max((row.tokens for row in days), default=0)
    status = budget_status(user_id=user_id, now=now)
    return render(
        request,
        "conversations/usage.html",
        {
            "plan": status.plan,
            "budgets": _budget_rows(status, now),
            "days": [{"row": row, "bar": round(100 * row.tokens / busiest) if busiest else 0} for row in days],
            "models": models,
            "total_tokens": sum(row.tokens for row in days),
            "total_cost": sum((row.cost for row in days), Decimal("0")),
            "window_days": USAGE_DAYS,
        },
    )


# --- export, import and share links (docs/data.md) -------------------------------------------------


def _signed_in_user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # login_required guards these views
    return user


def _download(body: str, *, filename: str, content_type: str) -> HttpResponse:
    response = HttpResponse(body, content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


EXPORT_FORMATS = ("json", "md")


def _export_response(conversations: list[Conversation], *, fmt: str, name: str) -> HttpResponse:
    if fmt not in EXPORT_FORMATS:
        raise Http404("Exports are .json or .md files.")
    if fmt == "md":
        body = conversations_export_markdown(conversations=conversations)
        return _download(body, filename=f"{name}.md", content_type="text/markdown")
    body = conversations_export_json(conversations=conversations)
    return _download(body, filename=f"{name}.json", content_type="application/json")


@login_required
@require_GET
def conversation_export_view(request: HttpRequest, conversation_id: str, fmt: str) -> HttpResponse:
    """One conversation: the whole tree as JSON, or the branch shown as Markdown."""
    conversation = _conversation_or_404(request, conversation_id)
    return _export_response([conversation], fmt=fmt, name=slugify(conversation.title)[:60] or "conversation")


@login_required
@require_GET
def conversations_export_view(request: HttpRequest, fmt: str) -> HttpResponse:
    """Every conversation of the user, in one file."""
    conversations = list(conversations_for_user(user=request.user).order_by("created_at"))
    return _export_response(conversations, fmt=fmt, name=f"conversations-{timezone.now():%Y-%m-%d}")


def _data_page(request: HttpRequest, *, status: int = 200, **extra: Any) -> HttpResponse:
    context = {
        "conversation_count": conversations_for_user(user=request.user).count(),
        "share_count": shares_for_user(user=request.user).filter(revoked_at__isnull=True).count(),
        "import_max_mb": import_max_bytes() // (1024 * 1024),
        **extra,
    }
    return render(request, "conversations/data.html", context, status=status)


@login_required
@require_GET
def data_page(request: HttpRequest) -> HttpResponse:
    return _data_page(request)


@login_required
@require_POST
def data_import_view(request: HttpRequest) -> HttpResponse:
    """Import an uploaded export; the page answers with the report (or the reason for refusing)."""
    upload = request.FILES.get("file")
    if upload is None:
        return _data_page(request, status=400, import_error="Choose a file to import.")
    try:
        # By size first, before reading: a large upload sits in a temporary file, not in memory.
        import_size_check(size=upload.size or 0)
        report = conversations_import(owner=_signed_in_user(request), raw=upload.read())
    except ImportRejected as exc:
        return _data_page(request, status=400, import_error=exc.message)
    return _data_page(request, report=report)


@login_required
@require_POST
def conversation_share_view(request: HttpRequest, conversation_id: str) -> HttpResponse:
    conversation = _conversation_or_404(request, conversation_id)
    try:
        share = share_create(conversation=conversation, owner=_signed_in_user(request))
    except ShareError as exc:
        flash.error(request, exc.message)  # the chat page shows no notices; the shares page does
        return redirect("shares")
    flash.success(request, f"Anyone with the link can now read “{share.title}” as it is now.")
    return redirect(f"{reverse('shares')}#share-{share.pk}")


@login_required
@require_GET
def shares_page(request: HttpRequest) -> HttpResponse:
    shares = shares_for_user(user=request.user).select_related("conversation")
    rows = [{"share": s, "url": request.build_absolute_uri(reverse("shared", args=[s.token]))} for s in shares]
    response = render(request, "conversations/shares.html", {"rows": rows})
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def share_revoke_view(request: HttpRequest, share_id: int) -> HttpResponse:
    try:
        share = share_revoke(owner=_signed_in_user(request), share_id=share_id)
    except ShareError:
        raise Http404("No such shared link.") from None
    flash.success(request, f"Revoked the link to “{share.title}”. It no longer opens.")
    return redirect("shares")


def _live_share_or_404(token: str) -> SharedConversation:
    share = share_for_token(token=token)
    if share is None:
        raise Http404("This link does not exist or was revoked.")
    return share


@require_GET
def shared_conversation_view(request: HttpRequest, token: str) -> HttpResponse:
    """The read-only snapshot behind a share link; no sign-in needed."""
    share = _live_share_or_404(token)
    messages = [
        {**entry, "html": render_markdown(entry["content"]) if entry["role"] == "assistant" else ""}
        for entry in share.snapshot
    ]
    response = render(request, "conversations/shared.html", {"share": share, "messages": messages})
    # Revoking must take effect at once: no cache may keep a copy. The token is the key, so it
    # must not leave in a Referer header, and search engines must not list it.
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


@require_POST
def share_continue_view(request: HttpRequest, token: str) -> HttpResponse:
    share = _live_share_or_404(token)
    if not request.user.is_authenticated:
        return redirect_to_login(reverse("shared", args=[token]))
    conversation = share_continue(share=share, user=_signed_in_user(request))
    return redirect("conversation-detail", conversation_id=conversation.pk)
