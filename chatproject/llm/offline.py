"""The offline model: a litellm custom provider that needs no key and no network.

It is the default so the product runs anywhere, and the tests run on it. Replies are deterministic
functions of the conversation, stream at a configurable pace, and say plainly that no language
model is configured, so nobody mistakes them for a real answer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.conf import settings
from litellm import CustomLLM
from litellm.types.utils import GenericStreamingChunk, ModelResponse
from litellm.types.utils import Usage as LitellmUsage

from chatproject.llm.prompts import offline_task_answer

_WORD_RE = re.compile(r"\S+\s*|\s+")


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def last_user_images(messages: list[dict[str, Any]]) -> list[str]:
    """The image URLs of the latest user message (data URLs: the offline model reads no network)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if not isinstance(content, list):
                return []
            return [
                str(part.get("image_url", {}).get("url", ""))
                for part in content
                if isinstance(part, dict) and part.get("type") == "image_url"
            ]
    return []


def describe_image(url: str) -> str:
    """`PNG, 640×480` for a data URL the image decoder reads; `unreadable` otherwise."""
    from PIL import Image, UnidentifiedImageError

    header, _, payload = url.partition(",")
    if not header.startswith("data:") or not header.endswith(";base64"):
        return "not attached inline"
    try:
        with Image.open(io.BytesIO(base64.b64decode(payload, validate=True))) as image:
            return f"{image.format}, {image.width}×{image.height}"
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError):
        return "unreadable"


def image_acknowledgement(urls: list[str]) -> str:
    """One deterministic line per image: the offline model cannot see, but it can say what it got."""
    return "\n".join(f"I see an image ({describe_image(url)})." for url in urls)


def _excerpt(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def compose_reply(messages: list[dict[str, Any]]) -> str:
    """The reply the offline model gives: a short, structured echo of the latest user message,
    or the deterministic answer to one of the product's own tasks (summaries, fact extraction)."""
    task_answer = offline_task_answer(messages)  # type: ignore[arg-type]
    if task_answer is not None:
        return task_answer
    text = last_user_text(messages)
    words = text.split()
    turns = sum(1 for m in messages if m.get("role") == "user")
    images = last_user_images(messages)
    lines = [
        "**Offline model.** No language model is configured for this server, so this reply is "
        "composed locally and deterministically.",
        "",
        *([image_acknowledgement(images), ""] if images else []),
        f"You wrote {len(words)} word{'s' if len(words) != 1 else ''}: “{_excerpt(text)}”",
        "",
        "What I can tell you about this conversation:",
        f"- it has {turns} message{'s' if turns != 1 else ''} from you so far;",
        f"- your latest message has {len(text)} characters;",
        f"- the longest word in it is `{max(words, key=len) if words else '(none)'}`.",
        "",
        "To get real answers, set `LLM_MODEL` (and a key or `LLM_API_BASE`) as the README explains.",
    ]
    reply = "\n".join(lines)
    max_words = int(settings.OFFLINE_MAX_WORDS)
    pieces = split_tokens(reply)
    filler_index = 0
    if settings.OFFLINE_PAD_TO_MAX and words and len(pieces) < max_words:
        pieces.append("\n\n")
    while len(pieces) < max_words and words and settings.OFFLINE_PAD_TO_MAX:
        pieces.append(f"{words[filler_index % len(words)]} ")
        filler_index += 1
    return "".join(pieces[:max_words])


def split_tokens(text: str) -> list[str]:
    """Word-sized pieces, each with its trailing whitespace, so joining them restores the text."""
    return _WORD_RE.findall(text)


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


def _prompt_tokens(messages: list[dict[str, Any]]) -> int:
    # Counted on text only: an image's base64 is not what any model bills.
    return sum(estimate_tokens(_text_of(m.get("content"))) + 4 for m in messages)


def _text_of(content: object) -> str:
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


def _usage(messages: list[dict[str, Any]], reply: str) -> dict[str, int]:
    prompt = _prompt_tokens(messages)
    completion = len(split_tokens(reply))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _chunk(text: str, *, finished: bool, usage: dict[str, int] | None = None) -> GenericStreamingChunk:
    return {
        "text": text,
        "tool_use": None,
        "is_finished": finished,
        "finish_reason": "stop" if finished else "",
        "usage": usage,  # type: ignore[typeddict-item]
        "index": 0,
    }


class OfflineLLM(CustomLLM):
    """Served as `offline/<anything>`; registered with litellm by the gateway."""

    def completion(self, *args: Any, **kwargs: Any) -> ModelResponse:
        return self._response(kwargs["messages"], kwargs["model"], kwargs["model_response"])

    async def acompletion(self, *args: Any, **kwargs: Any) -> ModelResponse:
        return self._response(kwargs["messages"], kwargs["model"], kwargs["model_response"])

    def streaming(self, *args: Any, **kwargs: Any) -> Iterator[GenericStreamingChunk]:
        messages = kwargs["messages"]
        reply = compose_reply(messages)
        first_delay, delay = _delays()
        time.sleep(first_delay)
        for piece in split_tokens(reply):
            yield _chunk(piece, finished=False)
            time.sleep(delay)
        yield _chunk("", finished=True, usage=_usage(messages, reply))

    async def astreaming(self, *args: Any, **kwargs: Any) -> AsyncIterator[GenericStreamingChunk]:  # type: ignore[override]
        messages = kwargs["messages"]
        reply = compose_reply(messages)
        first_delay, delay = _delays()
        await asyncio.sleep(first_delay)
        for piece in split_tokens(reply):
            yield _chunk(piece, finished=False)
            # A pace of zero still yields control, so a fast stream cannot starve the event loop.
            await asyncio.sleep(delay)
        yield _chunk("", finished=True, usage=_usage(messages, reply))

    def _response(self, messages: list[dict[str, Any]], model: str, response: ModelResponse) -> ModelResponse:
        reply = compose_reply(messages)
        usage = _usage(messages, reply)
        response.choices[0].message.content = reply
        response.choices[0].finish_reason = "stop"
        response.model = model
        # ModelResponse declares usage only dynamically; setattr keeps the type checker honest.
        setattr(  # noqa: B010
            response,
            "usage",
            LitellmUsage(
                prompt_tokens=usage["prompt_tokens"],
                completion_tokens=usage["completion_tokens"],
                total_tokens=usage["total_tokens"],
            ),
        )
        return response


def _delays() -> tuple[float, float]:
    return float(settings.OFFLINE_FIRST_TOKEN_DELAY), float(settings.OFFLINE_TOKEN_DELAY)
