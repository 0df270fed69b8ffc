"""Token budgets: what each user may spend per UTC day and month, set by plan, kept exact under load.

A turn is charged in two steps. Before the model is called, `budget_reserve` holds the most the
turn can cost (its prompt tokens as the context builder counted them, plus the model's max output
tokens) against the user's day and month counters. After it, `message_finalize` writes the ledger
row (`UsageRecord`, the truth) and in the same transaction `budget_settle` swaps the hold for that
row's tokens. A reservation is settled once: settling it again changes nothing. A reply that
produced nothing (it failed before its first token, timed out in the queue, was stopped while
waiting) has a ledger row of zero tokens, so it costs nothing.

Concurrent turns cannot overspend because reserving locks the user's counter rows
(`SELECT ... FOR UPDATE`), always in one order (day before month, older period first), checks
`used + reserved + estimate <= limit` and adds to `reserved` before the lock is released.

Periods are UTC days and months whatever TIME_ZONE says: one reset instant for every user, and
the reset message can name it plainly ("00:00 UTC").

Chat replies are what budgets count; summaries and fact extraction run on the product's behalf
and are in the ledger (and on the user's usage page) but not in the budget. A reply served by the
fallback model because the budget was spent is in the ledger under that model, and is not
counted either: counting it against a spent budget would refuse it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from chatproject.llm.config import resolve_model
from chatproject.llm.types import LLMError
from conversations.models import BudgetCounter, BudgetReservation, Message, Plan, UsageRecord, UserPlan

logger = logging.getLogger(__name__)

DAY: str = BudgetCounter.Period.DAY.value
MONTH: str = BudgetCounter.Period.MONTH.value
PERIODS = (DAY, MONTH)  # also the order counter rows are locked in
PERIOD_ADJECTIVE = {DAY: "daily", MONTH: "monthly"}


# --- periods --------------------------------------------------------------------------------------


def period_start(period: str, now: datetime) -> datetime:
    moment = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return moment if period == DAY else moment.replace(day=1)


def period_end(period: str, start: datetime) -> datetime:
    if period == DAY:
        return start + timedelta(days=1)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def duration_phrase(delta: timedelta) -> str:
    """A wait as a person reads it, rounded up to the minute: "3 h 12 min", "12 days"."""
    minutes = max(0, math.ceil(delta.total_seconds() / 60))
    if minutes == 0:
        return "less than a minute"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days >= 2:
        return f"{days + (1 if rest else 0)} days"
    if days == 1:
        return f"1 day {hours} h" if hours else "1 day"
    if hours:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    return f"{mins} min"


def reset_phrase(period: str, resets_at: datetime, now: datetime) -> str:
    """When a budget resets: "resets at 00:00 UTC, in 3 h 12 min"."""
    wait = duration_phrase(resets_at - now)
    if period == DAY:
        return f"resets at {resets_at:%H:%M} UTC, in {wait}"
    return f"resets on {resets_at.day} {resets_at:%B} at {resets_at:%H:%M} UTC, in {wait}"


# --- plans ------------------------------------------------------------------------------------------


def _plan_defaults(name: str) -> dict[str, object]:
    if name == "premium":
        return {
            "label": "Premium",
            "daily_token_limit": settings.BUDGET_PREMIUM_DAILY_TOKENS,
            "monthly_token_limit": settings.BUDGET_PREMIUM_MONTHLY_TOKENS,
            "queue_priority": settings.BUDGET_PREMIUM_QUEUE_PRIORITY,
        }
    return {
        "label": name.replace("-", " ").replace("_", " ").title(),
        "daily_token_limit": settings.BUDGET_FREE_DAILY_TOKENS,
        "monthly_token_limit": settings.BUDGET_FREE_MONTHLY_TOKENS,
        "queue_priority": settings.BUDGET_FREE_QUEUE_PRIORITY,
    }


def plan_default() -> Plan:
    """The plan of users without one of their own (BUDGET_DEFAULT_PLAN).

    A migration creates `free` and `premium`; if the default plan was deleted (or named but never
    created) it is created here at the settings' limits rather than letting every turn fail.
    """
    name = str(settings.BUDGET_DEFAULT_PLAN)
    plan = Plan.objects.filter(name=name).first()
    if plan is None:
        plan, _ = Plan.objects.get_or_create(name=name, defaults=_plan_defaults(name))
    return plan


def plan_for_user(*, user_id: int) -> Plan:
    choice = UserPlan.objects.select_related("plan").filter(user_id=user_id).first()
    return choice.plan if choice is not None else plan_default()


@dataclass(frozen=True)
class Limits:
    plan: Plan
    daily: int  # 0: unlimited
    monthly: int

    def of(self, period: str) -> int:
        return self.daily if period == DAY else self.monthly


def limits_for_user(*, user_id: int) -> Limits:
    """The user's plan and limits; a limit set on the user beats the plan's."""
    choice = UserPlan.objects.select_related("plan").filter(user_id=user_id).first()
    plan = choice.plan if choice is not None else plan_default()
    daily = plan.daily_token_limit
    monthly = plan.monthly_token_limit
    if choice is not None and choice.daily_token_limit is not None:
        daily = choice.daily_token_limit
    if choice is not None and choice.monthly_token_limit is not None:
        monthly = choice.monthly_token_limit
    return Limits(plan=plan, daily=int(daily), monthly=int(monthly))


def budget_estimate(*, model: str, prompt_tokens: int, max_tokens: int | None = None) -> int:
    """The most a turn can cost: the prompt as counted, plus every token the reply may have (the
    model's cap, or the caller's if lower)."""
    cap = resolve_model(model).max_output_tokens
    return int(prompt_tokens) + (min(cap, max_tokens) if max_tokens else cap)


def budget_fallback_model(*, plan: Plan, model: str) -> str | None:
    """The model that answers instead when the budget is spent: the plan's, else the setting's."""
    name = plan.fallback_model or str(settings.BUDGET_FALLBACK_MODEL)
    if not name:
        return None
    try:
        spec = resolve_model(name)
    except LLMError:
        logger.warning("fallback model %r of plan %r is not served here; refusing instead", name, plan.name)
        return None
    return None if spec.name == model else spec.name


# --- status -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodStatus:
    period: str
    limit: int  # 0: unlimited
    used: int
    reserved: int
    starts_at: datetime
    resets_at: datetime

    @property
    def unlimited(self) -> bool:
        return self.limit == 0

    @property
    def remaining(self) -> int | None:
        """Tokens a new turn may still reserve; None when unlimited."""
        return None if self.unlimited else max(0, self.limit - self.used - self.reserved)

    @property
    def adjective(self) -> str:
        return PERIOD_ADJECTIVE[self.period]


@dataclass(frozen=True)
class BudgetStatus:
    plan: Plan
    day: PeriodStatus
    month: PeriodStatus

    @property
    def periods(self) -> tuple[PeriodStatus, PeriodStatus]:
        return self.day, self.month


def budget_status(*, user_id: int, now: datetime | None = None) -> BudgetStatus:
    """Limits, tokens used and reserved, what remains and when it resets, for today and this month."""
    now = now or timezone.now()
    limits = limits_for_user(user_id=user_id)
    starts = {period: period_start(period, now) for period in PERIODS}
    rows = BudgetCounter.objects.filter(user_id=user_id).filter(
        Q(period=DAY, starts_at=starts[DAY]) | Q(period=MONTH, starts_at=starts[MONTH])
    )
    found = {row.period: row for row in rows}

    def status(period: str) -> PeriodStatus:
        row = found.get(period)
        return PeriodStatus(
            period=period,
            limit=limits.of(period),
            used=row.used if row else 0,
            reserved=row.reserved if row else 0,
            starts_at=starts[period],
            resets_at=period_end(period, starts[period]),
        )

    return BudgetStatus(plan=limits.plan, day=status(DAY), month=status(MONTH))


# --- reserve and settle ----------------------------------------------------------------------------


class BudgetExceeded(Exception):
    """The turn would take the user past a budget; `message` says which, and when it resets."""

    code = "budget_exceeded"

    def __init__(self, message: str, *, period: str, limit: int, resets_at: datetime) -> None:
        super().__init__(message)
        self.message = message
        self.period = period
        self.limit = limit
        self.resets_at = resets_at


CounterKey = tuple[str, datetime]


def _lock_order(key: CounterKey) -> tuple[int, datetime]:
    return PERIODS.index(key[0]), key[1]


def _add_to_counters(user_id: int, deltas: dict[CounterKey, tuple[int, int]]) -> dict[CounterKey, tuple[int, int]]:
    """Add (used, reserved) to the user's counter rows, creating missing ones, in one statement;
    returns each row's (used, reserved) after. The rows are written, and so locked until the
    transaction ends, in one global order (VALUES are inserted in the order given), so two
    transactions that need the same rows can never each hold one the other waits for.

    A reserved figure never goes below zero. A negative reserved delta is only ever given back to
    a row its reservation created, so an inserted row never starts negative."""
    keys = sorted(deltas, key=_lock_order)
    table = BudgetCounter._meta.db_table
    rows = ", ".join(["(%s, %s, %s, %s, %s)"] * len(keys))
    params: list[int | str | datetime] = []
    for period, starts_at in keys:
        used, reserved = deltas[(period, starts_at)]
        params += [user_id, period, starts_at, used, reserved]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (user_id, period, starts_at, used, reserved) VALUES {rows} "
            "ON CONFLICT (user_id, period, starts_at) DO UPDATE SET "
            f"used = {table}.used + EXCLUDED.used, reserved = GREATEST(0, {table}.reserved + EXCLUDED.reserved) "
            "RETURNING period, starts_at, used, reserved",
            params,
        )
        return {(period, starts_at): (int(used), int(reserved)) for period, starts_at, used, reserved in cursor}


def _refusal(period: PeriodStatus, tokens: int, now: datetime) -> BudgetExceeded:
    when = reset_phrase(period.period, period.resets_at, now)
    if tokens > period.limit:
        message = (
            f"This message needs up to {tokens:,} tokens (the conversation so far plus the longest possible "
            f"reply), more than your whole {period.adjective} budget of {period.limit:,}. "
            "A new conversation or a shorter message needs fewer."
        )
    else:
        message = (
            f"You have reached your {period.adjective} token budget: {period.used + period.reserved:,} of "
            f"{period.limit:,} tokens used, and this message needs up to {tokens:,}. "
            f"Your {period.adjective} budget {when}."
        )
    return BudgetExceeded(message, period=period.period, limit=period.limit, resets_at=period.resets_at)


def budget_reserve(
    *,
    user_id: int,
    model: str,
    tokens: int,
    message_id: int | None = None,
    now: datetime | None = None,
    limits: Limits | None = None,
) -> BudgetReservation:
    """Hold `tokens` of the user's day and month budgets for one turn, or raise BudgetExceeded.

    Runs in the caller's transaction when there is one (a turn reserves in the transaction that
    stores its messages, so a refusal stores nothing); the counter rows stay locked until it ends.
    `limits`: the user's, when the caller has read them already.
    """
    if tokens < 0:
        raise ValueError("a reservation cannot be negative")
    now = now or timezone.now()
    with transaction.atomic():
        budget_reservations_sweep(user_id=user_id)
        limits = limits or limits_for_user(user_id=user_id)
        starts = {period: period_start(period, now) for period in PERIODS}
        # Reserve first, then judge: a refusal raises out of this block, whose savepoint undoes it.
        after = _add_to_counters(user_id, {(period, starts[period]): (0, tokens) for period in PERIODS})
        over: list[PeriodStatus] = []
        for period in PERIODS:
            used, reserved = after[(period, starts[period])]
            limit = limits.of(period)
            if limit and used + reserved > limit:
                over.append(
                    PeriodStatus(
                        period, limit, used, reserved - tokens, starts[period], period_end(period, starts[period])
                    )
                )
        if over:
            # Name the budget that keeps the user waiting longest: it is the one that matters.
            raise _refusal(max(over, key=lambda status: status.resets_at), tokens, now)
        return BudgetReservation.objects.create(
            user_id=user_id,
            message_id=message_id,
            model=model,
            tokens=tokens,
            day_starts_at=starts[DAY],
            month_starts_at=starts[MONTH],
        )


def _close(reservation: BudgetReservation, *, charge: int, at: datetime, state: str, record_id: int | None) -> None:
    """Give back the hold where it was made and charge `charge` tokens to the periods of `at`
    (the ledger row's time, so counters and ledger agree even when a reply straddles midnight)."""
    held = {(DAY, reservation.day_starts_at), (MONTH, reservation.month_starts_at)}
    charged = {(period, period_start(period, at)) for period in PERIODS} if charge else set()
    deltas = {
        key: (charge if key in charged else 0, -int(reservation.tokens) if key in held else 0) for key in held | charged
    }
    _add_to_counters(int(reservation.user_id), deltas)
    reservation.state = state
    reservation.charged = charge
    reservation.usage_record_id = record_id
    reservation.settled_at = timezone.now()
    reservation.save(update_fields=["state", "charged", "usage_record", "settled_at"])


def _open_reservation(reservation_id: int) -> BudgetReservation | None:
    reservation = BudgetReservation.objects.select_for_update().filter(pk=reservation_id).first()
    if reservation is None or reservation.state != BudgetReservation.State.RESERVED:
        return None
    return reservation


def budget_settle(*, reservation_id: int, record: UsageRecord) -> bool:
    """Charge a turn what its ledger row says and free the rest of its hold. Idempotent: only the
    first call for a reservation changes anything; it returns True, later ones False."""
    with transaction.atomic():
        reservation = _open_reservation(reservation_id)
        if reservation is None:
            return False
        _close(
            reservation,
            charge=record.total_tokens,
            at=record.created_at,
            state=BudgetReservation.State.SETTLED,
            record_id=record.pk,
        )
    return True


def budget_release(*, reservation_id: int) -> bool:
    """Free a hold without charging (the reply is gone). Idempotent, like settling."""
    with transaction.atomic():
        reservation = _open_reservation(reservation_id)
        if reservation is None:
            return False
        _close(reservation, charge=0, at=timezone.now(), state=BudgetReservation.State.RELEASED, record_id=None)
    return True


def budget_reservations_sweep(*, user_id: int) -> int:
    """Close holds whose reply ended without settling them: its process died (the reaper marked it
    interrupted) or its conversation went away. A ledger row for the reply settles it; without one
    nothing is charged. Runs before each reservation, so a dead node's holds cannot pile up."""
    # A hold whose message row is gone is stale once it is older than any live reply could be silent.
    orphaned_before = timezone.now() - timedelta(seconds=float(settings.CHAT_STALE_STREAM_SECONDS))
    open_holds = BudgetReservation.objects.select_for_update(skip_locked=True, of=("self",)).filter(
        Q(message__isnull=True, created_at__lt=orphaned_before)
        | Q(message__isnull=False) & ~Q(message__status=Message.Status.STREAMING),
        user_id=user_id,
        state=BudgetReservation.State.RESERVED,
    )
    closed = 0
    # No savepoint of its own: it runs first in budget_reserve's, which a failure here rolls back.
    with transaction.atomic(savepoint=False):
        for reservation in open_holds:
            record = (
                UsageRecord.objects.filter(message_id=reservation.message_id, purpose=UsageRecord.Purpose.CHAT)
                .order_by("-created_at")
                .first()
                if reservation.message_id is not None
                else None
            )
            if record is not None:
                _close(
                    reservation,
                    charge=record.total_tokens,
                    at=record.created_at,
                    state=BudgetReservation.State.SETTLED,
                    record_id=record.pk,
                )
            else:
                _close(reservation, charge=0, at=timezone.now(), state=BudgetReservation.State.RELEASED, record_id=None)
            closed += 1
    return closed


# --- usage (the user's page) ------------------------------------------------------------------------

USAGE_DAYS = 30


@dataclass(frozen=True)
class UsageRow:
    """Ledger totals for one day or one model."""

    key: date | str
    replies: int
    chat_tokens: int  # what budgets count
    other_tokens: int  # summaries and memory, on the user's behalf
    cost: Decimal

    @property
    def tokens(self) -> int:
        return self.chat_tokens + self.other_tokens


def _usage_rows(user_id: int, since: datetime, group_by: str) -> list[UsageRow]:
    chat = Q(purpose=UsageRecord.Purpose.CHAT)
    records = UsageRecord.objects.filter(user_id=user_id, created_at__gte=since)
    if group_by == "day":
        records = records.annotate(day=TruncDate("created_at", tzinfo=UTC))
    rows = (
        records.values(group_by)
        .annotate(
            replies=Count("id", filter=chat),
            chat_prompt=Sum("prompt_tokens", filter=chat, default=0),
            chat_completion=Sum("completion_tokens", filter=chat, default=0),
            prompt=Sum("prompt_tokens", default=0),
            completion=Sum("completion_tokens", default=0),
            cost=Sum("cost", default=Decimal("0")),
        )
        .order_by(group_by)
    )
    result = []
    for row in rows:
        chat_tokens = int(row["chat_prompt"]) + int(row["chat_completion"])
        result.append(
            UsageRow(
                key=row[group_by],
                replies=int(row["replies"]),
                chat_tokens=chat_tokens,
                other_tokens=int(row["prompt"]) + int(row["completion"]) - chat_tokens,
                cost=row["cost"],
            )
        )
    return result


def usage_by_day(*, user_id: int, days: int = USAGE_DAYS, now: datetime | None = None) -> list[UsageRow]:
    """The user's ledger per UTC day over the last `days` days (today included), newest first."""
    since = period_start(DAY, now or timezone.now()) - timedelta(days=days - 1)
    return list(reversed(_usage_rows(user_id, since, "day")))


def usage_by_model(*, user_id: int, days: int = USAGE_DAYS, now: datetime | None = None) -> list[UsageRow]:
    """The user's ledger per model over the last `days` days, most tokens first."""
    since = period_start(DAY, now or timezone.now()) - timedelta(days=days - 1)
    return sorted(_usage_rows(user_id, since, "model"), key=lambda row: row.tokens, reverse=True)
