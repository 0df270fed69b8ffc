"""Turning detector spans into safe text: `redact` for what users and the model see, `mask` for moderators.

Both take the spans of any detector (not only PII), merge the ones that overlap and rewrite the text
from the end backwards so earlier offsets stay valid. `redact` replaces a span with `[LABEL]`;
`mask` keeps just enough of the value for a moderator to recognise its shape (`j***@e***.com`,
`**** **** **** 4242`) without being able to reuse it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from moderation.detectors.base import Span

__all__ = ["mask", "mask_value", "merge_spans", "redact"]

STAR = "*"
# A secret keeps its provider prefix, if it has one (it tells a moderator what leaked), and then a
# fixed run of stars, so a mask reveals neither any secret character nor the secret's length.
SECRET_STARS = 8
_PROVIDER_PREFIX = re.compile(
    r"^(?:AKIA|ASIA|gh[pousr]_|github_pat_|xox[a-z]-|[sr]k_(?:live|test)_|whsec_|sk-(?:proj-|ant-|svcacct-|admin-)?|"
    r"AIza|eyJ|https://hooks\.slack\.com/)"
)


def merge_spans(spans: Iterable[Span], text_length: int | None = None) -> list[Span]:
    """Sorted, non-overlapping spans; overlapping ones merge and keep the label of the longest part.

    Spans that merely touch stay separate (`[EMAIL][PHONE]` is more useful than one label for both).
    With `text_length`, spans are clipped to the text and empty ones dropped.
    """
    cleaned = [_clip(span, text_length) for span in spans]
    ordered = sorted((span for span in cleaned if span.end > span.start), key=lambda s: (s.start, -s.end))
    merged: list[Span] = []
    longest: list[Span] = []  # per merged span, the longest original part (its label wins)
    for span in ordered:
        if merged and span.start < merged[-1].end:
            current = merged[-1]
            if span.end - span.start > longest[-1].end - longest[-1].start:
                longest[-1] = span
            merged[-1] = Span(current.start, max(current.end, span.end), longest[-1].label)
        else:
            merged.append(span)
            longest.append(span)
    return merged


def redact(text: str, spans: Sequence[Span]) -> str:
    """Replace every (merged) span with `[LABEL]`."""
    return _rewrite(text, spans, lambda _value, label: f"[{label}]")


def mask(text: str, spans: Sequence[Span]) -> str:
    """Replace every (merged) span with a partial mask of its value, for the review queue."""
    return _rewrite(text, spans, mask_value)


def mask_value(value: str, label: str) -> str:
    """A moderator-safe rendering of one detected value, shaped by what the label says it is."""
    masker = _MASKERS.get(label, _mask_keep_ends)
    return masker(value)


def _rewrite(text: str, spans: Sequence[Span], render: Callable[[str, str], str]) -> str:
    pieces: list[str] = []
    cursor = 0
    for span in merge_spans(spans, len(text)):
        pieces.append(text[cursor : span.start])
        pieces.append(render(text[span.start : span.end], span.label))
        cursor = span.end
    pieces.append(text[cursor:])
    return "".join(pieces)


def _clip(span: Span, text_length: int | None) -> Span:
    if text_length is None:
        return span
    start = min(max(span.start, 0), text_length)
    end = min(max(span.end, 0), text_length)
    return span if (start, end) == (span.start, span.end) else Span(start, end, span.label)


def _star_alnum(value: str, keep: Callable[[int, int], bool]) -> str:
    """Star letters and digits, keep separators; `keep(index_among_alnum, alnum_count)` spares some."""
    count = sum(ch.isalnum() for ch in value)
    out: list[str] = []
    seen = 0
    for ch in value:
        if ch.isalnum():
            out.append(ch if keep(seen, count) else STAR)
            seen += 1
        else:
            out.append(ch)
    return "".join(out)


def _mask_keep_ends(value: str) -> str:
    # Below five characters, first and last would be most of the value.
    return _star_alnum(value, lambda i, n: n > 4 and i in (0, n - 1))


def _mask_email(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain:
        return _mask_keep_ends(value)
    host, _, tld = domain.rpartition(".")
    return f"{local[0]}***@{host[0]}***.{tld}"


def _mask_card(value: str) -> str:
    return _star_alnum(value, lambda i, n: i >= n - 4)


def _mask_phone(value: str) -> str:
    return _star_alnum(value, lambda i, n: i >= n - 2)


def _mask_iban(value: str) -> str:
    return _star_alnum(value, lambda i, n: i < 2 or i >= n - 4)


def _mask_ip(value: str) -> str:
    # The first part says which network (and roughly where); the rest would identify the host.
    separator = ":" if ":" in value else "."
    head, _, rest = value.partition(separator)
    return head + "".join(ch if ch in ":./" else STAR for ch in separator + rest)


def _mask_secret(value: str) -> str:
    lines = value.strip().splitlines()
    if len(lines) >= 2 and lines[0].startswith("-----BEGIN"):
        footer = lines[-1] if lines[-1].startswith("-----END") else ""
        return "\n".join(line for line in (lines[0], STAR * SECRET_STARS, footer) if line)
    prefix = _PROVIDER_PREFIX.match(value)
    return (prefix.group() if prefix else "") + STAR * SECRET_STARS


_MASKERS: dict[str, Callable[[str], str]] = {
    "EMAIL": _mask_email,
    "CARD": _mask_card,
    "PHONE": _mask_phone,
    "IBAN": _mask_iban,
    "IP_ADDRESS": _mask_ip,
    "SECRET": _mask_secret,
    "API_KEY": _mask_secret,
}
