"""Rate limits per user, per address and per username: a sliding-window log in Redis.

Each subject (a user sending, an address signing up, a username failing to log in) has a sorted
set of the times of its recent attempts. One Lua script checks every rule of an attempt and, only
if all of them have room, records it in all of them: the check and the write are one atomic step,
so any number of processes and threads together never let more than N through in a window, and an
attempt refused by one rule costs nothing under the others. A refused attempt is not counted (the
wait it is told is exact), but it is recorded for the admin in a hash that expires when the limit
lifts, indexed by a sorted set of who is limited until when: no database write per refusal.

The clock is Redis's own `TIME` unless a caller passes `now` (tests move time that way), so several
nodes with drifting clocks still share one window. If Redis cannot be reached the attempt is
allowed and a warning logged: a limiter outage must not lock everyone out of the product.

Limits are settings of the form "N/S": at most N attempts in any S seconds ("" or "0" turns one
off). Addresses come from `client_ip_*`, which trusts X-Forwarded-For only from `TRUSTED_PROXIES`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast
from weakref import WeakKeyDictionary

import redis
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from chatproject import redis_client

logger = logging.getLogger(__name__)

USERNAME_KEY_CHARS = 150  # Django's longest username; longer input cannot be an account anyway
# Limiter scripts in flight at once per event loop; each takes well under a millisecond in Redis.
ASYNC_CONCURRENCY = 32

_async_slots_by_loop: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = WeakKeyDictionary()


class Action(StrEnum):
    SEND = "send"
    SIGNUP = "signup"
    LOGIN = "login"


class Kind(StrEnum):
    USER = "user"
    IP = "ip"
    USERNAME = "username"


@dataclass(frozen=True)
class Rate:
    limit: int
    window_seconds: int

    @property
    def window_ms(self) -> int:
        return self.window_seconds * 1000


@dataclass(frozen=True)
class Rule:
    """One limit on one subject: "at most `rate.limit` `action`s by this `kind` `value`"."""

    action: Action
    kind: Kind
    value: str
    rate: Rate

    @property
    def subject_id(self) -> str:
        return subject_id(self.action, self.kind, self.value)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_ms: int = 0
    blocked_by: Rule | None = None
    # The entry this attempt added to each window: `ratelimit_release` takes it back out.
    token: str = ""
    rules: tuple[Rule, ...] = ()

    @property
    def retry_after(self) -> int:
        """Whole seconds to wait, rounded up: waiting this long is always enough."""
        return max(1, math.ceil(self.retry_after_ms / 1000)) if not self.allowed else 0

    @property
    def message(self) -> str:
        if self.allowed or self.blocked_by is None:
            return ""
        wait = f"Try again in {self.retry_after} s."
        if self.blocked_by.action == Action.SEND and self.blocked_by.kind == Kind.IP:
            return f"Too many messages from your network. {wait}"
        if self.blocked_by.action == Action.SEND:
            return f"You are sending messages too fast. {wait}"
        if self.blocked_by.kind == Kind.USERNAME:
            return f"Too many failed log-ins for this username. {wait}"
        return f"Too many attempts from your network. {wait}"


ALLOWED = Decision(allowed=True)


class RateLimited(Exception):
    """An attempt refused by a rate limit; carries the decision for the words and the wait."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.message)
        self.decision = decision
        self.message = decision.message
        self.retry_after = decision.retry_after


@dataclass(frozen=True)
class LimitedSubject:
    """A subject that is refused right now, as the admin lists it."""

    subject_id: str
    action: str
    kind: str
    value: str
    refused: int
    first_refused: datetime
    last_refused: datetime
    until: datetime
    rate: str


# --- Settings ----------------------------------------------------------------------------------------


def rate_parse(value: object, *, setting: str) -> Rate | None:
    """ "N/S" → Rate(N, S); "", "0", "off" or N = 0 → None (no limit). Anything else is a config error."""
    text = str(value or "").strip().lower()
    if text in {"", "0", "off", "none"}:
        return None
    count, slash, seconds = text.partition("/")
    try:
        limit, window = int(count), int(seconds)
    except ValueError:
        limit, window = -1, -1
    if not slash or limit < 0 or window <= 0:
        raise ImproperlyConfigured(f'{setting} must look like "20/60" (at most 20 in any 60 seconds), not {value!r}.')
    return Rate(limit, window) if limit > 0 else None


RATE_SETTINGS = (
    "RATE_LIMIT_SEND_USER",
    "RATE_LIMIT_SEND_IP",
    "RATE_LIMIT_SIGNUP_IP",
    "RATE_LIMIT_LOGIN_IP",
    "RATE_LIMIT_LOGIN_USER",
)


def _rate(setting: str) -> Rate | None:
    return rate_parse(getattr(settings, setting, ""), setting=setting)


def trusted_proxies() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for entry in getattr(settings, "TRUSTED_PROXIES", []):
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"TRUSTED_PROXIES has {entry!r}, which is not an address or network.") from None
    return networks


@checks.register(checks.Tags.security)
def check_rate_limit_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """`manage.py check` (and migrate) report a malformed limit before the first request meets it."""
    problems: list[checks.CheckMessage] = []
    for setting in RATE_SETTINGS:
        try:
            _rate(setting)
        except ImproperlyConfigured as error:
            problems.append(checks.Error(str(error), id="ratelimit.E001"))
    try:
        trusted_proxies()
    except ImproperlyConfigured as error:
        problems.append(checks.Error(str(error), id="ratelimit.E002"))
    return problems


# --- Client addresses --------------------------------------------------------------------------------


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def ip_subject(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The key an address is limited under. An IPv6 host usually holds a whole /64, so the /64 is
    the subject; otherwise one machine could walk through addresses to escape its limit."""
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def client_ip(*, peer: str | None, forwarded_for: str | None) -> str | None:
    """The client's address as a rate-limit subject, or None when it is unknown.

    X-Forwarded-For is read only when the peer is a trusted proxy, from the right: each trusted
    hop vouches for the one before it, and the first untrusted address is the client. Entries to
    its left were written by the client itself and are ignored.
    """
    address = _parse_ip(peer) if peer else None
    if address is None:
        return None
    proxies = trusted_proxies()

    def trusted(candidate: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(candidate.version == net.version and candidate in net for net in proxies)

    if forwarded_for and trusted(address):
        for hop in reversed([part for part in forwarded_for.split(",") if part.strip()]):
            parsed = _parse_ip(hop)
            if parsed is None:
                break  # a broken chain: the last hop we could check is the best we know
            address = parsed
            if not trusted(parsed):
                break
    return ip_subject(address)


def client_ip_from_meta(meta: Mapping[str, Any]) -> str | None:
    """The client's address for a Django request (`request.META`)."""
    return client_ip(peer=meta.get("REMOTE_ADDR"), forwarded_for=meta.get("HTTP_X_FORWARDED_FOR"))


def client_ip_from_scope(scope: Mapping[str, Any]) -> str | None:
    """The client's address for an ASGI connection scope (the chat socket)."""
    client = scope.get("client")
    peer = str(client[0]) if client else None
    forwarded = [value.decode("latin-1") for name, value in scope.get("headers", []) if name == b"x-forwarded-for"]
    return client_ip(peer=peer, forwarded_for=",".join(forwarded) or None)


# --- Rules of each action --------------------------------------------------------------------------------


def _rules(candidates: Iterable[tuple[Action, Kind, str | None, str]]) -> list[Rule]:
    rules = []
    for action, kind, value, setting in candidates:
        rate = _rate(setting)
        if rate is not None and value:
            rules.append(Rule(action, kind, value, rate))
    return rules


def send_rules(*, user_id: int, ip: str | None) -> list[Rule]:
    return _rules(
        [
            (Action.SEND, Kind.USER, str(user_id), "RATE_LIMIT_SEND_USER"),
            (Action.SEND, Kind.IP, ip, "RATE_LIMIT_SEND_IP"),
        ]
    )


def signup_rules(*, ip: str | None) -> list[Rule]:
    return _rules([(Action.SIGNUP, Kind.IP, ip, "RATE_LIMIT_SIGNUP_IP")])


def login_rules(*, ip: str | None, username: str) -> list[Rule]:
    # Case-folded: "Alice" and "alice" are one subject, so case cannot multiply the attempts.
    name = username.strip().casefold()[:USERNAME_KEY_CHARS]
    return _rules(
        [
            (Action.LOGIN, Kind.IP, ip, "RATE_LIMIT_LOGIN_IP"),
            (Action.LOGIN, Kind.USERNAME, name, "RATE_LIMIT_LOGIN_USER"),
        ]
    )


# --- Redis -------------------------------------------------------------------------------------------------


def subject_id(action: str, kind: str, value: str) -> str:
    return f"{action}:{kind}:{value}"


def subject_parse(subject: str) -> tuple[Action, Kind, str] | None:
    """The action, kind and value a subject id names, or None when it names none."""
    action, _, rest = subject.partition(":")
    kind, _, value = rest.partition(":")
    try:
        return (Action(action), Kind(kind), value) if value else None
    except ValueError:
        return None


def _window_key(subject: str) -> str:
    return redis_client.key("rl", "win", subject)


def _record_key(subject: str) -> str:
    return redis_client.key("rl", "rec", subject)


def _index_key() -> str:
    return redis_client.key("rl", "limited")


# KEYS: index, then per rule its window and its record. ARGV: now in ms ("" = Redis TIME), token,
# then per rule: limit, window in ms, subject id. Returns {allowed, retry ms, now ms, blocking rule}.
_HIT_SCRIPT = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local token = ARGV[2]
local n = (#KEYS - 1) / 2
local waits = {}
local retry, blocking = 0, 0
for i = 1, n do
  local window_key = KEYS[2 * i]
  local limit = tonumber(ARGV[3 * i])
  local window = tonumber(ARGV[3 * i + 1])
  redis.call('ZREMRANGEBYSCORE', window_key, '-inf', now - window)
  local count = redis.call('ZCARD', window_key)
  if count >= limit then
    -- room comes back when the entry that puts it over the limit leaves the window
    local entry = redis.call('ZRANGE', window_key, count - limit, count - limit, 'WITHSCORES')
    local wait = tonumber(entry[2]) + window - now
    if wait < 1 then wait = 1 end
    waits[i] = wait
    if wait > retry then retry, blocking = wait, i end
  end
end
if blocking == 0 then
  for i = 1, n do
    redis.call('ZADD', KEYS[2 * i], now, token)
    redis.call('PEXPIRE', KEYS[2 * i], tonumber(ARGV[3 * i + 1]))
  end
  return {1, 0, now, 0}
end
local index = KEYS[1]
redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
for i = 1, n do
  local wait = waits[i]
  if wait then
    local record = KEYS[2 * i + 1]
    redis.call('HSETNX', record, 'first', now)
    redis.call('HINCRBY', record, 'count', 1)
    local rate = ARGV[3 * i] .. ' per ' .. math.floor(tonumber(ARGV[3 * i + 1]) / 1000) .. ' s'
    redis.call('HSET', record, 'last', now, 'until', now + wait, 'rate', rate)
    redis.call('PEXPIRE', record, wait)
    redis.call('ZADD', index, now + wait, ARGV[3 * i + 2])
    if redis.call('PTTL', index) < wait then redis.call('PEXPIRE', index, wait) end
  end
end
return {0, retry, now, blocking}
"""


def _script_call(rules: Sequence[Rule], *, now: float | None, token: str) -> tuple[list[str], list[str | int]]:
    keys = [_index_key()]
    args: list[str | int] = ["" if now is None else int(now * 1000), token]
    for rule in rules:
        keys += [_window_key(rule.subject_id), _record_key(rule.subject_id)]
        args += [rule.rate.limit, rule.rate.window_ms, rule.subject_id]
    return keys, args


def _decision(result: Sequence[Any], rules: Sequence[Rule], token: str) -> Decision:
    allowed, retry_ms, _now, blocking = (int(part) for part in result)
    if allowed:
        return Decision(allowed=True, token=token, rules=tuple(rules))
    return Decision(allowed=False, retry_after_ms=retry_ms, blocked_by=rules[blocking - 1], rules=tuple(rules))


def ratelimit_hit(rules: Sequence[Rule], *, now: float | None = None) -> Decision:
    """Count one attempt against every rule if each has room; otherwise count nothing and say
    which rule refused it and for how long (milliseconds in the decision, whole seconds to show).

    `now` (seconds since the epoch) replaces Redis's clock, for tests that move time.
    """
    if not rules:
        return ALLOWED
    token = uuid.uuid4().hex
    keys, args = _script_call(rules, now=now, token=token)
    try:
        result = redis_client.sync_client().register_script(_HIT_SCRIPT)(keys=keys, args=args)
    except redis.RedisError:
        logger.warning("rate limiter unavailable; allowing %s", rules[0].action, exc_info=True)
        return ALLOWED
    return _decision(result, rules, token)


def _async_slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _async_slots_by_loop.get(loop)
    if slots is None:
        slots = _async_slots_by_loop[loop] = asyncio.Semaphore(ASYNC_CONCURRENCY)
    return slots


async def ratelimit_hit_async(rules: Sequence[Rule], *, now: float | None = None) -> Decision:
    """`ratelimit_hit` for async callers (the chat socket), on the event loop's own client."""
    if not rules:
        return ALLOWED
    token = uuid.uuid4().hex
    keys, args = _script_call(rules, now=now, token=token)
    try:
        client = redis_client.async_client()
        # A burst of sends must queue here, not exhaust the client's connection pool: redis-py
        # raises on an exhausted pool, and failing open then would let the whole burst through.
        async with _async_slots():
            result = await client.register_script(_HIT_SCRIPT)(keys=keys, args=args)
    except redis.RedisError:
        logger.warning("rate limiter unavailable; allowing %s", rules[0].action, exc_info=True)
        return ALLOWED
    return _decision(result, rules, token)


def ratelimit_release(decision: Decision, *, kinds: Iterable[Kind]) -> None:
    """Take an allowed attempt back out of the windows of the given kinds of rule.

    Log-ins count against the username before the password is checked (so parallel guesses cannot
    slip past the limit) and give the slot back when the password was right: only failures count.
    """
    wanted = set(kinds)
    rules = [rule for rule in decision.rules if rule.kind in wanted]
    if not decision.allowed or not decision.token or not rules:
        return
    try:
        with redis_client.sync_client().pipeline(transaction=False) as pipe:
            for rule in rules:
                pipe.zrem(_window_key(rule.subject_id), decision.token)
            pipe.execute()
    except redis.RedisError:
        logger.warning("rate limiter unavailable; a successful log-in still counts", exc_info=True)


async def send_admit_async(*, user_id: int, ip: str | None, now: float | None = None) -> None:
    """Count a chat message against its sender and their address; raise RateLimited if refused."""
    decision = await ratelimit_hit_async(send_rules(user_id=user_id, ip=ip), now=now)
    if not decision.allowed:
        raise RateLimited(decision)


def signup_admit(*, ip: str | None, now: float | None = None) -> Decision:
    """Count a sign-up attempt against the address it comes from."""
    return ratelimit_hit(signup_rules(ip=ip), now=now)


def login_admit(*, ip: str | None, username: str, now: float | None = None) -> Decision:
    """Count a log-in attempt against its address and its username; call `login_succeeded` when
    the password was right, so that only failures count against the username."""
    return ratelimit_hit(login_rules(ip=ip, username=username), now=now)


def login_succeeded(decision: Decision) -> None:
    ratelimit_release(decision, kinds=[Kind.USERNAME])


# --- What the admin sees and does ------------------------------------------------------------------------


def _datetime_ms(value: str | None) -> datetime:
    return datetime.fromtimestamp(int(value or 0) / 1000, tz=UTC)


def redis_now_ms() -> int:
    seconds, micros = redis_client.sync_client().time()
    return int(seconds) * 1000 + int(micros) // 1000


def limited_subjects(*, now: float | None = None, limit: int = 500) -> list[LimitedSubject]:
    """Subjects refused at least once and still limited, the longest wait first."""
    client = redis_client.sync_client()
    now_ms = redis_now_ms() if now is None else int(now * 1000)
    index = _index_key()
    client.zremrangebyscore(index, "-inf", now_ms)
    subjects = cast("list[str]", client.zrevrangebyscore(index, "+inf", f"({now_ms}", start=0, num=limit))
    with client.pipeline(transaction=False) as pipe:
        for subject in subjects:
            pipe.hgetall(_record_key(subject))
        records: list[dict[str, str]] = pipe.execute()
    found = []
    for subject, record in zip(subjects, records, strict=True):
        if not record:
            continue  # cleared, or expired between the two reads
        parsed = subject_parse(subject)
        if parsed is None:
            continue
        action, kind, value = parsed
        found.append(
            LimitedSubject(
                subject_id=subject,
                action=action,
                kind=kind,
                value=value,
                refused=int(record.get("count", 0)),
                first_refused=_datetime_ms(record.get("first")),
                last_refused=_datetime_ms(record.get("last")),
                until=_datetime_ms(record.get("until")),
                rate=record.get("rate", ""),
            )
        )
    return found


def limited_subject_clear(*, subject: str) -> bool:
    """Lift a subject's limit now: forget its recent attempts and its refusals.

    Returns whether it had anything to clear. The caller records who cleared it.
    """
    client = redis_client.sync_client()
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(_window_key(subject), _record_key(subject))
        pipe.zrem(_index_key(), subject)
        deleted, removed = pipe.execute()
    return bool(deleted or removed)


def ratelimits_reset_all() -> int:
    """Forget every window and record under this deployment's prefix (tests, and a fresh start)."""
    client = redis_client.sync_client()
    keys = list(client.scan_iter(match=redis_client.key("rl", "*"), count=1000))
    if keys:
        client.delete(*keys)
    return len(keys)
