"""Canonical forms of a text, so keyword rules see through the usual disguises.

People who want a rule to miss a word write it with look-alike letters (Cyrillic "а", fullwidth
"ｉ", mathematical bold "𝐢"), with invisible characters inside it, in leetspeak ("1gn0re"), with
its letters spaced out ("i g n o r e"), or encode the whole sentence (base64, hex, %-escapes,
Unicode tag characters, rot13, reversed). `fold` undoes the letter-level disguises keeping a map
back to the original offsets; `payloads` finds encoded or spaced-out runs and decodes them, each
with the span it came from, so a detector can re-check the decoded text and still point at the
right characters. `Rule`, `Signal` and `noisy_or` are the small rule engine both detectors run on
the folded text.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# Zero-width and bidi-control characters: invisible, and never needed inside a word.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
# Unicode "tag" characters mirror ASCII invisibly ("ASCII smuggling"); shifted back, they are text.
_TAGS = re.compile("[\U000e0020-\U000e007e]+")
_TAG_OFFSET = 0xE0000

# Letters from other scripts that NFKC leaves alone but that look like Latin ones.
_CONFUSABLES = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
        "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w",
        "ɡ": "g", "ɩ": "i", "ı": "i", "ℓ": "l", "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k",
        "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "ɑ": "a",
    }
)  # fmt: skip
# Leetspeak digits and symbols, replaced only inside tokens that also contain letters ("2024" stays).
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s"})
# At least two letters: "3d", "4k" and "10x" are not leetspeak.
_LEET_TOKEN = re.compile(r"[a-z0-9@$]*[a-z][a-z0-9@$]*[a-z][a-z0-9@$]*")
_LEET_CHARS = re.compile(r"[013457@$8]")

# Letters standing alone, separated by spaces or punctuation: "i g n o r e  a l l", "s.y.s.t.e.m".
_SPACED = re.compile(r"(?<![\w])(?:[a-z][ .\-_*|/]{1,3}){4,}[a-z](?![\w])")

_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4}){4,}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?|[A-Za-z0-9_\-]{24,}={0,2}")
_HEX = re.compile(r"(?:\\x[0-9a-fA-F]{2}){6,}|(?:0x)?(?:[0-9a-fA-F]{2}[ :]?){8,}")
_PERCENT = re.compile(r"(?:%[0-9a-fA-F]{2}){6,}")
# Quoted pieces glued with '+': "'sys' + 'tem pro' + 'mpt'" (payload splitting).
_CONCAT = re.compile(r"(['\"])[^'\"\n]{1,40}\1(?:\s*\+\s*(['\"])[^'\"\n]{1,40}\2){1,12}")
_CONCAT_PIECE = re.compile(r"(['\"])([^'\"\n]{1,40})\1")
# The work a single text may cause: decoding is cheap, but a paste of megabytes must not be.
MAX_PAYLOADS = 12
MAX_PAYLOAD_CHARS = 8000


@dataclass(frozen=True, slots=True)
class Folded:
    """`text` lower-cased with disguises undone; `origin[i]` is where its i-th character came from."""

    text: str
    origin: tuple[int, ...] | None  # None: the same offsets as the raw text
    invisible: int  # how many invisible characters were dropped
    confusable: int  # how many letters were mapped from another script

    def raw_span(self, start: int, end: int) -> tuple[int, int]:
        if self.origin is None or not self.origin:
            return start, end
        last = min(max(end - 1, start), len(self.origin) - 1)
        return self.origin[min(start, len(self.origin) - 1)], self.origin[last] + 1


@dataclass(frozen=True, slots=True)
class Payload:
    kind: str  # "base64", "hex", "percent", "tags", "spaced", "concat"
    text: str  # the decoded text, folded
    start: int  # the span of the encoded run in the raw text
    end: int


def fold(text: str) -> Folded:
    """NFKC, no invisible characters, Latin look-alikes and leetspeak mapped, lower case."""
    if text.isascii():
        # The common case, done without a per-character loop: every step keeps offsets.
        return Folded(_unleet(text.lower()), None, 0, 0)
    out: list[str] = []
    origin: list[int] = []
    invisible = confusable = 0
    for index, char in enumerate(text):
        if _INVISIBLE.match(char) or _TAGS.match(char):
            invisible += 1
            continue
        piece = unicodedata.normalize("NFKC", char).lower()
        mapped = piece.translate(_CONFUSABLES)
        confusable += mapped != piece
        out.append(mapped)
        origin.extend([index] * len(mapped))
    return Folded(_unleet("".join(out)), tuple(origin), invisible, confusable)


def _unleet(text: str) -> str:
    """Leetspeak back to letters, for tokens that mix letters with digits or $/@ only."""
    if not _LEET_CHARS.search(text):
        return text
    return _LEET_TOKEN.sub(_unleet_token, text)


def _unleet_token(match: re.Match[str]) -> str:
    token = match.group()
    # A leading "@" is a mention ("@ai ignore the user"), not an "a".
    mention = len(token) - len(token.lstrip("@"))
    body = token[mention:]
    return token[:mention] + (body.translate(_LEET) if _LEET_CHARS.search(body) else body)


def strip_invisible(text: str) -> str:
    """The text without zero-width and bidi-control characters, for rules that cannot use `fold`."""
    return _INVISIBLE.sub("", text)


def rot13(text: str) -> str:
    return codecs.encode(text, "rot13")


def payloads(text: str) -> list[Payload]:
    """Decoded runs of `text` that read as natural language, at most MAX_PAYLOADS of them."""
    found: list[Payload] = []
    found += _tag_payloads(text)
    found += _decoded(text, _BASE64, "base64", _from_base64)
    found += _decoded(text, _HEX, "hex", _from_hex)
    found += _decoded(text, _PERCENT, "percent", urllib.parse.unquote)
    found += _spaced_payloads(text)
    found += [
        Payload("concat", fold("".join(p.group(2) for p in _CONCAT_PIECE.finditer(m.group()))).text, m.start(), m.end())
        for m in _CONCAT.finditer(text)
    ]
    return found[:MAX_PAYLOADS]


def _tag_payloads(text: str) -> list[Payload]:
    return [
        Payload("tags", "".join(chr(ord(c) - _TAG_OFFSET) for c in m.group()).lower(), m.start(), m.end())
        for m in _TAGS.finditer(text)
    ]


def _decoded(text: str, pattern: re.Pattern[str], kind: str, decode: Callable[[str], str | None]) -> list[Payload]:
    result: list[Payload] = []
    for match in pattern.finditer(text):
        if len(result) >= MAX_PAYLOADS:
            break
        decoded = decode(match.group()[:MAX_PAYLOAD_CHARS])
        if decoded and looks_like_language(decoded):
            result.append(Payload(kind, fold(decoded).text, match.start(), match.end()))
    return result


def _spaced_payloads(text: str) -> list[Payload]:
    folded = fold(text)
    result: list[Payload] = []
    for match in _SPACED.finditer(folded.text):
        if len(match.group()) >= 11:
            start, end = folded.raw_span(match.start(), match.end())
            result.append(Payload("spaced", _unspace(match.group()), start, end))
    return result


def _unspace(run: str) -> str:
    """'i g n o r e  a l l' -> 'ignore all': single separators join letters, doubled ones split words."""
    words = re.split(r"(?:[ .\-_*|/]){2,}", run)
    return " ".join(re.sub(r"[ .\-_*|/]", "", word) for word in words)


def _from_base64(run: str) -> str | None:
    padded = run + "=" * (-len(run) % 4)
    try:
        raw = base64.b64decode(padded, altchars=b"-_" if ("-" in run or "_" in run) else None, validate=True)
        return raw.decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


def _from_hex(run: str) -> str | None:
    digits = re.sub(r"\\x|0x|[ :]", "", run)
    if len(digits) % 2:
        digits = digits[:-1]
    try:
        return bytes.fromhex(digits).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def looks_like_language(text: str) -> bool:
    """Mostly letters and spaces, with words of plausible length: decoded prose, not bytes or ids."""
    if len(text) < 8 or not text.isprintable():
        return False
    letters = sum(c.isalpha() for c in text)
    spaces = text.count(" ")
    words = text.split()
    return letters / len(text) > 0.6 and spaces >= 1 and 2 <= len(text.replace(" ", "")) / max(len(words), 1) <= 14


def mixed_script_words(text: str) -> int:
    """Words that mix Latin letters with Cyrillic or Greek ones: rare in honest text."""
    count = 0
    for word in re.findall(r"\w{3,}", text):
        scripts = {_script(c) for c in word if c.isalpha()}
        count += "LATIN" in scripts and len(scripts - {"LATIN"}) > 0
    return count


def _script(char: str) -> str:
    name = unicodedata.name(char, "")
    return name.split(" ", 1)[0] if name else ""


# --- Weighted rules ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    category: str
    weight: float  # how much one hit alone says, 0..1
    pattern: re.Pattern[str]
    flags: frozenset[str] = frozenset()


def rule(name: str, category: str, weight: float, pattern: str, *flags: str) -> Rule:
    return Rule(name, category, weight, re.compile(pattern), frozenset(flags))


@dataclass(frozen=True, slots=True)
class Signal:
    category: str
    weight: float
    start: int  # a span of the raw text
    end: int
    why: str  # the rule's name, prefixed by where it was found ("base64:override")


def noisy_or(weights: Iterable[float]) -> float:
    """Independent pieces of evidence: the chance that at least one of them is right."""
    miss = 1.0
    for weight in weights:
        miss *= 1.0 - weight
    return 1.0 - miss


def strongest_per_rule(signals: Iterable[Signal]) -> list[Signal]:
    """One signal per rule, wherever it was found: a rule repeated is not new evidence."""
    best: dict[str, Signal] = {}
    for signal in signals:
        key = signal.why.rsplit(":", 1)[-1]
        if key not in best or signal.weight > best[key].weight:
            best[key] = signal
    return list(best.values())


def by_category(signals: Iterable[Signal]) -> dict[str, float]:
    grouped: dict[str, list[float]] = {}
    for signal in signals:
        grouped.setdefault(signal.category, []).append(signal.weight)
    return {category: noisy_or(weights) for category, weights in grouped.items()}
