"""Image uploads and their only way back out: a view that checks the owner (never a public URL)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from conversations.selectors import attachment_payload
from conversations.services.attachments import AttachmentRejected, attachment_create, attachment_get_for_user


def _error(code: str, message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


@login_required
@require_POST
def attachment_upload(request: HttpRequest) -> HttpResponse:
    """Store one image (multipart field `file`); answer its id, which a `send` frame then names."""
    upload = request.FILES.get("file")
    if upload is None:
        return _error("no_file", 'Attach an image in the multipart field "file".')
    try:
        attachment = attachment_create(owner=request.user, upload=upload)  # type: ignore[arg-type]
    except AttachmentRejected as exc:
        return _error(exc.code, exc.message)
    return JsonResponse({**attachment_payload(attachment), "bytes": attachment.bytes}, status=201)


@login_required
@require_GET
def attachment_file(request: HttpRequest, attachment_id: str) -> FileResponse:
    """The image itself, to its owner only: anyone else gets the same 404 as for an unknown id."""
    attachment = attachment_get_for_user(user_id=int(request.user.pk or 0), attachment_id=attachment_id)
    if attachment is None:
        raise Http404("No such image.")
    response = FileResponse(attachment.file.open("rb"), content_type=attachment.content_type)
    response["Content-Disposition"] = "inline"
    # Personal content: browsers may keep it, shared caches may not.
    response["Cache-Control"] = "private, max-age=3600"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
