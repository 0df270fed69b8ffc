"""Server-rendered chat pages. Streaming happens over the socket; these render what is stored."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from conversations.limits.budgets import (
    USAGE_DAYS,
    BudgetStatus,
    budget_status,
    reset_phrase,
    usage_by_day,
    usage_by_model,
)
from conversations.models import Conversation
from conversations.selectors import (
    branch_messages,
    conversation_get_for_user,
    conversations_for_user,
    message_payload,
)
from conversations.services.messages import TurnRejected, conversation_delete, conversation_rename
from moderation.services import user_is_suspended


def _conversation_or_404(request: HttpRequest, conversation_id: str) -> Conversation:
    conversation = conversation_get_for_user(user=request.user, conversation_id=conversation_id)
    if conversation is None:
        raise Http404("No such conversation.")
    return conversation


def _page_context(request: HttpRequest, conversation: Conversation | None) -> dict[str, Any]:
    from memory.selectors import current_summary
    from memory.views import context_gauge

    messages = branch_messages(conversation=conversation) if conversation else []
    payloads = [message_payload(m) for m in messages]
    return {
        "conversations": conversations_for_user(user=request.user).filter(archived=False)[:200],
        "conversation": conversation,
        # Each message with the context gauge its footer shows (None when it has no context report).
        "messages": [
            {**p, "gauge": context_gauge(p["context"], reply_tokens=p["completion_tokens"])} for p in payloads
        ],
        "summary": current_summary(conversation_id=conversation.pk) if conversation else None,
        "chat_config": {
            "conversationId": str(conversation.pk) if conversation else None,
            "socketPath": "/ws/chat/",
            "maxMessageChars": settings.CHAT_MAX_MESSAGE_CHARS,
            "streaming": [{"messageId": p["id"], "seq": p["seq"]} for p in payloads if p["status"] == "streaming"],
            "suspended": user_is_suspended(user_id=int(request.user.pk or 0)),  # pages need a login
            "suspendedMessage": "Your account is suspended, so you cannot send messages. Contact the operator.",
        },
    }


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/chat.html", _page_context(request, None))


@login_required
@require_GET
def conversation_detail(request: HttpRequest, conversation_id: str) -> HttpResponse:
    conversation = _conversation_or_404(request, conversation_id)
    return render(request, "chat/chat.html", _page_context(request, conversation))


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
