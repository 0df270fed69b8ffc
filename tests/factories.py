"""Rows for tests, built the way the product builds them."""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.auth.models import User

from conversations.models import Conversation, Message


def conversation_with_turns(
    owner: User, turns: Sequence[tuple[str, str]], *, title: str = "Chat", temporary: bool = False
) -> tuple[Conversation, list[Message]]:
    """A conversation whose branch is the given (user, assistant) pairs, oldest first."""
    conversation = Conversation.objects.create(owner=owner, title=title, temporary=temporary)
    messages: list[Message] = []
    parent: Message | None = None
    for question, answer in turns:
        asked = Message.objects.create(conversation=conversation, parent=parent, role="user", content=question)
        replied = Message.objects.create(conversation=conversation, parent=asked, role="assistant", content=answer)
        messages += [asked, replied]
        parent = replied
    conversation.active_leaf = parent
    conversation.save(update_fields=["active_leaf"])
    return conversation, messages
