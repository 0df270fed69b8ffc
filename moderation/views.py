"""The user's side of moderation: reporting a reply."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from conversations.models import Message
from conversations.selectors import conversation_get_for_user
from moderation.services import ModerationError, report_create


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@login_required
@require_POST
def report_reply(request: HttpRequest, conversation_id: str, message_id: int) -> HttpResponse:
    """Report an assistant reply in one of the user's own conversations, with a reason."""
    conversation = conversation_get_for_user(user=request.user, conversation_id=conversation_id)
    message = (
        Message.objects.filter(pk=message_id, conversation=conversation).defer("embedding").first()
        if conversation
        else None
    )
    if message is None:
        raise Http404("No such message.")
    try:
        flag = report_create(reporter=request.user, message=message, reason=request.POST.get("reason", ""))  # type: ignore[arg-type]
    except ModerationError as exc:
        if _wants_json(request):
            return JsonResponse({"error": {"code": exc.code, "message": exc.message}}, status=400)
        messages.error(request, exc.message)
        return redirect("conversation-detail", conversation_id=conversation_id)
    if _wants_json(request):
        return JsonResponse({"reported": message.pk, "flag": flag.pk}, status=201)
    messages.success(request, "Thank you: a moderator will look at this reply.")
    return redirect("conversation-detail", conversation_id=conversation_id)
