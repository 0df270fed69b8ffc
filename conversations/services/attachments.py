"""Images attached to messages: validate and store an upload, claim it for a message, read it back
for a prompt.

An upload is judged by its content, never by its name or the type the browser claims: Pillow must
recognise it as PNG, JPEG, WebP or GIF, its header dimensions must be within limits before anything
is decoded, and it must then decode whole. Files go through Django's default storage (the file
system, or any store STORAGES names) under random names, and are only served by a view that checks
the owner. An upload belongs to nobody's message until a send claims it; a send may claim only
its owner's unsent uploads.
"""

from __future__ import annotations

import base64
import hashlib
import io
import uuid
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from PIL import Image, UnidentifiedImageError

from conversations.models import Attachment, Message
from conversations.services.messages import TurnRejected
from memory.context import ImageRef

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.core.files.uploadedfile import UploadedFile

# Pillow's format names → the content type stored and served, and the file extension.
ALLOWED_FORMATS: dict[str, tuple[str, str]] = {
    "PNG": ("image/png", "png"),
    "JPEG": ("image/jpeg", "jpg"),
    "WEBP": ("image/webp", "webp"),
    "GIF": ("image/gif", "gif"),
}


class AttachmentRejected(TurnRejected):
    """An image the product refuses, with a code clients can act on and words a person can read."""


@dataclass(frozen=True)
class ImageFacts:
    format: str
    content_type: str
    extension: str
    width: int
    height: int


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def image_inspect(data: bytes) -> ImageFacts:
    """What the bytes are, or AttachmentRejected: type by content, dimensions before decoding
    (a small file can hold an enormous bitmap), then a full decode to catch damaged files."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                facts = _facts(image)
                image.load()
    except AttachmentRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels() from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise AttachmentRejected(
            "not_an_image", "That file is not an image the product can read (PNG, JPEG, WebP or GIF)."
        ) from None
    return facts


def _facts(image: Image.Image) -> ImageFacts:
    allowed = ALLOWED_FORMATS.get(image.format or "")
    if allowed is None:
        raise AttachmentRejected(
            "unsupported_image_type", f"{image.format or 'That'} images are not accepted; use PNG, JPEG, WebP or GIF."
        )
    width, height = image.size
    max_side = int(settings.IMAGE_MAX_SIDE)
    if width > max_side or height > max_side:
        raise AttachmentRejected(
            "image_too_large_dimensions",
            f"That image is {width}×{height} pixels; each side may be at most {max_side:,} pixels.",
        )
    if width * height > int(settings.IMAGE_MAX_PIXELS):
        raise _too_many_pixels(width, height)
    return ImageFacts(image.format or "", allowed[0], allowed[1], width, height)


def _too_many_pixels(width: int | None = None, height: int | None = None) -> AttachmentRejected:
    size = f" ({width}×{height})" if width and height else ""
    return AttachmentRejected(
        "image_too_large_dimensions",
        f"That image has too many pixels{size}; the limit is {int(settings.IMAGE_MAX_PIXELS):,} pixels.",
    )


def _read_bounded(upload: UploadedFile) -> bytes:
    limit = int(settings.IMAGE_MAX_BYTES)
    too_large = AttachmentRejected(
        "image_too_large", f"That image is larger than {_megabytes(limit)}; the limit is {_megabytes(limit)}."
    )
    if upload.size is not None and upload.size > limit:
        raise AttachmentRejected(
            "image_too_large", f"That image is {_megabytes(upload.size)}; the limit is {_megabytes(limit)}."
        )
    upload.seek(0)
    data = upload.read(limit + 1)
    if len(data) > limit:  # the declared size lied
        raise too_large
    if not data:
        raise AttachmentRejected("empty_file", "That file is empty.")
    return data


def attachment_create(*, owner: User, upload: UploadedFile) -> Attachment:
    """Validate an uploaded image and store it for its owner, not yet linked to a message.

    Refused uploads raise AttachmentRejected and store nothing; a file written whose row then
    fails to save is deleted again.
    """
    data = _read_bounded(upload)
    facts = image_inspect(data)
    attachment = Attachment(
        owner=owner,
        content_type=facts.content_type,
        width=facts.width,
        height=facts.height,
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    attachment.file.save(f"image.{facts.extension}", ContentFile(data), save=False)
    try:
        attachment.save()
    except Exception:
        if attachment.file.name:
            attachment.file.storage.delete(attachment.file.name)
        raise
    return attachment


def attachment_ids_parse(value: object) -> list[uuid.UUID]:
    """The `attachments` of a send frame: absent, or a list of distinct attachment ids."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise AttachmentRejected("invalid_attachments", "attachments must be a list of attachment ids.")
    limit = int(settings.IMAGE_MAX_PER_MESSAGE)
    if len(value) > limit:
        raise AttachmentRejected("too_many_images", f"A message can carry at most {limit} images.")
    try:
        ids = [uuid.UUID(item) for item in value]
    except ValueError:
        raise AttachmentRejected("invalid_attachments", "attachments must be a list of attachment ids.") from None
    if len(set(ids)) != len(ids):
        raise AttachmentRejected("invalid_attachments", "The same image is attached twice.")
    return ids


def attachments_claim(*, owner_id: int, ids: list[uuid.UUID]) -> list[Attachment]:
    """Lock the owner's unsent uploads named by ids, in the order given; call inside the turn's
    transaction, so two sends cannot both claim one upload."""
    if not ids:
        return []
    found = {
        a.pk: a
        for a in Attachment.objects.select_for_update().filter(pk__in=ids, owner_id=owner_id, message__isnull=True)
    }
    if len(found) != len(ids):
        raise AttachmentRejected(
            "attachment_not_found", "An attached image was not found or was already sent. Attach it again."
        )
    return [found[pk] for pk in ids]


def attachments_link(*, attachments: list[Attachment], message: Message) -> None:
    """Make claimed uploads part of the message they were sent with."""
    if not attachments:
        return
    with transaction.atomic():
        Attachment.objects.filter(pk__in=[a.pk for a in attachments]).update(message=message)
    for attachment in attachments:
        attachment.message = message


def attachment_get_for_user(*, user_id: int, attachment_id: object) -> Attachment | None:
    """The attachment if it exists and is the user's own; None otherwise (the caller answers 404
    for both, so nobody learns which ids exist)."""
    try:
        key = uuid.UUID(str(attachment_id))
    except ValueError:
        return None
    return Attachment.objects.filter(pk=key, owner_id=user_id).first()


def image_refs_by_message(*, message_ids: list[int]) -> dict[int, tuple[ImageRef, ...]]:
    """The images of each message, as the context builder takes them: one query."""
    refs: dict[int, list[ImageRef]] = {}
    for attachment in Attachment.objects.filter(message_id__in=message_ids).order_by("created_at", "id"):
        assert attachment.message_id is not None
        refs.setdefault(attachment.message_id, []).append(ImageRef(str(attachment.pk), attachment.format_label))
    return {message_id: tuple(items) for message_id, items in refs.items()}


def attachment_data_urls(*, refs: list[ImageRef]) -> dict[str, str]:
    """Base64 data URLs of the referenced images, read from storage: what providers take inline."""
    urls: dict[str, str] = {}
    for attachment in Attachment.objects.filter(pk__in=[uuid.UUID(ref.ref) for ref in refs]):
        with attachment.file.open("rb") as handle:
            encoded = base64.b64encode(handle.read()).decode("ascii")
        urls[str(attachment.pk)] = f"data:{attachment.content_type};base64,{encoded}"
    return urls
