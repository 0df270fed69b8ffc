"""Export a user's conversations (JSON: the whole tree; Markdown: the branch shown) and import
them back, or import a ChatGPT data export. The JSON format is described in docs/data.md.

Imports are validated before anything is written and stored in one transaction: a file is either
imported (with a report of what was left out and why) or refused with a reason, leaving no rows.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from conversations.models import Conversation, Message
from conversations.selectors import branch_messages
from conversations.services.followups import conversations_arrived

if TYPE_CHECKING:
    from django.contrib.auth.models import User

FORMAT_NAME = "parley.conversations"
FORMAT_VERSION = 1
IMPORTED_TITLE = "Imported chat"
# ChatGPT's export names its file this inside the zip it sends.
CHATGPT_FILE = "conversations.json"
ROLES = {choice.value for choice in Message.Role}
STATUSES = {choice.value for choice in Message.Status}


class ImportRejected(Exception):
    """A file that cannot be imported at all, with words a person can act on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class NodeSpec:
    """One message to store; `key` and `parent_key` are the source file's ids, never ours."""

    key: str
    parent_key: str | None
    role: str
    content: str
    created_at: datetime
    status: str = Message.Status.COMPLETE
    model: str = ""


@dataclass
class ConversationSpec:
    title: str
    nodes: list[NodeSpec]
    active_key: str | None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    model: str = ""
    pinned: bool = False
    archived: bool = False
    temporary: bool = False


@dataclass(frozen=True)
class Skipped:
    conversation: str
    item: str
    reason: str


@dataclass
class ImportReport:
    source: str  # "parley" or "chatgpt"
    conversations: list[tuple[Conversation, int]] = field(default_factory=list)  # with message counts
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def messages_imported(self) -> int:
        return sum(count for _, count in self.conversations)

    def skipped_by_reason(self) -> list[tuple[str, int]]:
        """Reasons with how often each applied, the most frequent first."""
        return Counter(s.reason for s in self.skipped).most_common()


# --- export ---------------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _conversation_messages(conversation: Conversation) -> list[Message]:
    return list(
        Message.objects.filter(conversation=conversation)
        .only("id", "parent_id", "role", "content", "status", "model", "created_at")
        .order_by("created_at", "id")
    )


def conversation_export_data(*, conversation: Conversation) -> dict[str, Any]:
    """One conversation as a plain dict of the export format: metadata and every message of the
    tree (all branches), parents before their children, with `active_leaf_id` naming the branch
    the user sees."""
    return {
        "id": str(conversation.pk),
        "title": conversation.title,
        "created_at": _iso(conversation.created_at),
        "updated_at": _iso(conversation.updated_at),
        "model": conversation.model,
        "pinned": conversation.pinned,
        "archived": conversation.archived,
        "temporary": conversation.temporary,
        "active_leaf_id": conversation.active_leaf_id,
        "messages": [
            {
                "id": m.pk,
                "parent_id": m.parent_id,
                "role": m.role,
                "content": m.content,
                "status": m.status,
                "model": m.model,
                "created_at": _iso(m.created_at),
            }
            for m in _conversation_messages(conversation)
        ],
    }


def conversations_export_json(*, conversations: Iterable[Conversation]) -> str:
    """The export document (format `parley.conversations`, version 1) of the given conversations."""
    document = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "exported_at": _iso(timezone.now()),
        "conversations": [conversation_export_data(conversation=c) for c in conversations],
    }
    return json.dumps(document, ensure_ascii=False, indent=2)


_SPEAKERS: dict[str, str] = {"user": "You", "assistant": "Assistant", "system": "System"}


def conversation_export_markdown(*, conversation: Conversation) -> str:
    """The branch the user sees, as Markdown: a heading per message, the text as it was written."""
    lines = [f"# {conversation.title}", ""]
    lines += [f"_Exported from {settings.SITE_NAME} on {timezone.now():%Y-%m-%d %H:%M} UTC._", ""]
    for message in branch_messages(conversation=conversation):
        speaker = _SPEAKERS.get(message.role, message.role)
        if message.role == Message.Role.ASSISTANT and message.model:
            speaker += f" ({message.model})"
        lines += [f"## {speaker}", "", message.content.rstrip() or "_(empty)_", ""]
    return "\n".join(lines)


def conversations_export_markdown(*, conversations: Iterable[Conversation]) -> str:
    return "\n---\n\n".join(conversation_export_markdown(conversation=c) for c in conversations)


# --- reading an uploaded file ---------------------------------------------------------------------


def import_max_bytes() -> int:
    return int(settings.IMPORT_MAX_BYTES)


def _size(count: int) -> str:
    return f"{count / 1e6:,.1f} MB" if count >= 100_000 else f"{count:,} bytes"


def _too_large(size: int) -> ImportRejected:
    return ImportRejected("too_large", f"That file is {_size(size)}; the limit is {_size(import_max_bytes())}.")


def import_size_check(*, size: int) -> None:
    """Refuse a file by its size alone, before anyone reads it."""
    if size > import_max_bytes():
        raise _too_large(size)


def _unzipped(raw: bytes) -> bytes:
    """The conversations.json of ChatGPT's zip, read no further than the size limit (a small zip
    can unpack to gigabytes)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        names = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == CHATGPT_FILE]
        if not names:
            raise ImportRejected("no_conversations_file", f"That zip file has no {CHATGPT_FILE} in it.")
        with archive.open(names[0]) as member:
            data = member.read(import_max_bytes() + 1)
    except zipfile.BadZipFile:
        raise ImportRejected("bad_zip", "That zip file is damaged and cannot be opened.") from None
    if len(data) > import_max_bytes():
        raise _too_large(archive.getinfo(names[0]).file_size)
    return data


def _parse_document(raw: bytes) -> Any:
    import_size_check(size=len(raw))
    if raw[:4] == b"PK\x03\x04":
        raw = _unzipped(raw)
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ImportRejected("not_text", "That file is not a text file: choose a .json export.") from None
    except json.JSONDecodeError as exc:
        raise ImportRejected(
            "invalid_json", f"That file is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from None


# --- our own format -------------------------------------------------------------------------------


def _invalid(where: str, problem: str) -> ImportRejected:
    return ImportRejected("invalid_export", f"This export is damaged: {where} {problem}.")


def _when(value: object, where: str) -> datetime:
    moment = parse_datetime(value) if isinstance(value, str) else None
    if moment is None:
        raise _invalid(where, "is not a date and time")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)


def _text(value: object, where: str, *, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise _invalid(where, "is not text")
    return value


def _parley_node(raw: object, where: str) -> NodeSpec:
    if not isinstance(raw, dict):
        raise _invalid(where, "is not an object")
    key, parent = raw.get("id"), raw.get("parent_id")
    if not isinstance(key, int | str) or isinstance(key, bool):
        raise _invalid(f"{where}.id", "is missing")
    if parent is not None and (not isinstance(parent, int | str) or isinstance(parent, bool)):
        raise _invalid(f"{where}.parent_id", "is not a message id")
    role = raw.get("role")
    if role not in ROLES:
        raise _invalid(f"{where}.role", f"is {role!r}, not one of {', '.join(sorted(ROLES))}")
    status = raw.get("status", Message.Status.COMPLETE)
    if status not in STATUSES:
        raise _invalid(f"{where}.status", f"is {status!r}, not one of {', '.join(sorted(STATUSES))}")
    if status == Message.Status.STREAMING:
        # Nothing is generating it here; a streaming row would also block new turns.
        status = Message.Status.INTERRUPTED
    return NodeSpec(
        key=str(key),
        parent_key=None if parent is None else str(parent),
        role=str(role),
        content=_text(raw.get("content"), f"{where}.content"),
        status=str(status),
        model=_text(raw.get("model"), f"{where}.model", default=""),
        created_at=_when(raw.get("created_at"), f"{where}.created_at"),
    )


def _check_tree(nodes: Sequence[NodeSpec], where: str) -> None:
    """Every parent exists, ids are unique, and following parents always reaches a root."""
    parents: dict[str, str | None] = {}
    for node in nodes:
        if node.key in parents:
            raise _invalid(where, f"has two messages with id {node.key}")
        parents[node.key] = node.parent_key
    for node in nodes:
        if node.parent_key is not None and node.parent_key not in parents:
            raise _invalid(where, f"has message {node.key} whose parent {node.parent_key} is not in the file")
    settled: set[str] = set()
    for node in nodes:
        seen: set[str] = set()
        cursor: str | None = node.key
        while cursor is not None and cursor not in settled:
            if cursor in seen:
                raise _invalid(where, f"has messages that are their own ancestors (at id {cursor})")
            seen.add(cursor)
            cursor = parents[cursor]
        settled |= seen


def _parley_conversation(raw: object, where: str) -> ConversationSpec:
    if not isinstance(raw, dict):
        raise _invalid(where, "is not an object")
    messages = raw.get("messages")
    if not isinstance(messages, list):
        raise _invalid(f"{where}.messages", "is not a list")
    nodes = [_parley_node(m, f"{where}.messages[{i}]") for i, m in enumerate(messages)]
    _check_tree(nodes, where)
    active = raw.get("active_leaf_id")
    active_key = None if active is None else str(active)
    if active_key is not None and active_key not in {n.key for n in nodes}:
        raise _invalid(f"{where}.active_leaf_id", "names no message in the conversation")
    return ConversationSpec(
        title=_text(raw.get("title"), f"{where}.title", default=IMPORTED_TITLE)[:200] or IMPORTED_TITLE,
        nodes=nodes,
        active_key=active_key,
        created_at=_when(raw["created_at"], f"{where}.created_at") if raw.get("created_at") else None,
        updated_at=_when(raw["updated_at"], f"{where}.updated_at") if raw.get("updated_at") else None,
        model=_text(raw.get("model"), f"{where}.model", default="")[:200],
        pinned=raw.get("pinned") is True,
        archived=raw.get("archived") is True,
        temporary=raw.get("temporary") is True,
    )


def parley_export_read(document: dict[str, Any]) -> list[ConversationSpec]:
    """The conversations of one of our exports, checked in full before anything is stored."""
    version = document.get("version")
    if version != FORMAT_VERSION:
        raise ImportRejected(
            "unsupported_version", f"This export has format version {version!r}; this server reads {FORMAT_VERSION}."
        )
    conversations = document.get("conversations")
    if not isinstance(conversations, list):
        raise _invalid("conversations", "is not a list")
    return [_parley_conversation(c, f"conversations[{i}]") for i, c in enumerate(conversations)]


# --- ChatGPT's conversations.json -----------------------------------------------------------------


def _epoch(value: object) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1e11:
        return datetime.fromtimestamp(value, tz=UTC)
    return None


@dataclass(frozen=True)
class _Kept:
    role: str
    content: str
    created_at: datetime | None
    model: str
    status: str


class _Skip(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _chatgpt_text(content: dict[str, Any], skipped: list[str]) -> str:
    """The text parts of a message's content; each non-text part is noted in `skipped`."""
    content_type = content.get("content_type")
    parts = content.get("parts")
    if content_type not in ("text", "multimodal_text"):
        raise _Skip(f"{content_type or 'unknown'} content (only text is imported)")
    if not isinstance(parts, list):
        raise _Skip("malformed message (its content has no parts)")
    texts: list[str] = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        else:
            kind = part.get("content_type", "unknown") if isinstance(part, dict) else type(part).__name__
            skipped.append(f"{kind} attachment (only text is imported)")
    return "\n\n".join(t for t in texts if t.strip())


def _chatgpt_message(message: object, skipped_parts: list[str]) -> _Kept:
    if not isinstance(message, dict):
        raise _Skip("malformed message")
    author = message.get("author")
    role = author.get("role") if isinstance(author, dict) else None
    if role == "system":
        raise _Skip("system message (instructions are not imported)")
    if role == "tool":
        raise _Skip("tool message (only your messages and the assistant's are imported)")
    if role not in ("user", "assistant"):
        raise _Skip(f"message from an unknown author ({role!r})")
    content = message.get("content")
    text = _chatgpt_text(content if isinstance(content, dict) else {}, skipped_parts)
    if not text.strip() and skipped_parts:
        skipped_parts.clear()  # counted once, as the message
        raise _Skip("message with only attachments (only text is imported)")
    if not text.strip():
        raise _Skip("empty message")
    metadata = message.get("metadata")
    model = metadata.get("model_slug") if isinstance(metadata, dict) else None
    status = Message.Status.INTERRUPTED if message.get("status") == "in_progress" else Message.Status.COMPLETE
    return _Kept(
        role=str(role),
        content=text,
        created_at=_epoch(message.get("create_time")),
        model=model[:200] if isinstance(model, str) else "",
        status=status,
    )


def _nearest_kept(node_id: str | None, parents: dict[str, str | None], kept: dict[str, _Kept]) -> str | None:
    """The node itself or its closest ancestor that is imported: children of a skipped message
    hang from its parent, so the branches stay connected."""
    seen: set[str] = set()
    while node_id is not None and node_id not in kept:
        if node_id in seen:
            raise _Skip("its message tree has a loop")
        seen.add(node_id)
        node_id = parents.get(node_id)
    return node_id


def _chatgpt_conversation(raw: dict[str, Any], index: int, report: ImportReport) -> ConversationSpec | None:
    title = raw.get("title") if isinstance(raw.get("title"), str) and raw.get("title") else IMPORTED_TITLE
    title = str(title)[:200]
    mapping: dict[str, Any] = raw["mapping"]
    parents: dict[str, str | None] = {}
    kept: dict[str, _Kept] = {}
    for node_id, node in mapping.items():
        if not isinstance(node, dict):
            report.skipped.append(Skipped(title, f"node {node_id}", "malformed node"))
            continue
        parent = node.get("parent")
        parents[node_id] = parent if isinstance(parent, str) and parent in mapping else None
        if node.get("message") is None:
            continue  # the empty root ChatGPT puts above every conversation
        skipped_parts: list[str] = []
        try:
            kept[node_id] = _chatgpt_message(node["message"], skipped_parts)
        except _Skip as skip:
            report.skipped.append(Skipped(title, f"message {node_id}", skip.reason))
        report.skipped += [Skipped(title, f"part of message {node_id}", reason) for reason in skipped_parts]
    try:
        links = {key: _nearest_kept(parents.get(key), parents, kept) for key in kept}
        current = raw.get("current_node")
        active = _nearest_kept(current if isinstance(current, str) else None, parents, kept)
    except _Skip as skip:
        report.skipped.append(Skipped(title, f"conversation {index + 1}", skip.reason))
        return None
    if not kept:
        report.skipped.append(Skipped(title, f"conversation {index + 1}", "no text messages in it"))
        return None
    created = _epoch(raw.get("create_time"))
    fallback = created or timezone.now()
    nodes = [
        NodeSpec(
            key=key,
            parent_key=links[key],
            role=item.role,
            content=item.content,
            created_at=item.created_at or fallback,
            status=item.status,
            model=item.model,
        )
        for key, item in kept.items()
    ]
    if active is None:
        # No usable current node: show the most recent branch.
        leaves = set(kept) - {n.parent_key for n in nodes}
        active = max(leaves, key=lambda k: (kept[k].created_at or fallback, k))
    return ConversationSpec(
        title=title,
        nodes=nodes,
        active_key=active,
        created_at=created,
        updated_at=_epoch(raw.get("update_time")) or created,
    )


def chatgpt_export_read(document: list[Any], report: ImportReport) -> list[ConversationSpec]:
    """The conversations of ChatGPT's conversations.json: a list of conversations, each a tree of
    nodes in `mapping` with `current_node` the branch shown. Only user and assistant text is kept;
    what is left out is added to the report."""
    for index, raw in enumerate(document):
        if not isinstance(raw, dict) or not isinstance(raw.get("mapping"), dict):
            raise ImportRejected(
                "not_chatgpt",
                f"Item {index + 1} of the file is not a ChatGPT conversation (it has no message mapping).",
            )
    specs = [_chatgpt_conversation(raw, i, report) for i, raw in enumerate(document)]
    return [spec for spec in specs if spec is not None]


# --- storing ---------------------------------------------------------------------------------------


def _reserve_message_ids(count: int) -> list[int]:
    """Primary keys taken from the message sequence up front, so a whole tree goes in with a few
    bulk inserts however deep it is (the parent foreign key is checked at commit)."""
    table = Message._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, count])
        return [row[0] for row in cursor.fetchall()]


def conversation_tree_create(*, owner: User, spec: ConversationSpec) -> tuple[Conversation, int]:
    """Store a conversation and its message tree with new ids; returns it with its message count.

    Times come from the spec (falling back to now), so sibling order and the sidebar's order
    follow the source. Call inside a transaction: the tree is inserted before its foreign keys are
    checked.
    """
    conversation = Conversation.objects.create(
        owner=owner,
        title=spec.title,
        model=spec.model,
        pinned=spec.pinned,
        archived=spec.archived,
        temporary=spec.temporary,
    )
    ids = (
        dict(zip((n.key for n in spec.nodes), _reserve_message_ids(len(spec.nodes)), strict=True)) if spec.nodes else {}
    )
    rows = [
        Message(
            id=ids[node.key],
            conversation=conversation,
            parent_id=ids[node.parent_key] if node.parent_key is not None else None,
            role=node.role,
            content=node.content,
            status=node.status,
            model=node.model,
        )
        for node in spec.nodes
    ]
    Message.objects.bulk_create(rows, batch_size=1000)
    # auto_now_add stamped the rows with now; the source's times go in afterwards.
    for row, node in zip(rows, spec.nodes, strict=True):
        row.created_at = node.created_at
    Message.objects.bulk_update(rows, ["created_at"], batch_size=1000)
    now = timezone.now()
    Conversation.objects.filter(pk=conversation.pk).update(
        active_leaf_id=ids.get(spec.active_key) if spec.active_key else None,
        created_at=spec.created_at or now,
        updated_at=spec.updated_at or spec.created_at or now,
    )
    conversation.refresh_from_db()
    return conversation, len(rows)


def conversations_import(*, owner: User, raw: bytes) -> ImportReport:
    """Import a file into the owner's account: one of our JSON exports (or a ChatGPT data export,
    as its conversations.json or the zip it comes in). Raises ImportRejected, storing nothing,
    when the file cannot be read; otherwise stores everything in one transaction and reports what
    was imported and what was left out."""
    document = _parse_document(raw)
    if isinstance(document, dict) and document.get("format") == FORMAT_NAME:
        report = ImportReport(source="parley")
        specs = parley_export_read(document)
    elif isinstance(document, list):
        report = ImportReport(source="chatgpt")
        specs = chatgpt_export_read(document, report)
    else:
        raise ImportRejected(
            "unknown_format",
            f"That file is not an export this server reads: choose a {settings.SITE_NAME} JSON export "
            f"or ChatGPT's {CHATGPT_FILE}.",
        )
    if not specs:
        raise ImportRejected("nothing_to_import", "That file has no conversations with text to import.")
    with transaction.atomic():
        report.conversations = [conversation_tree_create(owner=owner, spec=spec) for spec in specs]
        conversations_arrived(conversation_ids=[str(conversation.pk) for conversation, _ in report.conversations])
    return report
