"""PII and secrets in chat text: validated patterns, offline, 1-2 ms for a 2,000-character message.

Kinds and what makes a match count (category `pii.<kind>`, span label in brackets):

- email [EMAIL]: an address with a letter TLD. Addresses at reserved example domains (RFC 2606:
  example.com, *.test, ...) ARE reported -- the text still has an address's shape and redacting a
  dummy costs nothing -- but at a lower score (0.80) so a deployment can let them through with a
  threshold above that. Not emails: `git@host:path` SSH remotes, credentials inside URLs
  (`scheme://user:pw@host`, reported as a secret instead), `icon@2x.png`-style file names.
- phone [PHONE]: candidates are validated with `phonenumbers` (libphonenumber's metadata).
  International (+CC / 00CC) numbers need only be valid. National numbers must also look like a
  phone number as written (trunk 0 or the NANP 3-3-4 grouping, no one-digit groups) and be valid in
  one of `phone_regions`; a bare digit run needs a word like "call" or "tel" just before it. National
  formats without a trunk 0 outside the NANP (Spanish "612 345 678") are only found with +CC.
  Dates, IP-shaped and version-shaped strings, amounts and numbers after "order", "invoice",
  "tracking", ... are skipped.
- card [CARD]: 13-19 digits, optionally grouped with spaces/dashes (first group of four), a known
  issuer prefix with a length that issuer uses, and the Luhn check.
- iban [IBAN]: country code, the registry length for that country, ISO 13616 mod-97 check.
- ip_address [IP_ADDRESS]: valid IPv4 (no leading zeros) and IPv6. Only publicly routable addresses
  are personal data here: loopback, private (10/8, 172.16/12, 192.168/16), CGNAT, link-local,
  documentation (192.0.2/24, 2001:db8::/32) and other non-global ranges are not reported by default
  (`allow_private_ips=True`) -- "127.0.0.1:8000" in a coding question is no one's identity. With
  `allow_private_ips=False` they are reported at 0.60. Well-known public DNS resolvers (8.8.8.8,
  1.1.1.1, 9.9.9.9, ...) are never reported, and IPv4 after "version"/"build"/... is a version string.
- national_id [NATIONAL_ID]: US SSN (area not 000/666/9xx, group and serial not zero, published
  dummies excluded; undashed forms need "SSN"/"social security" nearby), UK National Insurance
  number (HMRC prefix rules), German Steuer-ID (ISO 7064 MOD 11,10 check digit and the digit
  repetition rule; needs a tax-id word nearby since it is eleven plain digits), Spanish DNI and NIE
  (mod-23 letter), French NIR (97 - n mod 97 key, Corsica 2A/2B), Italian codice fiscale (check letter).
- secret [SECRET]: AWS access key ids (AKIA/ASIA...) and secret keys next to a key name or an id,
  GitHub tokens (ghp_/gho_/ghu_/ghs_/ghr_/github_pat_), Slack tokens (xox?-) and webhooks, Stripe
  sk_/rk_ keys (test keys lower), OpenAI sk-/sk-proj-/sk-svcacct- and Anthropic sk-ant- keys, Google
  AIza keys, PEM private key blocks, JWTs (header decodes to JSON with "alg"), passwords in URLs,
  `Bearer <token>`, and `password=` / `api_key:` / `--token` assignments whose value is a literal of
  high entropy (not a placeholder, an env lookup or a function call). For assignments only the
  value is the span, so a redaction keeps `DB_PASSWORD = "[SECRET]"` readable.

Scores: 0.95-0.99 when a checksum or a provider-specific format validates; 0.85-0.95 when the shape is
specific and a context word agrees; 0.60-0.80 for pattern-only matches. Nothing below 0.5 is
reported. Overlapping candidates are resolved in favour of the higher score (then the kind that is
more specific), so a Luhn-valid card is never also a phone number. A finding's `detail` names the
kind and what validated it; it never contains the value.

Why not presidio-analyzer (DESIGN.md §7 names it, with `NoOpNlpEngine`): measured here on this
2-core machine, in a separate venv, against bench/data/pii_eval.jsonl --

- weight: `presidio-analyzer` requires spaCy even with `NoOpNlpEngine` (it imports spacy.tokens), so
  installing it pulls 54 packages / 393 MB (spaCy 126 MB, numpy 73 MB, thinc, pydantic, ...) and the
  import takes 3.4 s;
- latency: p50 7-9 ms, p95 13-15 ms for a 2,000-character message with its ten relevant entities,
  against a 5 ms p95 budget (this module: see bench/guardrails_pii.py);
- offline: its EmailRecognizer calls tldextract, which tries to download the public suffix list on
  first use (it falls back to a bundled copy after the request fails);
- coverage: no API-key/secret recognizers at all, and with its English defaults the UK NINO, ES NIF
  and IT fiscal code recognizers are not loaded; on the eval set (secrets excluded, default
  recognizers, threshold 0.5) it scored precision 0.86 / recall 0.63.

Its recognizers are regexes plus the same checksums (Luhn, mod-97, ...) and `phonenumbers`, which is
what this module uses directly (one pure-Python dependency, already needed for phone metadata).

Thread-safety: compiled patterns and frozen tables are module-level and read-only; `check` keeps its
state in locals. `phonenumbers` loads region metadata lazily, so the first constructor in a process
warms all of it up (about 0.35 s, under a lock; see `_warm_phone_metadata`).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, PhoneNumber, PhoneNumberType
from phonenumbers.re_util import enable_pattern_cache

from moderation.detectors.base import CheckContext, Direction, Finding, Span
from moderation.redaction import mask, redact

__all__ = ["KINDS", "LABELS", "PIIDetector", "mask", "redact"]

KINDS: tuple[str, ...] = ("email", "phone", "card", "iban", "ip_address", "national_id", "secret")
LABELS: dict[str, str] = {
    "email": "EMAIL",
    "phone": "PHONE",
    "card": "CARD",
    "iban": "IBAN",
    "ip_address": "IP_ADDRESS",
    "national_id": "NATIONAL_ID",
    "secret": "SECRET",
}
# When two candidates overlap with equal scores, the more specific kind wins.
_KIND_PRIORITY = {"secret": 7, "iban": 6, "card": 5, "national_id": 4, "email": 3, "ip_address": 2, "phone": 1}
MIN_SCORE = 0.5
DEFAULT_PHONE_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "BE", "AT", "CH", "IE", "AU", "IN")
CONTEXT_WINDOW = 48  # characters before a match searched for context words


@dataclass(frozen=True, slots=True)
class _Candidate:
    kind: str
    start: int
    end: int
    score: float
    detail: str

    def finding(self) -> Finding:
        return Finding(
            category=f"pii.{self.kind}",
            score=self.score,
            spans=(Span(self.start, self.end, LABELS[self.kind]),),
            detail=self.detail,
        )


def _context(text: str, start: int, words: re.Pattern[str], window: int = CONTEXT_WINDOW) -> bool:
    return words.search(text, max(0, start - window), start) is not None


# ---------------------------------------------------------------------------------------------- email

# Matching starts at each "@" (rare in text) rather than at every letter: the domain is matched
# forwards with a regex, the local part is walked backwards.
_EMAIL_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-]|\.[A-Za-z0-9])")
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+'-")
_LOCAL_EDGE_END = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_%+-")
MAX_LOCAL_PART = 64
_RESERVED_EMAIL_DOMAIN = re.compile(r"(?:^|\.)(?:example\.(?:com|org|net)|example|test|invalid|localhost)$", re.I)
# A TLD that is really a file extension: `icon@2x.png`.
_FILE_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "tiff", "avif", "heic"})
_SSH_REMOTE_TAIL = re.compile(r":[\w~/.]")


def _find_emails(text: str) -> Iterator[_Candidate]:
    at = text.find("@")
    while at != -1:
        span = _email_span(text, at)
        at = text.find("@", at + 1)
        if span is None:
            continue
        start, end = span
        domain = text[text.index("@", start) + 1 : end]
        if domain.rpartition(".")[2].lower() in _FILE_EXTENSIONS:
            continue
        if _SSH_REMOTE_TAIL.match(text, end) or _inside_url_credentials(text, start):
            continue
        if _RESERVED_EMAIL_DOMAIN.search(domain):
            yield _Candidate("email", start, end, 0.80, "email address at a reserved example domain (RFC 2606)")
        else:
            yield _Candidate("email", start, end, 0.95, "email address")


def _email_span(text: str, at: int) -> tuple[int, int] | None:
    domain = _EMAIL_DOMAIN.match(text, at + 1)
    if domain is None or at == 0 or text[at - 1] not in _LOCAL_EDGE_END:
        return None
    start = at
    while start > 0 and text[start - 1] in _LOCAL_CHARS:
        start -= 1
        if at - start > MAX_LOCAL_PART:
            return None  # longer than an address allows: a blob, not an address
    while start < at and not text[start].isalnum():
        start += 1  # quotes and dots before an address are punctuation, not part of it
    return (start, domain.end()) if start < at else None


def _inside_url_credentials(text: str, start: int) -> bool:
    token_start = max(text.rfind(" ", 0, start), text.rfind("\n", 0, start)) + 1
    return "://" in text[token_start:start]


# ---------------------------------------------------------------------------------------------- card

# Not a window of a longer run of digit groups (a tracking number, an IBAN's tail): no digit group
# right before, and no further group of four right after (an expiry "12/28" or a CVC may follow).
_CARD = re.compile(r"\d(?<![\w.,/-]\d)(?<!\d[ -]\d)(?:[ -]?\d){12,18}(?![\w]|[.,/-]\d|[ -]\d{4})")
# (prefix range, allowed lengths, brand); checked in order, the first matching prefix decides.
_IIN_TABLE: tuple[tuple[tuple[int, int], frozenset[int], str], ...] = (
    ((34, 34), frozenset({15}), "American Express"),
    ((37, 37), frozenset({15}), "American Express"),
    ((4, 4), frozenset({13, 16, 19}), "Visa"),
    ((51, 55), frozenset({16}), "Mastercard"),
    ((2221, 2720), frozenset({16}), "Mastercard"),
    ((2200, 2204), frozenset({16, 17, 18, 19}), "Mir"),
    ((6011, 6011), frozenset(range(16, 20)), "Discover"),
    ((644, 649), frozenset(range(16, 20)), "Discover"),
    ((65, 65), frozenset(range(16, 20)), "Discover"),
    ((622126, 622925), frozenset(range(16, 20)), "Discover/UnionPay"),
    ((62, 62), frozenset(range(16, 20)), "UnionPay"),
    ((300, 305), frozenset(range(14, 20)), "Diners Club"),
    ((3095, 3095), frozenset(range(14, 20)), "Diners Club"),
    ((36, 36), frozenset(range(14, 20)), "Diners Club"),
    ((38, 39), frozenset(range(14, 20)), "Diners Club"),
    ((3528, 3589), frozenset(range(16, 20)), "JCB"),
    ((50, 50), frozenset(range(13, 20)), "Maestro"),
    ((56, 58), frozenset(range(13, 20)), "Maestro"),
    ((6304, 6304), frozenset(range(13, 20)), "Maestro"),
    ((6759, 6759), frozenset(range(13, 20)), "Maestro"),
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def card_brand(digits: str) -> str | None:
    """The issuer whose prefix and length fit, if any."""
    for (low, high), lengths, brand in _IIN_TABLE:
        width = len(str(low))
        if low <= int(digits[:width]) <= high:
            return brand if len(digits) in lengths else None
    return None


def _card_grouping_ok(raw: str) -> bool:
    groups = re.split(r"[ -]", raw)
    if len(groups) == 1:
        return True
    return len(groups[0]) == 4 and all(3 <= len(group) <= 6 for group in groups[1:])


def _find_cards(text: str) -> Iterator[_Candidate]:
    for match in _CARD.finditer(text):
        raw = match.group()
        digits = re.sub(r"\D", "", raw)
        if len(set(digits)) == 1 or not _card_grouping_ok(raw) or not luhn_valid(digits):
            continue
        brand = card_brand(digits)
        if brand:
            yield _Candidate("card", match.start(), match.end(), 0.95, f"{brand} card number, Luhn valid")


# ---------------------------------------------------------------------------------------------- IBAN

_IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
    "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
# Country, check digits, then up to 30 characters in optional single-space groups; the registry length
# for the country then says where the IBAN really ends (so a following word is not swallowed).
_IBAN = re.compile(r"[A-Za-z](?<![A-Za-z0-9][A-Za-z])[A-Za-z]\d{2}(?: ?[A-Za-z0-9]){10,30}")


def iban_valid(compact: str) -> bool:
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _find_ibans(text: str) -> Iterator[_Candidate]:
    for match in _IBAN.finditer(text):
        country = match.group()[:2].upper()
        length = _IBAN_LENGTHS.get(country)
        if length is None:
            continue
        end = _end_after_n_alnum(text, match.start(), length, match.end())
        if end is None or (end < len(text) and text[end].isalnum()):
            continue
        compact = re.sub(r"[^A-Za-z0-9]", "", text[match.start() : end]).upper()
        if iban_valid(compact):
            yield _Candidate("iban", match.start(), end, 0.97, f"IBAN ({country}), length and mod-97 check valid")


def _end_after_n_alnum(text: str, start: int, count: int, limit: int) -> int | None:
    seen = 0
    for index in range(start, limit):
        if text[index].isalnum():
            seen += 1
            if seen == count:
                return index + 1
    return None


# ---------------------------------------------------------------------------------------------- IP

_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:|:){2,7}(?::|[0-9A-Fa-f]{1,4})(?![\w:]|\.\w)")
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")
_VERSION_WORDS = re.compile(
    r"\b(?:version|ver\.?|release|build|kernel|firmware|chrome|firefox|python|node|oid|snmp|v)\s*$", re.I
)
_PUBLIC_RESOLVERS = frozenset({
    "8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1", "9.9.9.9", "149.112.112.112", "208.67.222.222",
    "208.67.220.220", "2001:4860:4860::8888", "2001:4860:4860::8844", "2606:4700:4700::1111",
    "2606:4700:4700::1001",
})  # fmt: skip


def _find_ips(text: str, allow_private: bool) -> Iterator[_Candidate]:
    for match in _IPV4.finditer(text):
        octets = match.group().split(".")
        if any(len(octet) > 1 and octet[0] == "0" for octet in octets) or any(int(o) > 255 for o in octets):
            continue
        if _VERSION_WORDS.search(text, max(0, match.start() - 12), match.start()):
            continue
        candidate = _classify_ip(match.group(), match.start(), match.end(), allow_private)
        if candidate:
            yield candidate
    if _IPV6_HINT.search(text) is None:
        return  # the full IPv6 pattern is slow to scan; most texts have no colon-hex-colon at all
    for match in _IPV6.finditer(text):
        candidate = _classify_ip(match.group(), match.start(), match.end(), allow_private)
        if candidate:
            yield candidate


def _classify_ip(raw: str, start: int, end: int, allow_private: bool) -> _Candidate | None:
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return None
    if str(address) in _PUBLIC_RESOLVERS:
        return None
    if address.version == 6 and address.exploded[0] not in "23":
        # Global unicast IPv6 is 2000::/3; anything else that parses is a C++/Rust path or a
        # non-routable range, and never an address a person would be identified by.
        if allow_private or not _looks_like_full_ipv6(raw):
            return None
        return _Candidate("ip_address", start, end, 0.60, f"non-public IPv{address.version} address")
    if address.is_global:
        return _Candidate("ip_address", start, end, 0.85, f"public IPv{address.version} address")
    if allow_private:
        return None
    return _Candidate("ip_address", start, end, 0.60, f"non-public IPv{address.version} address")


def _looks_like_full_ipv6(raw: str) -> bool:
    return raw.count(":") >= 2 and sum(1 for group in raw.split(":") if group) >= 2


# ---------------------------------------------------------------------------------------------- phone

_PHONE = re.compile(r"[+(\d](?<![\w+#$€£¥/.,:=-].)(?:(?<=[+(])\d)?[\d ().-]{4,24}\d(?![\w]|[.,-]\d)")
_PHONE_CONTEXT = re.compile(
    r"\b(?:phone|tel|telephone|mobile|mob|cell|call|ring|text|sms|whatsapp|signal|fax|dial|contact|reach|"
    r"number is|my number|hotline|helpline|"
    r"telefon|handy|ruf|anrufen|rufnummer|mobil|t[ée]l[ée]phone|t[ée]l|portable|appel\w*|"
    r"m[óo]vil|ll[áa]m\w*|tel[ée]fono|celular|cellulare|chiam\w*|bel)\b|電話",
    re.I,
)
_PHONE_NOT_CONTEXT = re.compile(
    r"\b(?:order|invoice|inv|tracking|ticket|account|acct|ref|reference|isbn|ean|upc|serial|sn|part|po|"
    r"pid|port|id|sku|routing|iban|bic|nir|ssn|dni|steuer\w*|case|claim|policy)\b[\s#:.no-]*$",
    re.I,
)
_PHONE_TYPES = (
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.PAGER,
    PhoneNumberType.UAN,
    PhoneNumberType.VOICEMAIL,
)
_DATE_SHAPE = re.compile(r"\d{4}([-./])\d{1,2}\1\d{1,2}|\d{1,2}([-./])\d{1,2}\2\d{2,4}")
_IPV4_SHAPE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_CURRENCY_BEFORE = re.compile(r"[$€£¥₹]\s?$|\b(?:USD|EUR|GBP|CHF|JPY|INR|AUD|CAD)\s?$", re.I)
_CURRENCY_AFTER = re.compile(r"\s?(?:[$€£¥₹%]|kr\b|usd\b|eur\b|gbp\b|km\b|kg\b|ms\b|m\b|px\b)", re.I)


def _find_phones(text: str, regions: Sequence[_RegionPlan]) -> Iterator[_Candidate]:
    for match in _PHONE.finditer(text):
        candidate = _phone_candidate(text, match.group(), match.start(), regions)
        if candidate:
            yield candidate


def _phone_candidate(text: str, raw: str, start: int, regions: Sequence[_RegionPlan]) -> _Candidate | None:
    raw = raw.rstrip(" (.-")
    if raw.startswith("(") and ")" not in raw:
        raw, start = raw[1:].lstrip(), start + 1 + (len(raw[1:]) - len(raw[1:].lstrip()))
    end = start + len(raw)
    digits = re.sub(r"\D", "", raw)
    if not 7 <= len(digits) <= 15 or not _phone_shape_ok(raw):
        return None
    if _CURRENCY_BEFORE.search(text, max(0, start - 5), start) or _CURRENCY_AFTER.match(text, end):
        return None
    if _PHONE_NOT_CONTEXT.search(text, max(0, start - 24), start):
        return None
    has_context = _context(text, start, _PHONE_CONTEXT)
    international = raw.startswith("+") or (raw.startswith("00") and raw[2:3] != "0")
    if international:
        number = _international_number(digits[2:] if raw.startswith("00") else digits)
        if number is None:
            return None
        score = 0.95 if has_context else 0.90
        return _Candidate("phone", start, end, score, f"international phone number (+{number.country_code}), valid")
    grouped = bool(re.search(r"[ ().-]", raw))
    if not (grouped or has_context):
        return None  # a bare digit run is an id, an amount or a timestamp unless someone says "call"
    if not _national_layout_ok(raw, digits, grouped):
        return None
    region = next((plan.region for plan in regions if plan.accepts(raw, digits)), None)
    if region is None:
        return None
    score = 0.90 if has_context else (0.75 if grouped else 0.60)
    return _Candidate("phone", start, end, score, f"national phone number ({region} format), valid")


def _phone_shape_ok(raw: str) -> bool:
    if re.search(r"[ .-]{2}|[.-][ .-]", raw) or raw.count("(") != raw.count(")"):
        return False
    if _DATE_SHAPE.fullmatch(raw) or _IPV4_SHAPE.fullmatch(raw):
        return False
    groups = [group for group in re.split(r"[ ().-]+", raw.lstrip("+")) if group]
    if [len(group) for group in groups] == [3, 2, 4] and "-" in raw:
        return False  # the US SSN layout
    # One-digit groups belong to ISBNs, scores and sections -- except right after a country code.
    allowed_short = {0, 1} if raw.startswith(("+", "00")) else set()
    return all(len(group) >= 2 or index in allowed_short for index, group in enumerate(groups))


def _national_layout_ok(raw: str, digits: str, grouped: bool) -> bool:
    if digits.startswith("0"):
        return 9 <= len(digits) <= 12  # trunk prefix: UK, DE, FR, IT, NL, AU, ...
    groups = [len(group) for group in re.split(r"[ ().-]+", raw) if group]
    # NANP without trunk prefix: (415) 555-0132, 415-555-0132, 415.555.0132, 1 415 555 0132
    return groups in ([3, 3, 4], [1, 3, 3, 4]) or (not grouped and len(digits) == 10)


@dataclass(frozen=True, slots=True)
class _RegionPlan:
    """How to validate a national number for one region, decided once from its metadata.

    `phonenumbers.parse` costs about 40 us and a trunk-0 number may be tried against a dozen
    regions; for the NANP and for regions whose only national prefix is a plain "0" the national
    significant number is known without parsing, and validation alone costs 1-25 us.
    """

    region: str
    country_code: int
    mode: str  # "nanp", "trunk0" or "parse"

    @classmethod
    def for_region(cls, region: str) -> _RegionPlan:
        metadata = PhoneMetadata.metadata_for_region(region.upper())
        if metadata is None or metadata.country_code is None:
            raise ValueError(f"unknown phone region {region!r}")
        if metadata.country_code == 1:
            mode = "nanp"
        elif metadata.national_prefix == "0" and metadata.national_prefix_transform_rule is None:
            mode = "trunk0"
        else:
            mode = "parse"
        return cls(region.upper(), metadata.country_code, mode)

    def accepts(self, raw: str, digits: str) -> bool:
        # A trunk 0 rules out the NANP (it has none) and the NANP layout rules out the others.
        if (self.mode == "nanp") == digits.startswith("0"):
            return False
        if self.mode == "nanp":
            if len(digits) == 11 and digits[0] != "1":
                return False
            return _valid(PhoneNumber(country_code=1, national_number=int(digits[-10:])))
        if self.mode == "trunk0":
            if digits[1] == "0":
                return False  # "00..." is an international prefix or an id, never a trunk-0 national number
            return _valid(PhoneNumber(country_code=self.country_code, national_number=int(digits[1:])))
        return _parse_phone(raw, self.region) is not None


def _international_number(digits: str) -> PhoneNumber | None:
    """A valid number from +CC digits; splits the calling code itself before falling back to `parse`.

    Calling codes are prefix-free, so at most one of the first 1-3 digits is one. The fallback
    covers what only `parse` knows, such as a "(0)" trunk prefix written inside "+44 (0)20 ...".
    """
    for length in (1, 2, 3):
        code = int(digits[:length])
        if code in COUNTRY_CODE_TO_REGION_CODE:
            national = digits[length:]
            zeros = len(national) - len(national.lstrip("0"))
            if national and zeros < len(national):
                number = PhoneNumber(
                    country_code=code,
                    national_number=int(national),
                    italian_leading_zero=zeros > 0 or None,
                    number_of_leading_zeros=zeros if zeros > 1 else None,
                )
                if _valid(number):
                    return number
            break
    return _parse_phone("+" + digits, None)


def _valid(number: PhoneNumber) -> bool:
    return bool(phonenumbers.is_valid_number(number))


def _parse_phone(raw: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


# ---------------------------------------------------------------------------------------------- national ids

_SSN = re.compile(r"(\d(?<![\w-]\d)\d{2})([- ]?)(\d{2})\2(\d{4})(?![\w]|-\d)")
_SSN_CONTEXT = re.compile(r"\b(?:ssn|ss#|ss no|social security|social sec|soc\.? sec)", re.I)
# Numbers published in ads and wallets, or obviously sequential: never anyone's.
_SSN_DUMMIES = frozenset({"078051120", "219099999", "123456789", "987654320", "987654321"})

_NINO = re.compile(r"([A-CEGHJ-PR-TW-Z](?<!\w.)[A-CEGHJ-NPR-TW-Z]) ?(\d{2}) ?(\d{2}) ?(\d{2}) ?([A-D])(?![\w])")
_NINO_BAD_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})
_NINO_CONTEXT = re.compile(r"\b(?:national insurance|ni\s?(?:number|no)|nino)\b", re.I)

_STEUER_ID = re.compile(r"([1-9](?<!\w.)\d) ?(\d{3}) ?(\d{3}) ?(\d{3})(?![\w])")
_STEUER_CONTEXT = re.compile(
    r"steuer|\bidnr|identifikationsnummer|\btax\s?(?:id|identification|number)|\btin\b|finanzamt", re.I
)

_DNI = re.compile(r"(\d(?<!\w\d)\d{7})[- ]?([A-Za-z])(?![\w])")
_NIE = re.compile(r"([XYZxyz](?<!\w.))[- ]?(\d{7})[- ]?([A-Za-z])(?![\w])")
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"

_NIR = re.compile(
    r"([1-478](?<!\w.)) ?(\d{2}) ?(0[1-9]|1[0-2]|[2-9]\d) ?(\d{2}|2[ABab]) ?(\d{3}) ?(\d{3}) ?(\d{2})(?![\w])"
)
_NIR_CONTEXT = re.compile(r"s[ée]cu|\bnir\b|insee|social security", re.I)

_OMOCODE = "LMNPQRSTUV"  # letters that replace digits in a codice fiscale when two people collide
_CF = re.compile(
    r"[A-Za-z](?<!\w.)[A-Za-z]{5}[\dLMNPQRSTUVlmnpqrstuv]{2}[ABCDEHLMPRSTabcdehlmprst][\dLMNPQRSTUVlmnpqrstuv]{2}"
    r"[A-Za-z][\dLMNPQRSTUVlmnpqrstuv]{3}[A-Za-z](?![\w])"
)
_CF_ODD = dict(
    zip(
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14,
         16, 10, 22, 25, 24, 23],
        strict=True,
    )
)  # fmt: skip


def ssn_valid(area: str, group: str, serial: str) -> bool:
    if area in ("000", "666") or area.startswith("9") or group == "00" or serial == "0000":
        return False
    return f"{area}{group}{serial}" not in _SSN_DUMMIES


def steuer_id_valid(digits: str) -> bool:
    if len(digits) != 11 or digits[0] == "0":
        return False
    counts = Counter(digits[:10]).values()
    # Exactly one digit repeats (twice, or three times but not all adjacent); the others appear once.
    if sorted(counts, reverse=True)[0] not in (2, 3) or sum(1 for count in counts if count > 1) != 1:
        return False
    if re.search(r"(\d)\1\1", digits[:10]):
        return False
    product = 10
    for char in digits[:10]:
        total = (int(char) + product) % 10 or 10
        product = (total * 2) % 11
    check = 11 - product
    return (0 if check == 10 else check) == int(digits[10])


def dni_letter(number: int) -> str:
    return _DNI_LETTERS[number % 23]


def nir_valid(compact: str) -> bool:
    body, key = compact[:13].upper(), int(compact[13:])
    if "2A" in body[5:7] or "2B" in body[5:7]:
        offset = 1_000_000 if body[5:7] == "2A" else 2_000_000
        value = int(body[:5] + "20" + body[7:]) - offset
    elif body.isdigit():
        value = int(body)
    else:
        return False
    return 97 - value % 97 == key


def codice_fiscale_valid(code: str) -> bool:
    code = code.upper()
    total = 0
    for index, char in enumerate(code[:15]):
        if index % 2 == 0:
            total += _CF_ODD[char]
        else:
            total += int(char) if char.isdigit() else ord(char) - ord("A")
    return chr(ord("A") + total % 26) == code[15]


def _find_national_ids(text: str) -> Iterator[_Candidate]:
    yield from _find_ssns(text)
    yield from _find_ninos(text)
    yield from _find_steuer_ids(text)
    yield from _find_spanish_ids(text)
    yield from _find_nirs(text)
    yield from _find_codici_fiscali(text)


def _find_ssns(text: str) -> Iterator[_Candidate]:
    for match in _SSN.finditer(text):
        area, separator, group, serial = match.groups()
        if not ssn_valid(area, group, serial):
            continue
        has_context = _context(text, match.start(), _SSN_CONTEXT)
        if separator == "-":
            score = 0.95 if has_context else 0.75
        elif has_context:
            score = 0.85
        else:
            continue  # nine plain or spaced digits are an SSN only when someone says so
        yield _Candidate("national_id", match.start(), match.end(), score, "US Social Security number")


def _find_ninos(text: str) -> Iterator[_Candidate]:
    for match in _NINO.finditer(text):
        if match.group(1) in _NINO_BAD_PREFIXES:
            continue
        score = 0.95 if _context(text, match.start(), _NINO_CONTEXT) else 0.85
        yield _Candidate("national_id", match.start(), match.end(), score, "UK National Insurance number")


def _find_steuer_ids(text: str) -> Iterator[_Candidate]:
    for match in _STEUER_ID.finditer(text):
        if steuer_id_valid("".join(match.groups())) and _context(text, match.start(), _STEUER_CONTEXT):
            yield _Candidate(
                "national_id", match.start(), match.end(), 0.90, "German tax id (Steuer-ID), check digit valid"
            )


def _find_spanish_ids(text: str) -> Iterator[_Candidate]:
    for match in _DNI.finditer(text):
        if dni_letter(int(match.group(1))) == match.group(2).upper():
            yield _Candidate("national_id", match.start(), match.end(), 0.90, "Spanish DNI, check letter valid")
    for match in _NIE.finditer(text):
        prefix, number, letter = match.groups()
        if dni_letter(int(str("XYZ".index(prefix.upper())) + number)) == letter.upper():
            yield _Candidate("national_id", match.start(), match.end(), 0.90, "Spanish NIE, check letter valid")


def _find_nirs(text: str) -> Iterator[_Candidate]:
    for match in _NIR.finditer(text):
        if nir_valid("".join(match.groups())):
            score = 0.95 if _context(text, match.start(), _NIR_CONTEXT) else 0.90
            yield _Candidate("national_id", match.start(), match.end(), score, "French NIR, key valid")


def _find_codici_fiscali(text: str) -> Iterator[_Candidate]:
    for match in _CF.finditer(text):
        if codice_fiscale_valid(match.group()):
            yield _Candidate(
                "national_id", match.start(), match.end(), 0.95, "Italian codice fiscale, check letter valid"
            )


# ---------------------------------------------------------------------------------------------- secrets

# (literals one of which must occur, pattern, score, detail): provider formats whose prefix and
# length alone are specific. The literal test (a substring search) spares most texts the regex scan.
_TOKEN_PATTERNS: tuple[tuple[tuple[str, ...], re.Pattern[str], float, str], ...] = (
    (
        ("AKIA", "ASIA", "ABIA", "ACCA"),
        re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
        0.95,
        "AWS access key id",
    ),
    (
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        re.compile(r"(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36,251}(?![A-Za-z0-9_])"),
        0.97,
        "GitHub token",
    ),
    (
        ("github_pat_",),
        re.compile(r"(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{50,251}(?![A-Za-z0-9_])"),
        0.97,
        "GitHub fine-grained token",
    ),
    (
        ("xox",),
        re.compile(r"(?<![\w-])xox[abposre]-(?:[0-9A-Za-z]+-){1,4}[0-9A-Za-z]{8,}(?![\w-])"),
        0.95,
        "Slack token",
    ),
    (
        ("hooks.slack.com",),
        re.compile(r"https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]{16,}"),
        0.95,
        "Slack webhook URL",
    ),
    (("_live_",), re.compile(r"(?<![\w])(?:sk|rk)_live_[0-9A-Za-z]{16,247}(?![\w])"), 0.97, "Stripe live secret key"),
    (("_test_",), re.compile(r"(?<![\w])(?:sk|rk)_test_[0-9A-Za-z]{16,247}(?![\w])"), 0.70, "Stripe test secret key"),
    (("whsec_",), re.compile(r"(?<![\w])whsec_[0-9A-Za-z]{24,}(?![\w])"), 0.90, "Stripe webhook signing secret"),
    (
        ("sk-ant-",),
        re.compile(r"(?<![\w-])sk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{40,}(?![\w-])"),
        0.97,
        "Anthropic API key",
    ),
    (
        ("sk-proj-", "sk-svcacct-", "sk-admin-"),
        re.compile(r"(?<![\w-])sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}(?![\w-])"),
        0.97,
        "OpenAI project/service API key",
    ),
    (
        ("T3BlbkFJ",),
        re.compile(r"(?<![\w-])sk-[A-Za-z0-9]{20,}T3BlbkFJ[A-Za-z0-9]{20,}(?![\w-])"),
        0.97,
        "OpenAI API key",
    ),
    (("AIza",), re.compile(r"(?<![\w-])AIza[0-9A-Za-z_-]{35}(?![\w-])"), 0.95, "Google API key"),
)
# Legacy OpenAI-style `sk-` keys have no marker: they need length and mixed character classes, so
# "sk-learn" or "sk-SK" never qualify.
_GENERIC_SK = re.compile(r"sk-(?<![\w-]sk-)[A-Za-z0-9]{32,}(?![\w-])")
_PEM = re.compile(
    r"-----BEGIN ((?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?)-----"
    r"(?P<body>[\s\S]*?)(?:-----END \1-----|\Z)"
)
_JWT = re.compile(r"eyJ(?<![\w-]eyJ)[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*(?![\w-])")
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_AWS_SECRET_CONTEXT = re.compile(r"aws_?secret|secret_?access_?key|secretaccesskey|aws.{0,20}secret", re.I)
_AWS_KEY_ID = re.compile(r"(?:AKIA|ASIA)[A-Z0-9]{16}")
# Matched against an ASCII-lowercased copy of the text (same length, so offsets hold): a
# case-insensitive alternation is many times slower to scan in `re`.
_ASSIGNMENT = re.compile(
    r"(?:pass(?:word|wd|phrase)?|pwd|secret|api[_-]?key|apikey|access[_-]?key|token|auth[_-]?key|"
    r"client[_-]?secret|private[_-]?key|credentials?)[\w.-]*[\"']?\s*(?:=>|:=|=|:)\s*(?P<quote>[\"']?)"
    r"(?P<value>[^\s\"'`,;]{6,200})"
)
_CLI_FLAG = re.compile(r"--(?:password|passwd|token|api-key|secret)[= ](?P<quote>[\"']?)(?P<value>[^\s\"']{6,200})")
_URL_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@]{1,64}:(?P<value>[^\s@/]{3,128})@[\w.-]+", re.I)
_BEARER = re.compile(r"\bBearer\s+(?P<value>[A-Za-z0-9._~+/-]{20,}=*)")
_PLACEHOLDER = re.compile(
    r"^[<{$%]|[\[(]|your|xxx|\*\*\*|changeme|placeholder|dummy|example|redacted|replace|secret_here|<|>|\.\.\.",
    re.I,
)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_ATTRIBUTE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


def shannon_entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _char_classes(value: str) -> int:
    return sum(
        (any(c.islower() for c in value), any(c.isupper() for c in value), any(c.isdigit() for c in value),
         any(not c.isalnum() for c in value))
    )  # fmt: skip


def _looks_like_secret_value(value: str) -> bool:
    if _PLACEHOLDER.search(value) or _ENV_NAME.fullmatch(value) or _is_attribute_access(value):
        return False
    if value.lower() in {"true", "false", "none", "null", "required", "optional", "string"}:
        return False
    return len(value) >= 8 and shannon_entropy(value) >= 3.0 and _char_classes(value) >= 2


def _is_attribute_access(value: str) -> bool:
    # `settings.SECRET_KEY`, `self.api_key`: code, not a literal. Random secrets may contain dots too
    # (Azure client secrets do) but are full of digits, which identifiers rarely are.
    return _ATTRIBUTE.fullmatch(value) is not None and sum(char.isdigit() for char in value) <= 2


def _find_secrets(text: str) -> Iterator[_Candidate]:
    for literals, pattern, score, detail in _TOKEN_PATTERNS:
        if not any(literal in text for literal in literals):
            continue
        for match in pattern.finditer(text):
            found_score, found_detail = score, detail
            if "EXAMPLE" in match.group():
                found_score, found_detail = 0.80, f"{detail} (vendor documentation example)"
            yield _Candidate("secret", match.start(), match.end(), found_score, found_detail)
    for match in _GENERIC_SK.finditer(text) if "sk-" in text else ():
        if _char_classes(match.group()[3:]) >= 3:
            yield _Candidate("secret", match.start(), match.end(), 0.85, "OpenAI-style sk- API key")
    yield from _find_pem_keys(text)
    yield from _find_jwts(text)
    yield from _find_aws_secrets(text)
    yield from _find_assigned_secrets(text)


def _find_pem_keys(text: str) -> Iterator[_Candidate]:
    for match in _PEM.finditer(text) if "PRIVATE KEY" in text else ():
        # A header alone ("it should start with -----BEGIN RSA PRIVATE KEY-----") is no key.
        if len(re.sub(r"[^A-Za-z0-9+/=]", "", match.group("body"))) >= 40:
            yield _Candidate("secret", match.start(), match.end(), 0.99, f"PEM block: {match.group(1).lower()}")


def _find_jwts(text: str) -> Iterator[_Candidate]:
    for match in _JWT.finditer(text) if "eyJ" in text else ():
        header = _b64url_json(match.group().split(".", 1)[0])
        if isinstance(header, dict) and "alg" in header:
            yield _Candidate("secret", match.start(), match.end(), 0.90, "JSON Web Token (header decodes)")
        else:
            yield _Candidate("secret", match.start(), match.end(), 0.70, "JSON Web Token shape")


def _b64url_json(segment: str) -> object:
    try:
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError):
        return None


def _find_aws_secrets(text: str) -> Iterator[_Candidate]:
    has_key_id = _AWS_KEY_ID.search(text) is not None
    # Every context phrase contains "secret"; the substring test spares the case-insensitive scan.
    if not has_key_id and not ("secret" in text.lower() and _AWS_SECRET_CONTEXT.search(text)):
        return
    for match in _AWS_SECRET.finditer(text):
        value = match.group()
        if _char_classes(value) < 3 or shannon_entropy(value) < 4.0:
            continue  # hex digests and words are not base64 secrets
        if _context(text, match.start(), _AWS_SECRET_CONTEXT, window=40):
            yield _Candidate("secret", match.start(), match.end(), 0.90, "AWS secret access key (named)")
        elif has_key_id:
            yield _Candidate("secret", match.start(), match.end(), 0.75, "AWS secret access key (next to a key id)")


def _fold_case(text: str) -> str:
    """Lowercase with offsets preserved: `str.lower` when it keeps the length (nearly always), else ASCII only."""
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else text.translate(_ASCII_LOWER)


def _find_assigned_secrets(text: str) -> Iterator[_Candidate]:
    folded = _fold_case(text)
    for pattern, haystack, detail in (
        (_ASSIGNMENT, folded, "credential assigned to a secret-named key"),
        (_CLI_FLAG, folded, "credential passed as a command-line flag"),
        (_BEARER, text, "bearer token"),
    ):
        if pattern is _BEARER and "Bearer" not in text:
            continue  # its leading \b defeats the regex engine's literal-prefix scan
        for match in pattern.finditer(haystack):
            value = text[match.start("value") : match.end("value")]
            if _looks_like_secret_value(value):
                score = 0.80 if len(value) >= 12 and shannon_entropy(value) >= 3.5 else 0.65
                yield _Candidate("secret", match.start("value"), match.end("value"), score, detail)
    for match in _URL_CREDENTIALS.finditer(text) if "://" in text else ():
        value = match.group("value")
        if not (_PLACEHOLDER.search(value) or value.lower() in {"password", "pass", "secret", "pwd"}):
            yield _Candidate("secret", match.start("value"), match.end("value"), 0.85, "password inside a URL")


# ---------------------------------------------------------------------------------------------- detector


def _resolve_overlaps(candidates: list[_Candidate]) -> list[_Candidate]:
    """Keep the strongest of overlapping candidates: score, then kind specificity, then length."""
    ranked = sorted(candidates, key=lambda c: (-c.score, -_KIND_PRIORITY[c.kind], -(c.end - c.start), c.start))
    kept: list[_Candidate] = []
    for candidate in ranked:
        if all(candidate.end <= other.start or candidate.start >= other.end for other in kept):
            kept.append(candidate)
    return sorted(kept, key=lambda c: (c.start, c.end))


class PIIDetector:
    """Personal data and credentials in a message; see the module docstring for what counts.

    Options (from settings, `PIIDetector(**options)`):
    - kinds: which of KINDS to look for (default: all).
    - allow_private_ips: when true (the default), loopback/private/documentation addresses are not
      reported; when false they are, at 0.60.
    - phone_regions: ISO regions whose national formats are tried for numbers without +CC, in order.
    """

    name = "pii"

    def __init__(
        self,
        kinds: list[str] | None = None,
        allow_private_ips: bool = True,
        phone_regions: list[str] | None = None,
    ) -> None:
        unknown = set(kinds or ()) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown PII kinds {sorted(unknown)}; known: {list(KINDS)}")
        self.kinds: frozenset[str] = frozenset(kinds) if kinds is not None else frozenset(KINDS)
        self.allow_private_ips = allow_private_ips
        self.phone_regions: tuple[str, ...] = tuple(phone_regions or DEFAULT_PHONE_REGIONS)
        self._region_plans = tuple(_RegionPlan.for_region(region) for region in self.phone_regions)
        self._finders = self._select_finders()
        self._warm_up()

    def check(self, text: str, *, direction: Direction, context: CheckContext) -> list[Finding]:
        # Same rules both ways: a user pasting a key and a model echoing one are the same leak.
        candidates = [candidate for finder in self._finders for candidate in finder(text)]
        return [c.finding() for c in _resolve_overlaps([c for c in candidates if c.score >= MIN_SCORE])]

    def _select_finders(self) -> list[Callable[[str], Iterator[_Candidate]]]:
        available: dict[str, Callable[[str], Iterator[_Candidate]]] = {
            "secret": _find_secrets,
            "iban": _find_ibans,
            "card": _find_cards,
            "national_id": _find_national_ids,
            "email": _find_emails,
            "ip_address": lambda text: _find_ips(text, self.allow_private_ips),
            "phone": lambda text: _find_phones(text, self._region_plans),
        }
        return [finder for kind, finder in available.items() if kind in self.kinds]

    def _warm_up(self) -> None:
        if "phone" in self.kinds:
            _warm_phone_metadata()


_phone_metadata_lock = threading.Lock()
_phone_metadata_warm = False


def _warm_phone_metadata() -> None:
    """Once per process: load every region's metadata and compile its patterns (about 0.35 s).

    phonenumbers reads metadata and compiles patterns on first use per region and number type, which
    costs 3-15 ms each time, and by default it relies on `re`'s 512-entry cache, which the rest of a
    Django process competes for -- evicted patterns are recompiled later. Its own pattern cache
    (bounded by the metadata, about 1,300 patterns / 2.5 MB) plus one pass over every region's
    example numbers moves all of that to start-up, so the first "+91 ..." a user sends is not slow.
    """
    global _phone_metadata_warm
    with _phone_metadata_lock:
        if _phone_metadata_warm:
            return
        enable_pattern_cache()
        for region in phonenumbers.SUPPORTED_REGIONS:
            for number_type in _PHONE_TYPES:
                example = phonenumbers.example_number_for_type(region, number_type)
                if example is not None:
                    phonenumbers.is_valid_number(example)
        _phone_metadata_warm = True
