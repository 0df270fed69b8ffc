"""Images attached to messages: upload validation, storage, owner-only serving, the multimodal
request a provider receives, models without vision, and the offline model's acknowledgement."""

from __future__ import annotations

import base64
import hashlib
import io
import os
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from chatproject.llm.config import configured_models
from conversations.models import Attachment, Conversation, Message
from tests.conftest import Socket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _media_in_tmp(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return Path(settings.MEDIA_ROOT)


def image_bytes(width: int = 64, height: int = 48, fmt: str = "PNG", noise: bool = False) -> bytes:
    if noise:  # random pixels do not compress: a file of a predictable size
        image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        image = Image.new("RGB", (width, height), (200, 30, 60))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def upload(user: User, data: bytes, name: str = "photo.png", content_type: str = "image/png") -> Any:
    client = Client()
    client.force_login(user)
    return client.post("/attachments/", {"file": SimpleUploadedFile(name, data, content_type=content_type)})


def stored_files(media: Path) -> list[Path]:
    return [p for p in media.rglob("*") if p.is_file()] if media.exists() else []


def assert_rejected(response: Any, code: str, media: Path) -> None:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert Attachment.objects.count() == 0, "a refused upload stores no row"
    assert stored_files(media) == [], "a refused upload stores no file"


# --- validation ---------------------------------------------------------------------------------


def test_a_text_file_named_png_is_rejected(user: User, _media_in_tmp: Path) -> None:
    response = upload(user, b"just some text, not an image\n" * 10, name="cat.png")
    assert_rejected(response, "not_an_image", _media_in_tmp)


def test_an_image_over_the_byte_limit_is_rejected(user: User, settings: Any, _media_in_tmp: Path) -> None:
    data = image_bytes(100, 100, noise=True)
    settings.IMAGE_MAX_BYTES = len(data) - 1
    response = upload(user, data)
    assert_rejected(response, "image_too_large", _media_in_tmp)
    assert "MB" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("size", "limits"),
    [((300, 10), {"IMAGE_MAX_SIDE": 256}), ((60, 60), {"IMAGE_MAX_PIXELS": 3000})],
    ids=["side", "pixels"],
)
def test_an_image_over_the_dimension_limits_is_rejected(
    user: User, settings: Any, _media_in_tmp: Path, size: tuple[int, int], limits: dict[str, int]
) -> None:
    for name, value in limits.items():
        setattr(settings, name, value)
    response = upload(user, image_bytes(*size))
    assert_rejected(response, "image_too_large_dimensions", _media_in_tmp)


def test_an_image_of_another_type_is_rejected(user: User, _media_in_tmp: Path) -> None:
    response = upload(user, image_bytes(fmt="BMP"), name="old.bmp", content_type="image/png")
    assert_rejected(response, "unsupported_image_type", _media_in_tmp)


def test_a_damaged_image_is_rejected(user: User, _media_in_tmp: Path) -> None:
    data = image_bytes(200, 200, noise=True)
    response = upload(user, data[: len(data) // 2])
    assert_rejected(response, "not_an_image", _media_in_tmp)


# --- storing, linking, serving -------------------------------------------------------------------


def test_a_valid_png_is_stored_and_served_to_its_owner_only(user: User, other_user: User, _media_in_tmp: Path) -> None:
    data = image_bytes(64, 48)
    response = upload(user, data)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["content_type"], body["width"], body["height"], body["bytes"]) == ("image/png", 64, 48, len(data))
    attachment = Attachment.objects.get(pk=body["id"])
    assert (attachment.owner_id, attachment.message_id) == (user.pk, None)
    assert attachment.sha256 == hashlib.sha256(data).hexdigest()
    assert [p.read_bytes() for p in stored_files(_media_in_tmp)] == [data]
    assert body["url"] == f"/attachments/{attachment.pk}/"

    owner = Client()
    owner.force_login(user)
    served = owner.get(body["url"])
    assert served.status_code == 200
    assert served["Content-Type"] == "image/png"
    assert served["Cache-Control"].startswith("private")
    assert b"".join(served.streaming_content) == data  # type: ignore[attr-defined]

    stranger = Client()
    stranger.force_login(other_user)
    assert stranger.get(body["url"]).status_code == 404
    assert Client().get(body["url"]).status_code == 302  # signed out: to the log-in page


async def send_with_images(socket: Socket, content: str, ids: list[str], **extra: Any) -> list[dict[str, Any]]:
    await socket.send({"type": "send", "content": content, "attachments": ids, **extra})
    return await socket.receive_until(lambda f: f["type"] in ("done", "error"))


async def test_a_sent_image_is_linked_shown_and_acknowledged_by_the_offline_model(
    socket: Socket, user: User, _media_in_tmp: Path
) -> None:
    body = (await sync_to_async(upload)(user, image_bytes(640, 480))).json()
    frames = await send_with_images(socket, "What is in this picture?", [body["id"]])

    created = next(f for f in frames if f["type"] == "message.created" and f["message"]["role"] == "user")
    assert created["message"]["attachments"] == [
        {"id": body["id"], "url": body["url"], "content_type": "image/png", "width": 640, "height": 480}
    ]
    done = frames[-1]
    assert done["type"] == "done" and done["status"] == "complete"
    assert "I see an image (PNG, 640×480)." in done["content"]

    attachment = await sync_to_async(Attachment.objects.select_related("message").get)(pk=body["id"])
    assert attachment.message is not None
    assert (attachment.message.pk, attachment.message.role) == (created["message"]["id"], "user")

    page = await sync_to_async(_page_for)(user, created["conversation_id"])
    assert f'src="{body["url"]}"' in page, "the conversation page shows the thumbnail"


def _page_for(user: User, conversation_id: str) -> str:
    client = Client()
    client.force_login(user)
    return client.get(f"/c/{conversation_id}/").content.decode()


async def test_an_image_cannot_be_sent_twice_or_by_someone_else(socket: Socket, user: User, other_user: User) -> None:
    mine = (await sync_to_async(upload)(user, image_bytes())).json()
    theirs = (await sync_to_async(upload)(other_user, image_bytes())).json()
    first = await send_with_images(socket, "first", [mine["id"]])
    assert first[-1]["type"] == "done"
    before = await sync_to_async(Message.objects.count)()

    for ids in ([mine["id"]], [theirs["id"]], ["not-an-id"]):
        frames = await send_with_images(socket, "again", ids)
        assert frames[-1]["type"] == "error", frames
        assert frames[-1]["code"] in {"attachment_not_found", "invalid_attachments"}
    assert await sync_to_async(Message.objects.count)() == before, "a refused send stores nothing"
    assert await sync_to_async(lambda: Attachment.objects.get(pk=theirs["id"]).message_id)() is None


# --- what models receive -------------------------------------------------------------------------


def _vision(settings: Any, enabled: bool) -> None:
    settings.LLM_MODELS[0]["vision"] = enabled
    configured_models.cache_clear()


async def test_the_request_to_a_vision_model_carries_the_image_as_a_data_url(
    socket: Socket, settings: Any, upstream_model: Any, user: User
) -> None:
    from memory.services import memory_set_enabled

    await sync_to_async(memory_set_enabled)(user=user, enabled=False)  # fact extraction would be last
    _vision(settings, True)
    data = image_bytes(32, 32)
    body = (await sync_to_async(upload)(user, data)).json()

    frames = await send_with_images(socket, "describe it", [body["id"]])

    assert frames[-1]["type"] == "done" and frames[-1]["status"] == "complete", frames[-1]
    sent = upstream_model.last_request()
    assert sent["messages"][-1] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "describe it"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(data).decode()}},
        ],
    }


async def test_older_images_beyond_the_limit_become_a_note(
    socket: Socket, settings: Any, upstream_model: Any, user: User
) -> None:
    from memory.services import memory_set_enabled

    await sync_to_async(memory_set_enabled)(user=user, enabled=False)
    _vision(settings, True)
    settings.CONTEXT_MAX_IMAGES = 1
    first = (await sync_to_async(upload)(user, image_bytes(20, 10))).json()
    done = (await send_with_images(socket, "first picture", [first["id"]]))[-1]
    second = (await sync_to_async(upload)(user, image_bytes(30, 15))).json()

    frames = await send_with_images(socket, "second picture", [second["id"]], conversation_id=done["conversation_id"])

    assert frames[-1]["type"] == "done", frames[-1]
    messages = upstream_model.last_request()["messages"]
    earlier = next(m for m in messages if m["role"] == "user" and "first picture" in str(m["content"]))
    assert isinstance(earlier["content"], str), "the older image is not sent again"
    assert "(PNG, 20×10)" in earlier["content"]
    latest = messages[-1]["content"]
    assert [part["type"] for part in latest] == ["text", "image_url"]


async def test_a_model_without_vision_gets_a_clear_error_and_nothing_is_stored(
    socket: Socket, settings: Any, upstream_model: Any, user: User
) -> None:
    body = (await sync_to_async(upload)(user, image_bytes())).json()
    before = await sync_to_async(lambda: (Message.objects.count(), Conversation.objects.count()))()

    frames = await send_with_images(socket, "what is this?", [body["id"]], client_id="c-1")

    error = frames[-1]
    assert (error["type"], error["code"], error["client_id"]) == ("error", "model_without_vision", "c-1")
    assert "cannot read images" in error["message"]
    assert await sync_to_async(lambda: (Message.objects.count(), Conversation.objects.count()))() == before
    assert upstream_model.stats()["requests"] == 0, "the model was never called"
    assert await sync_to_async(lambda: Attachment.objects.get(pk=body["id"]).message_id)() is None


# --- erasure -------------------------------------------------------------------------------------


def test_deleting_the_conversation_deletes_the_image_file(user: User, _media_in_tmp: Path) -> None:
    from conversations.services.attachments import attachments_link

    attachment = Attachment.objects.get(pk=upload(user, image_bytes()).json()["id"])
    conversation = Conversation.objects.create(owner=user)
    message = Message.objects.create(conversation=conversation, role=Message.Role.USER, content="hi")
    attachments_link(attachments=[attachment], message=message)
    assert len(stored_files(_media_in_tmp)) == 1

    conversation.delete()

    assert not Attachment.objects.exists()
    assert stored_files(_media_in_tmp) == []
