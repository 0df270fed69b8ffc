"""Context build time at scale: one turn's prompt for a 10,000-message conversation among 1,000,000.

Times what a turn does to build its prompt, with the product's own functions, unmodified, called as
`conversations.services.turns.turn_prepare` calls them (moderation aside): embed the user's message
once (`_embed`), then `_context_for`: gather the
inputs in one query (memory switch, summary, branch tail, recalled turns, facts: `memory.selectors.
context_inputs`) and fit them to the window (`memory.context.build_context`, the real token
counter). The vector's write to the row (`_store_embedding`), which the turn makes after the reply
has started, is timed separately. Each part is timed by wrapping the function the turn calls, so one run gives the whole
and its breakdown. The same builds run, interleaved, for a 100-message conversation of the same
user: the baseline for how cost grows with a conversation's length.

The data lives in a database of its own (chatproject_bench by default), created, migrated and
populated by this script on first use and reused afterwards (a `bench_dataset` table records what
it holds): 1,000 users, 10 conversations each, 1,000,000 messages with parent chains, interleaved
in time across conversations as real traffic is. Filler messages get random unit vectors; the two
target conversations get real MiniLM embeddings so retrieval behaves as it would. Rows go in by
binary COPY (12 µs a row; vectors as text cost 150 µs) with secondary indexes dropped; the btree and
HNSW indexes are built afterwards (the HNSW build is timed and reported), then ANALYZE. The target
conversations' vectors are cached in the temp dir, so a populate that fails later is cheap to retry.

Also: EXPLAIN (ANALYZE, BUFFERS) of the query, a check of the recall against an exact search in
numpy, and a cProfile when the target is missed.

Prints one JSON line and writes a Markdown report to bench/results/.

    python -m bench.context_build                      # populate on first run (~40 min), then measure
    python -m bench.context_build --database-url postgres://postgres@127.0.0.1/other
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import functools
import hashlib
import io
import json
import os
import pstats
import random
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast
from unittest import mock

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

if TYPE_CHECKING:
    from conversations.models import Conversation, Message
    from memory.context import BuiltContext, ContextInputs

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/chatproject_bench"
MARKER_TABLE = "bench_dataset"
DATASET_VERSION = 1
DIMENSIONS = 384
TARGET_P95_MS = 15.0
EPOCH = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
SPAN_SECONDS = 300 * 86400

F = TypeVar("F", bound=Callable[..., Any])


# --- Synthetic chat text ------------------------------------------------------------------------

# name, subjects, and sentences an assistant might say about one of the subjects ({s}).
TOPICS: list[tuple[str, list[str], list[str]]] = [
    (
        "cooking",
        ["sourdough bread", "a weeknight curry", "meal prep for the week", "homemade pasta", "a vegetarian lasagne"],
        [
            "For {s}, most of the flavour comes from taking your time with the first step.",
            "Salt early and taste often; it is the single biggest difference with {s}.",
            "A cast iron pan holds heat better, which helps a lot with {s}.",
            "If you are short on time, {s} can be split over two evenings without losing much.",
            "Weigh ingredients instead of using cups; {s} is less forgiving than it looks.",
            "Most recipes for {s} overstate how much oil you need; start with half.",
        ],
    ),
    (
        "running",
        ["a first half marathon", "interval training", "running shoes", "recovery days", "a 5k personal best"],
        [
            "Build volume slowly: no more than about ten percent a week is the usual rule for {s}.",
            "Easy runs should feel conversational; that is where most of the gains for {s} come from.",
            "Sleep matters as much as mileage when you are working on {s}.",
            "A short strength routine twice a week reduces injury risk while you focus on {s}.",
            "Track how your legs feel, not just pace, when you plan {s}.",
            "Do not change everything at once; adjust one variable of {s} per week.",
        ],
    ),
    (
        "python",
        ["a memory leak in a long-running script", "async code", "type hints", "packaging a library", "pandas joins"],
        [
            "With {s}, profile first: the slow part is rarely where you expect it.",
            "Write a tiny reproduction of {s}; half the time the bug shows itself on the way.",
            "The standard library already covers most of what people reach for a package to do in {s}.",
            "Pin your dependencies when you work on {s}, or the behaviour will shift under you.",
            "Generators help with {s} when the data does not fit comfortably in memory.",
            "Run the tests under the oldest Python version you support while you change {s}.",
        ],
    ),
    (
        "gardening",
        ["tomatoes on a balcony", "a compost heap", "pruning roses", "a shady herb bed", "watering in summer"],
        [
            "Morning is the best time for {s}, before the sun is strong.",
            "Good drainage solves more problems with {s} than any fertiliser does.",
            "Mulch keeps moisture in and weeds down, which makes {s} much easier.",
            "Start small with {s}; one healthy bed beats three neglected ones.",
            "Check the underside of leaves regularly when you look after {s}.",
            "Local nurseries know which varieties work for {s} in your climate better than catalogues.",
        ],
    ),
    (
        "personal finance",
        ["an emergency fund", "index funds", "paying off a credit card", "a household budget", "saving for a flat"],
        [
            "Automate the transfer on payday; {s} works when you do not have to decide every month.",
            "Fees compound just like returns do, so look at them closely for {s}.",
            "Write down every expense for one month before you plan {s}.",
            "Keep {s} boring: the fewer moving parts, the more likely you stick to it.",
            "High-interest debt usually comes before anything else, including {s}.",
            "Review {s} once a year rather than reacting to every headline.",
        ],
    ),
    (
        "travel",
        ["a week in Lisbon", "a rail trip through Italy", "packing light", "travel insurance", "a road trip in Norway"],
        [
            "Book the long-distance legs of {s} early and leave the rest flexible.",
            "Shoulder season is the sweet spot for {s}: fewer crowds and better prices.",
            "Carry a copy of your documents separately from the originals on {s}.",
            "One bag you can lift overhead makes {s} far less stressful.",
            "Check the opening days of museums before you plan {s}; many close on Mondays.",
            "Local transport passes usually pay for themselves within two days of {s}.",
        ],
    ),
    (
        "home repair",
        ["a dripping tap", "a squeaky door", "painting a small room", "a blocked drain", "mould in the bathroom"],
        [
            "Turn off the water or power before you start on {s}; it sounds obvious and is often skipped.",
            "Take a photo before you take anything apart for {s}.",
            "Most hardware stores will match a part if you bring the old one when fixing {s}.",
            "Ventilation is the long-term fix for {s}; cleaning alone only buys time.",
            "Cheap tools make {s} harder than it needs to be; a decent screwdriver set is worth it.",
            "If water is involved in {s} and you are unsure, call someone before it gets worse.",
        ],
    ),
    (
        "career",
        ["a salary negotiation", "a job interview", "asking for feedback", "a career change into data", "a CV"],
        [
            "Prepare three concrete examples with numbers before {s}.",
            "Practise out loud; {s} goes better when you have heard yourself say it.",
            "Research the typical range first so {s} starts from facts.",
            "Ask what success looks like in six months; it reframes {s} around outcomes.",
            "Keep {s} to one page of the strongest material rather than everything you did.",
            "Follow up in writing after {s}; it shows care and creates a record.",
        ],
    ),
    (
        "photography",
        ["portraits in natural light", "a first mirrorless camera", "night photography", "editing in Lightroom"],
        [
            "Shoot in the hour after sunrise for {s}; the light is soft and directional.",
            "Learn one setting at a time for {s}: aperture first, then shutter speed.",
            "A tripod changes what is possible for {s} more than a new lens does.",
            "Underexpose slightly for {s}; highlights are harder to recover than shadows.",
            "Look at the edges of the frame before you press the shutter for {s}.",
            "Keep edits for {s} consistent across a set by saving your own preset.",
        ],
    ),
    (
        "parenting",
        ["a toddler's bedtime", "screen time rules", "starting school", "picky eating", "sibling arguments"],
        [
            "Consistency matters more than the exact rule when it comes to {s}.",
            "Offer two acceptable choices; it turns {s} into something the child owns.",
            "A short routine that is the same every day makes {s} predictable.",
            "Name the feeling first and solve the problem second during {s}.",
            "Talk to the teacher or carer early about {s}; they often see patterns you do not.",
            "Expect {s} to get worse for a few days before a new habit sticks.",
        ],
    ),
    (
        "music",
        [
            "learning the guitar",
            "music theory basics",
            "a home recording setup",
            "practising scales",
            "reading sheet music",
        ],
        [
            "Fifteen focused minutes a day beats two hours on Sunday for {s}.",
            "Record yourself while working on {s}; you will hear things you miss while playing.",
            "Slow down until you can play {s} cleanly, then speed up gradually with a metronome.",
            "Learn songs you love alongside {s} so practice does not feel like homework.",
            "A good teacher for a few lessons saves months of bad habits in {s}.",
            "Rest your hands when they hurt; pushing through pain does not help {s}.",
        ],
    ),
    (
        "databases",
        ["slow PostgreSQL queries", "database indexes", "a schema migration", "connection pooling", "backups"],
        [
            "Start with EXPLAIN ANALYZE for {s}; guessing wastes more time than it saves.",
            "An index helps reads and costs writes, so keep that trade-off in mind with {s}.",
            "Test {s} on a copy of production-sized data, not on an empty development database.",
            "Make {s} reversible, or at least rehearse the rollback once.",
            "Monitor {s} after the change; a plan that is fast today can regress as data grows.",
            "Document why {s} was done the way it was; the next person will want to know.",
        ],
    ),
    (
        "fitness",
        ["a beginner strength routine", "stretching after work", "bodyweight exercises", "a rowing machine"],
        [
            "Form first, then load: {s} rewards patience.",
            "Three short sessions a week are enough to see progress with {s}.",
            "Write down what you did in each session of {s}, so progress is visible.",
            "Warm up for five minutes before {s}; cold muscles complain.",
            "Protein and sleep do a lot of the work behind {s}.",
            "If something hurts sharply during {s}, stop and get it checked.",
        ],
    ),
    (
        "writing",
        ["a short story", "a cover letter", "a blog post about work", "editing a long report", "a wedding speech"],
        [
            "Write the first draft of {s} fast and fix it later; editing a blank page is impossible.",
            "Read {s} out loud before you send it; clumsy sentences give themselves away.",
            "Cut the first paragraph of {s}; drafts often start one paragraph too early.",
            "One idea per paragraph keeps {s} easy to follow.",
            "Ask one trusted reader for comments on {s} rather than five.",
            "Specific details make {s} memorable; general statements make it forgettable.",
        ],
    ),
    (
        "pets",
        ["a new puppy", "an older cat", "a rabbit's diet", "leaving a pet alone at home", "vet costs"],
        [
            "Routine makes {s} calmer: same walks, same feeding times.",
            "Ask the vet about {s} at the next check-up rather than relying on forums.",
            "Reward the behaviour you want immediately when working on {s}.",
            "Insurance or a savings pot takes the panic out of {s}.",
            "Introduce changes to {s} gradually over a week or two.",
            "Watch for changes in appetite or sleep; they are early signs with {s}.",
        ],
    ),
    (
        "languages",
        ["learning Spanish", "German grammar", "keeping up French", "Japanese kanji", "conversation practice"],
        [
            "Daily exposure matters more than long sessions for {s}.",
            "Speak from the first week of {s}, even badly; it is the skill that lags most.",
            "Spaced repetition flashcards are efficient for the vocabulary side of {s}.",
            "Watch shows you already know in the target language to support {s}.",
            "A language exchange partner makes {s} social and keeps you accountable.",
            "Do not aim for perfect grammar early in {s}; aim to be understood.",
        ],
    ),
    (
        "productivity",
        ["a messy inbox", "too many meetings", "a weekly review", "procrastination", "working from home"],
        [
            "Block time in your calendar for {s}; if it is not scheduled it will not happen.",
            "Start {s} with the smallest possible step; momentum does the rest.",
            "Turn off notifications for an hour while you deal with {s}.",
            "A written list beats memory for {s} every time.",
            "Review {s} on Friday afternoon so Monday starts clear.",
            "Say no to one thing this week to make room for {s}.",
        ],
    ),
    (
        "cars",
        ["a used car purchase", "winter tyres", "an electric car", "a strange engine noise", "car insurance"],
        [
            "Get an independent inspection before committing to {s}.",
            "Compare total cost of ownership, not just the sticker price, for {s}.",
            "Check the service history for {s}; gaps are a warning sign.",
            "Record the noise on your phone for {s}; mechanics appreciate it.",
            "Shop around every renewal for {s}; loyalty is rarely rewarded.",
            "Tyre pressure affects both safety and fuel use, which matters for {s}.",
        ],
    ),
]

OPENERS = [
    "Quick question:",
    "Okay, different topic:",
    "Following up on earlier,",
    "I've been thinking about this and",
    "Sorry if this is basic, but",
    "Another thing:",
    "Can you help with something?",
    "Back to",
    "Hmm, one more:",
    "",
]
ASKS = [
    "how should I approach {s}",
    "what are the common mistakes with {s}",
    "what would you recommend for {s}",
    "is there a simple way to get better at {s}",
    "can you give me a plan for {s}",
    "what should I check first with {s}",
    "how much time should I expect to spend on {s}",
    "what do people usually get wrong about {s}",
]
DETAILS = [
    "I only have a couple of hours a week.",
    "Money is a bit tight right now.",
    "I tried something last month and it didn't go well.",
    "My partner thinks I'm overcomplicating it.",
    "Keep it short please.",
    "I'd like to start this weekend.",
    "I'm a complete beginner.",
    "It's been on my mind for a while.",
    "",
    "",
]
INTROS = ["Good question.", "Here is how I would think about it.", "Sure.", "A few thoughts.", "Happy to help.", ""]
CLOSINGS = [
    "Let me know how it goes.",
    "If you tell me more about your situation I can be more specific.",
    "Want me to turn this into a checklist?",
    "",
]
QUESTION_TEMPLATES = [
    "What did you say earlier about {s}?",
    "Remind me of your advice on {s}.",
    "Going back to {s}: what was the first thing I should check?",
    "Can you summarise what we discussed about {s}?",
    "Earlier you mentioned something about {s} and time. What was it?",
    "What was the common mistake with {s} again?",
    "I forgot your tip about {s}, can you repeat it?",
    "How much time did you say {s} takes?",
]


def user_text(rng: random.Random, topic: int | None = None) -> str:
    _, subjects, _ = TOPICS[rng.randrange(len(TOPICS)) if topic is None else topic]
    ask = rng.choice(ASKS).format(s=rng.choice(subjects))
    text = " ".join(part for part in (rng.choice(OPENERS), ask + "?", rng.choice(DETAILS)) if part)
    return text[0].upper() + text[1:]


def assistant_text(rng: random.Random, topic: int | None = None, *, words: tuple[int, int] = (80, 250)) -> str:
    """A reply of roughly `words` words: sentences about one subject, sometimes as a bullet list."""
    _, subjects, sentences = TOPICS[rng.randrange(len(TOPICS)) if topic is None else topic]
    subject = rng.choice(subjects)
    target = rng.randint(*words)
    parts = [rng.choice(INTROS)]
    bullets = rng.random() < 0.4
    count = 0
    while count < target:
        sentence = rng.choice(sentences).format(s=subject)
        if rng.random() < 0.3:  # a second subject of the topic, so replies are not all about one thing
            sentence += " " + rng.choice(sentences).format(s=rng.choice(subjects))
        parts.append(f"\n- {sentence}" if bullets else sentence)
        count += len(sentence.split())
    parts.append(rng.choice(CLOSINGS))
    return " ".join(part for part in parts if part).replace(" \n", "\n").strip()


def chat_texts(rng: random.Random, messages: int) -> list[str]:
    """A conversation's messages, user first: topics drift, a few turns in a row on one topic."""
    texts: list[str] = []
    topic = rng.randrange(len(TOPICS))
    while len(texts) < messages:
        if rng.random() < 0.3:
            topic = rng.randrange(len(TOPICS))
        texts.append(user_text(rng, topic))
        texts.append(assistant_text(rng, topic))
    return texts[:messages]


def questions(rng: random.Random, count: int) -> list[str]:
    """Varied follow-up questions about earlier subjects (the retrieval queries)."""
    subjects = [subject for _, topic_subjects, _ in TOPICS for subject in topic_subjects]
    return [rng.choice(QUESTION_TEMPLATES).format(s=rng.choice(subjects)) for _ in range(count)]


def random_unit_vectors(rng: np.random.Generator, count: int) -> NDArray[np.float32]:
    vectors = rng.standard_normal((count, DIMENSIONS), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


# --- The dataset ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    users: int = 1000
    conversations_per_user: int = 10
    messages: int = 1_000_000
    long_messages: int = 10_000
    short_messages: int = 100
    facts_per_user: int = 20
    # Messages after the summary's boundary in the target conversations (summaries lag the leaf).
    summary_lag: int = 40
    seed: int = 20261127
    version: int = DATASET_VERSION


@dataclass(frozen=True)
class Target:
    name: str
    conversation_id: str
    messages: int


@dataclass
class Dataset:
    shape: Shape
    owner_id: int
    targets: list[Target]
    populate: dict[str, Any] = field(default_factory=dict)


def _maintenance_conninfo(url: str) -> tuple[str, str]:
    params = conninfo_to_dict(url)
    return make_conninfo(url, dbname="postgres"), str(params.get("dbname") or "")


def existing_dataset(url: str, shape: Shape, rebuild: bool) -> Dataset | None:
    """The dataset already in the database if it has this shape; otherwise a fresh, empty database.

    Only a database this script made (it has the marker table) or an empty one is ever dropped.
    """
    admin, dbname = _maintenance_conninfo(url)
    state: dict[str, Any] | None = None
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone() is not None
    if exists:
        with psycopg.connect(url, autocommit=True) as conn:
            tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
            if MARKER_TABLE in tables:
                row = conn.execute(
                    sql.SQL("SELECT value FROM {} WHERE key = 'dataset'").format(sql.Identifier(MARKER_TABLE))
                ).fetchone()
                state = row[0] if row else None
            elif tables:
                raise SystemExit(f"{dbname} has tables but no {MARKER_TABLE}: not a benchmark database; left alone")
    if state is not None and state.get("ready") and state.get("shape") == asdict(shape) and not rebuild:
        return Dataset(
            shape=shape,
            owner_id=int(state["owner_id"]),
            targets=[Target(**target) for target in state["targets"]],
            populate=dict(state.get("populate", {})),
        )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    return None


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.DEBUG = False  # no query log: the product runs without one
    call_command("migrate", verbosity=0)


def _message_counts(rng: np.random.Generator, conversations: int, total: int) -> NDArray[np.int64]:
    """Even message counts (whole turns), at least 2, log-normally spread, summing to total."""
    raw = rng.lognormal(0.0, 1.0, conversations)
    counts = np.maximum(2, np.round(raw / raw.sum() * total / 2).astype(np.int64) * 2)
    while (diff := int(total - counts.sum())) != 0:
        step = 2 if diff > 0 else -2
        candidates = np.flatnonzero(counts > 2) if step < 0 else np.arange(conversations)
        picked = rng.choice(candidates, size=min(abs(diff) // 2 or 1, len(candidates)), replace=False)
        counts[picked] += step
    return counts


def _secondary_indexes(conn: psycopg.Connection[Any], tables: Sequence[str]) -> list[tuple[str, str]]:
    """(name, definition) of the indexes not backing a constraint: safe to drop and recreate."""
    rows = conn.execute(
        """
        SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.schemaname = 'public' AND i.tablename = ANY(%s)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
        ORDER BY i.tablename, i.indexname
        """,
        [list(tables)],
    ).fetchall()
    return [(str(name), str(definition)) for name, definition in rows]


def drop_secondary_indexes(conn: psycopg.Connection[Any], tables: Sequence[str]) -> list[tuple[str, str]]:
    """Drop the tables' secondary indexes before a bulk COPY; returns them to recreate afterwards."""
    indexes = _secondary_indexes(conn, tables)
    for name, _ in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    return indexes


def copy_users(conn: psycopg.Connection[Any], user_ids: Iterable[int], prefix: str, joined: dt.datetime) -> None:
    """Bench users that can never log in (unusable password), named `<prefix>-<id>`."""
    copy_rows(
        conn,
        "auth_user",
        "id:int4 password:text is_superuser:bool username:text first_name:text last_name:text email:text"
        " is_staff:bool is_active:bool date_joined:timestamptz",
        (
            (user, "!", False, f"{prefix}-{user:05d}", "", "", f"{prefix}-{user}@example.com", False, True, joined)
            for user in user_ids
        ),
    )


def _progress(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", flush=True)


# Values for NOT NULL columns without a default that the benchmark does not set itself (columns a
# later migration adds): COPY bypasses Django's field defaults, so the empty value of the type.
EMPTY_VALUES: dict[str, Any] = {
    "text": "",
    "varchar": "",
    "int2": 0,
    "int4": 0,
    "int8": 0,
    "bool": False,
    "float8": 0.0,
    "jsonb": Jsonb({}),
}


def copy_rows(conn: psycopg.Connection[Any], table: str, columns: str, rows: Iterable[tuple[Any, ...]]) -> None:
    """Binary COPY of rows into table; `columns` is "name:type ...". Any other NOT NULL column without
    a default (one a newer migration added) gets its type's empty value, so the schema can move on."""
    named = [tuple(spec.split(":")) for spec in columns.split()]
    present = {name for name, _ in named}
    extra: list[tuple[str, str]] = []
    for name, udt in conn.execute(
        "SELECT column_name, udt_name FROM information_schema.columns WHERE table_schema = 'public'"
        " AND table_name = %s AND is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO'",
        [table],
    ):
        if name not in present:
            if udt not in EMPTY_VALUES:
                raise SystemExit(f"{table}.{name} is NOT NULL {udt} without a default: teach the benchmark a value")
            extra.append((name, udt))
    names = [name for name, _ in named] + [name for name, _ in extra]
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    tail = tuple(EMPTY_VALUES[udt] for _, udt in extra)
    with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.set_types([kind for _, kind in named] + [udt for _, udt in extra])
        for row in rows:
            copy.write_row(row + tail)


def cached_embeddings(texts: list[str]) -> tuple[NDArray[np.float32], bool]:
    """MiniLM vectors of texts, computed once per machine: a populate that fails later (a schema
    change, a full disk) must not pay ten minutes of embedding again. Cached in the temp dir."""
    from django.test import override_settings

    from chatproject.llm import embeddings

    digest = hashlib.sha256("\x00".join([embeddings.model_name(), *texts]).encode()).hexdigest()[:20]
    path = Path(tempfile.gettempdir()) / "parley-bench" / f"embeddings-{digest}.npy"
    if path.exists():
        return np.load(path), True
    with override_settings(EMBEDDING_THREADS=2):  # populating only; the timed runs use the configured threads
        vectors = np.asarray(embeddings.embed(texts, batch_size=32), dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors, False


def populate(url: str, shape: Shape) -> Dataset:
    from chatproject.llm import embeddings, gateway
    from chatproject.llm.config import default_model
    from memory.models import ConversationSummary

    timings: dict[str, Any] = {}
    started_all = time.perf_counter()
    rng = np.random.default_rng(shape.seed)
    text_rng = random.Random(shape.seed)
    model_name = embeddings.model_name()
    chat_model = default_model().name

    # Conversations: user 1 owns the two targets (conversation 0: long, 1: short).
    conversations = shape.users * shape.conversations_per_user
    filler_total = shape.messages - shape.long_messages - shape.short_messages
    counts = np.concatenate(
        [[shape.long_messages, shape.short_messages], _message_counts(rng, conversations - 2, filler_total)]
    ).astype(np.int64)
    owners = np.repeat(np.arange(1, shape.users + 1), shape.conversations_per_user)
    conversation_ids = [uuid.UUID(int=int(x), version=4) for x in rng.integers(0, 2**63, size=(conversations,))]
    # Time: each conversation runs from a random start at its own pace; the long one spans it all.
    durations = np.minimum(rng.exponential(7 * 86400, conversations) + 3600, SPAN_SECONDS * 0.9)
    durations[0] = SPAN_SECONDS * 0.99
    starts = rng.uniform(0, SPAN_SECONDS - durations)
    starts[0] = SPAN_SECONDS * 0.005
    gaps = durations / counts
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    conv_of = np.repeat(np.arange(conversations), counts)
    position = np.arange(shape.messages) - np.repeat(offsets, counts)
    stamps = starts[conv_of] + position * gaps[conv_of]
    order = np.argsort(stamps, kind="stable")
    ids = np.empty(shape.messages, dtype=np.int64)
    ids[order] = np.arange(1, shape.messages + 1)
    parents = np.where(position > 0, ids[np.maximum(np.arange(shape.messages) - 1, 0)], 0)
    leaves = ids[offsets + counts - 1]

    _progress("generating and embedding the target conversations (real MiniLM vectors)")
    long_texts = chat_texts(text_rng, shape.long_messages)
    short_texts = chat_texts(text_rng, shape.short_messages)
    fact_texts = [
        f"The user {phrase}."
        for phrase in [
            "lives in Leeds",
            "works as a nurse",
            "is learning Spanish",
            "has a cat named Biscuit",
            "is training for a half marathon",
            "prefers short answers",
            "is vegetarian",
            "drives an electric car",
            "has two children",
            "plays the guitar",
            "grows tomatoes on a balcony",
            "is saving for a flat",
            "works night shifts twice a week",
            "is allergic to penicillin",
            "likes jazz",
            "uses PostgreSQL at work",
            "is writing a short story",
            "dislikes long meetings",
            "enjoys portrait photography",
            "speaks German",
        ]
    ][: shape.facts_per_user]
    started = time.perf_counter()
    target_vectors, cached = cached_embeddings(long_texts + short_texts + fact_texts)
    timings["embed_targets_s"] = round(time.perf_counter() - started, 1)
    timings["embeddings_from_cache"] = cached
    timings["embedded_texts"] = len(target_vectors)
    long_vectors = target_vectors[: shape.long_messages]
    short_vectors = target_vectors[shape.long_messages : shape.long_messages + shape.short_messages]
    fact_vectors = target_vectors[shape.long_messages + shape.short_messages :]
    filler_pool_rng = random.Random(shape.seed + 1)
    user_pool = [user_text(filler_pool_rng) for _ in range(3000)]
    assistant_pool = [assistant_text(filler_pool_rng) for _ in range(3000)]

    with psycopg.connect(url, autocommit=True) as conn:
        from pgvector.psycopg import register_vector

        register_vector(conn)
        conn.execute("SET session_replication_role = replica")  # no FK triggers: rows are consistent by construction
        conn.execute("SET synchronous_commit = off")
        conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, value jsonb NOT NULL)").format(
                sql.Identifier(MARKER_TABLE)
            )
        )
        _mark(conn, {"ready": False, "shape": asdict(shape)})
        indexes = drop_secondary_indexes(
            conn, ["conversations_message", "conversations_conversation", "memory_userfact", "memory_memoryprofile"]
        )

        _progress(f"COPY: {shape.users} users, {conversations} conversations, {shape.messages} messages")
        started = time.perf_counter()
        joined = EPOCH - dt.timedelta(days=30)
        copy_users(conn, range(1, shape.users + 1), "bench", joined)
        copy_rows(
            conn,
            "memory_memoryprofile",
            "user_id:int4 enabled:bool facts_through_message_id:int8 updated_at:timestamptz",
            ((user, True, 0, joined) for user in range(1, shape.users + 1)),
        )

        def conversation_rows() -> Iterator[tuple[Any, ...]]:
            for index in range(conversations):
                begun = EPOCH + dt.timedelta(seconds=float(starts[index]))
                ended = begun + dt.timedelta(seconds=float(durations[index]))
                title = ["Long-running chat", "Short chat"][index] if index < 2 else f"Chat {index}"
                owner, leaf = int(owners[index]), int(leaves[index])
                yield (conversation_ids[index], owner, title, begun, ended, leaf, chat_model, False, False, False)

        copy_rows(
            conn,
            "conversations_conversation",
            "id:uuid owner_id:int4 title:text created_at:timestamptz updated_at:timestamptz active_leaf_id:int8"
            " model:text pinned:bool archived:bool temporary:bool",
            conversation_rows(),
        )

        targets = {0: long_vectors, 1: short_vectors}
        target_texts = {0: long_texts, 1: short_texts}
        picks = rng.integers(0, len(user_pool), size=shape.messages)

        def message_rows() -> Iterator[tuple[Any, ...]]:
            chunk = 100_000
            for first in range(0, shape.messages, chunk):
                rows = order[first : first + chunk]
                filler = random_unit_vectors(rng, len(rows))
                for slot, row in enumerate(rows.tolist()):
                    conv = int(conv_of[row])
                    pos = int(position[row])
                    role = "user" if pos % 2 == 0 else "assistant"
                    if conv in targets:
                        content, vector = target_texts[conv][pos], targets[conv][pos]
                    else:
                        content = (user_pool if role == "user" else assistant_pool)[int(picks[row])]
                        vector = filler[slot]
                    stamp = EPOCH + dt.timedelta(seconds=float(stamps[row]))
                    model = chat_model if role == "assistant" else ""
                    parent = int(parents[row]) or None
                    yield (first + slot + 1, conversation_ids[conv], parent, role, content, "complete", 0, model,
                           vector, model_name, stamp, stamp)  # fmt: skip
                _progress(f"  messages: {min(first + chunk, shape.messages):,}")

        copy_rows(
            conn,
            "conversations_message",
            "id:int8 conversation_id:uuid parent_id:int8 role:text content:text status:text seq:int4 model:text"
            " embedding:vector embedding_model:text created_at:timestamptz updated_at:timestamptz",
            message_rows(),
        )

        fact_rng = np.random.default_rng(shape.seed + 2)

        def fact_rows() -> Iterator[tuple[Any, ...]]:
            for user in range(1, shape.users + 1):
                vectors = fact_vectors if user == 1 else random_unit_vectors(fact_rng, shape.facts_per_user)
                for index in range(shape.facts_per_user):
                    text = fact_texts[index] if user == 1 else f"The user mentioned preference number {index}."
                    yield (user, text, f"bench:{index}", "active", 0.8, vectors[index], model_name, joined, joined)

        copy_rows(
            conn,
            "memory_userfact",
            "user_id:int4 text:text key:text status:text confidence:float8 embedding:vector embedding_model:text"
            " created_at:timestamptz updated_at:timestamptz",
            fact_rows(),
        )
        for table in ("auth_user", "conversations_message", "memory_userfact", "memory_memoryprofile"):
            conn.execute(
                sql.SQL("SELECT setval(pg_get_serial_sequence(%s, 'id'), (SELECT max(id) FROM {}))").format(
                    sql.Identifier(table)
                ),
                [table],
            )
        timings["copy_s"] = round(time.perf_counter() - started, 1)

        _progress("VACUUM ANALYZE")
        started = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        timings["vacuum_analyze_s"] = round(time.perf_counter() - started, 1)

        _progress("btree indexes")
        started = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '1GB'")
        for _, definition in indexes:
            if "USING hnsw" not in definition:
                conn.execute(definition)  # the catalogue's own DDL text
        timings["btree_indexes_s"] = round(time.perf_counter() - started, 1)

        notices: list[str] = []
        conn.add_notice_handler(lambda diag: notices.append(str(diag.message_primary)))
        conn.execute("SET maintenance_work_mem = '6GB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")
        for name, definition in indexes:
            if "USING hnsw" in definition:
                _progress(f"HNSW index {name} (maintenance_work_mem 6GB, 1 parallel worker)")
                started = time.perf_counter()
                conn.execute(definition)
                timings[f"{name}_s"] = round(time.perf_counter() - started, 1)
                _progress(f"  {name}: {timings[f'{name}_s']} s")
        timings["hnsw_notices"] = notices
        started = time.perf_counter()
        conn.execute("ANALYZE")
        timings["analyze_s"] = round(time.perf_counter() - started, 1)

    # The target conversations' summaries, as the product stores them (boundary `summary_lag` back).
    for index, texts in ((0, long_texts), (1, short_texts)):
        boundary_pos = len(texts) - shape.summary_lag - 1
        boundary_id = int(ids[offsets[index] + boundary_pos])
        covered = texts[: boundary_pos + 1]
        lines = [f"- The user asked: {' '.join(text.split())[:150]}" for text in covered[-2 * 20 :: 2]]
        summary = "\n".join(lines)
        ConversationSummary.objects.create(
            conversation_id=conversation_ids[index],
            through_message_id=boundary_id,
            text=summary,
            token_count=gateway.count_text_tokens(summary),
            covered_messages=boundary_pos + 1,
            model=chat_model,
        )
    timings["total_s"] = round(time.perf_counter() - started_all, 1)
    dataset = Dataset(
        shape=shape,
        owner_id=1,
        targets=[
            Target("long", str(conversation_ids[0]), shape.long_messages),
            Target("short", str(conversation_ids[1]), shape.short_messages),
        ],
        populate=timings,
    )
    with psycopg.connect(url, autocommit=True) as conn:
        _mark(
            conn,
            {
                "ready": True,
                "shape": asdict(shape),
                "owner_id": dataset.owner_id,
                "targets": [asdict(target) for target in dataset.targets],
                "populate": timings,
            },
        )
    return dataset


def _mark(conn: psycopg.Connection[Any], value: dict[str, Any]) -> None:
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (key, value) VALUES ('dataset', %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        ).format(sql.Identifier(MARKER_TABLE)),
        [Jsonb(value)],
    )


# --- Timing one turn's context build -------------------------------------------------------------


class Clock:
    """Seconds spent per named function during the current build, and the last values seen."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.last: dict[str, Any] = {}

    def reset(self) -> None:
        self.spent.clear()
        self.calls.clear()
        self.last.clear()

    def wrap(self, name: str, func: F) -> F:
        @functools.wraps(func)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = func(*args, **kwargs)
            finally:
                self.spent[name] = self.spent.get(name, 0.0) + time.perf_counter() - started
                self.calls[name] = self.calls.get(name, 0) + 1
            self.last[name] = result
            return result

        return cast(F, timed)


@contextlib.contextmanager
def instrumented(clock: Clock) -> Iterator[None]:
    """Wrap what `_context_for` calls, where it looks them up, with the clock."""
    from chatproject.llm import gateway
    from conversations.services import turns
    from memory import selectors

    targets: list[tuple[Any, str, str]] = [
        (turns, "_embed", "embed"),
        (turns, "_store_embedding", "store_vector"),
        (turns, "_context_for", "context_for"),
        (turns, "context_inputs", "context_inputs"),
        (turns, "build_context", "build_context"),
        (selectors, "_inputs_from_rows", "rows_to_inputs"),
        (gateway, "count_tokens", "count_tokens"),
    ]
    with contextlib.ExitStack() as stack:
        for owner, attribute, name in targets:
            stack.enter_context(mock.patch.object(owner, attribute, clock.wrap(name, getattr(owner, attribute))))
        yield


@dataclass
class Case:
    target: Target
    conversation: Conversation
    probe: Message
    samples: dict[str, list[float]] = field(default_factory=dict)
    calls: dict[str, list[int]] = field(default_factory=dict)
    report: dict[str, object] = field(default_factory=dict)
    recall_overlap: list[float] = field(default_factory=list)
    recall_returned: list[int] = field(default_factory=list)
    exact_returned: list[int] = field(default_factory=list)
    _exact: tuple[NDArray[np.int64], NDArray[np.float32]] | None = None

    def record(self, name: str, seconds: float) -> None:
        self.samples.setdefault(name, []).append(seconds * 1000)

    def exact_candidates(self) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        from conversations.models import Message
        from memory.selectors import CHAT_ROLES

        if self._exact is None:
            rows = list(
                Message.objects.filter(
                    conversation_id=self.target.conversation_id, role__in=CHAT_ROLES, embedding__isnull=False
                ).values_list("pk", "embedding")
            )
            self._exact = (
                np.asarray([pk for pk, _ in rows], dtype=np.int64),
                np.asarray([vector for _, vector in rows], dtype=np.float32),
            )
        return self._exact


def open_case(target: Target, first_question: str) -> Case:
    from conversations.models import Conversation, Message

    conversation = Conversation.objects.get(pk=target.conversation_id)
    # The turn's own user message, child of the leaf, as turn_start stores it (removed afterwards).
    probe = Message.objects.create(
        conversation=conversation, parent_id=conversation.active_leaf_id, role="user", content=first_question
    )
    return Case(target=target, conversation=conversation, probe=probe)


def build_once(case: Case, question: str, clock: Clock, model: str) -> BuiltContext:
    """What `turn_prepare` does for the prompt once the message is stored (moderation aside):
    embed the text once and build the context with it as the query. The vector is written to the
    row after the reply has started (`turn_launch`), off the path to the first token: it is timed
    here too, outside the whole."""
    from conversations.models import Message
    from conversations.services import turns
    from conversations.services.messages import TurnStart

    Message.objects.filter(pk=case.probe.pk).update(content=question)  # turn_start's write, not timed
    case.probe.content = question
    start = TurnStart(
        conversation=case.conversation,
        user_message=case.probe,
        assistant_message=None,
        created_conversation=False,
        reaped=[],
    )
    clock.reset()
    started = time.perf_counter()
    vector = turns._embed(question)
    built = turns._context_for(start, model, question, vector)
    whole = time.perf_counter() - started
    turns._store_embedding(case.probe, vector)
    embed = clock.spent.get("embed", 0.0)
    case.record("whole", whole)
    case.record("without_embedding", whole - embed)
    for name in (
        "embed",
        "store_vector",
        "context_for",
        "context_inputs",
        "rows_to_inputs",
        "build_context",
        "count_tokens",
    ):
        case.record(name, clock.spent.get(name, 0.0))
    case.calls.setdefault("count_tokens", []).append(clock.calls.get("count_tokens", 0))
    return built


def check_recall(case: Case, clock: Clock) -> None:
    """Compare the HNSW recall with an exact search over the same candidates (outside the timing)."""
    from django.conf import settings

    inputs = cast("ContextInputs", clock.last["context_inputs"])
    query = np.asarray(clock.last["embed"], dtype=np.float32)
    ids, vectors = case.exact_candidates()
    excluded = [turn.message_id for turn in inputs.history if turn.message_id is not None] + [case.probe.pk]
    keep = ~np.isin(ids, np.asarray(excluded, dtype=np.int64))
    similarity = vectors[keep] @ query
    top = np.argsort(-similarity)[: int(settings.CONTEXT_RECALL_LIMIT)]
    threshold = float(settings.CONTEXT_RECALL_THRESHOLD)
    exact = {int(ids[keep][i]) for i in top if similarity[i] >= threshold}
    got = {item.turn.message_id for item in inputs.recalled}
    case.recall_returned.append(len(got))
    case.exact_returned.append(len(exact))
    if exact:
        case.recall_overlap.append(len(exact & got) / len(exact))


# A query vector as Django sends it (client-side binding): '[0.1,...]', with or without a cast.
VECTOR_LITERAL = re.compile(r"'\[[-0-9.,eE+ ]+\]'(?:::vector)?")


def _explain(sql_text: str) -> dict[str, Any]:
    from django.db import connection

    # The HNSW settings come with every connection (DATABASES OPTIONS), as for the product's queries.
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql_text)
        lines = [row[0] for row in cursor.fetchall()]
    execution = re.search(r"Execution Time: ([\d.]+) ms", "\n".join(lines))
    buffers = re.search(r"Buffers: shared hit=(\d+)(?: read=(\d+))?", "\n".join(lines))
    return {
        "execution_ms": float(execution.group(1)) if execution else None,
        "shared_hit": int(buffers.group(1)) if buffers else 0,
        "shared_read": int(buffers.group(2) or 0) if buffers else 0,
        "uses_hnsw": any("hnsw" in line for line in lines),
        "plan": lines,
    }


def explain_turn(case: Case, question: str, fresh_question: str) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of the query `context_inputs` makes, exactly as it sent it.

    It is explained for a question not asked before (the pages it needs are where
    earlier turns left them), then for the same query again (all its pages now in shared_buffers),
    then for a random unit vector: unlike the conversation's messages, so the filtered search must
    walk far through other users' rows, as it would with real (clustered) neighbours everywhere.
    """
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from chatproject.llm import embeddings
    from memory.selectors import context_inputs

    with CaptureQueriesContext(connection) as captured:
        context_inputs(
            user_id=case.conversation.owner_id,
            conversation_id=case.conversation.pk,
            parent_id=case.probe.parent_id,
            system_prompt=settings.LLM_SYSTEM_PROMPT,
            user_message=question,
            query=embeddings.embed_one(question),
            use_memory=True,
            exclude_ids=[case.probe.pk],
        )

    def literal(vector: Sequence[float]) -> str:
        return "'[" + ",".join(f"{x:.9g}" for x in vector) + "]'::vector"

    fresh = literal(embeddings.embed_one(fresh_question))
    unrelated = literal(random_unit_vectors(np.random.default_rng(len(fresh_question)), 1)[0].tolist())
    plans: dict[str, Any] = {}
    for captured_query in captured.captured_queries:
        text = captured_query["sql"]
        if "<=>" not in text:
            continue
        if not VECTOR_LITERAL.search(text):
            raise RuntimeError("no vector literal found in the captured query: update VECTOR_LITERAL")
        new_text = VECTOR_LITERAL.sub(lambda _: fresh, text)
        plans["context query"] = _explain(new_text)  # first time this vector is searched for
        plans["context query (same query again)"] = _explain(new_text)
        plans["context query (random vector)"] = _explain(VECTOR_LITERAL.sub(lambda _: unrelated, text))
    return plans


def percentile(values: Sequence[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(values), q)), 2)


def summarize(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "mean": round(float(np.mean(values)), 2),
        "max": round(float(np.max(values)), 2),
    }


def profile_builds(case: Case, prompts: list[str], clock: Clock, model: str) -> str:
    """cProfile of whole builds: the query embedding shows as its own entry (`embed_one`)."""
    profiler = cProfile.Profile()
    for question in prompts:
        profiler.enable()
        build_once(case, question, clock, model)
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(35)
    stats.sort_stats("tottime").print_stats(20)
    return re.sub(r"/work/main/(\.venv/lib/python3\.11/site-packages/)?", "", out.getvalue())


def prewarm() -> dict[str, int] | str:
    """Load the message table and its indexes into shared_buffers, as a server in service holds its
    hot index: the timings are then of the queries, not of reading pages the first time. Returns the
    blocks loaded per relation, or why nothing was (no pg_prewarm, or not allowed to create it)."""
    from django.db import connection

    relations = ("msg_embedding_hnsw", "conversations_message", "conversations_message_pkey")
    try:
        with connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
            cursor.execute("SELECT " + ", ".join(f"pg_prewarm('{name}')" for name in relations))
            row = cursor.fetchone()
    except Exception as exc:  # a bench database without contrib: measure cold and say so
        return f"not prewarmed: {exc}"
    assert row is not None
    return dict(zip(relations, (int(blocks) for blocks in row), strict=True))


def database_facts() -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('shared_buffers'), current_setting('work_mem'),"
            " (SELECT extversion FROM pg_extension WHERE extname = 'vector'),"
            " pg_size_pretty(pg_table_size('conversations_message')),"
            " pg_size_pretty(pg_relation_size('msg_embedding_hnsw')),"
            " (SELECT count(*) FROM conversations_message),"
            " (SELECT count(*) FROM conversations_message WHERE embedding IS NOT NULL),"
            " (SELECT count(*) FROM memory_userfact)"
        )
        row = cursor.fetchone()
    assert row is not None
    keys = [
        "shared_buffers",
        "work_mem",
        "pgvector",
        "message_table_size",
        "message_hnsw_size",
        "messages",
        "embedded_messages",
        "facts",
    ]
    return dict(zip(keys, row, strict=True))


def time_builds(cases: list[Case], prompts: list[str], builds: int, warm_up: int, clock: Clock, model: str) -> None:
    """`builds` timed builds per case after `warm_up` untimed ones, the cases interleaved."""
    for index in range(warm_up + builds):
        for case in cases:
            question = prompts[index % len(prompts)] if index >= warm_up else prompts[-1 - index]
            built = build_once(case, question, clock, model)
            check_recall(case, clock)
            if index < warm_up:
                case.samples.clear()
                case.calls.clear()
                case.recall_overlap.clear()
                case.recall_returned.clear()
                case.exact_returned.clear()
            else:
                case.report = built.report.as_dict()


def run(args: argparse.Namespace) -> dict[str, Any]:
    shape = Shape(users=args.users, messages=args.messages)
    dataset = existing_dataset(args.database_url, shape, args.rebuild)
    setup_django(args.database_url)
    if dataset is None:
        _progress(f"populating {args.database_url} (first run; later runs reuse it)")
        dataset = populate(args.database_url, shape)
        populated_now = True
    else:
        _progress(f"reusing the populated dataset in {args.database_url}")
        populated_now = False

    from chatproject.llm import embeddings
    from chatproject.llm.config import default_model

    model = default_model().name
    embeddings.preload()
    prompts = questions(random.Random(shape.seed + 3), args.builds)
    clock = Clock()
    cases = [open_case(target, prompts[0]) for target in dataset.targets]
    results: dict[str, Any] = {
        "benchmark": "context_build",
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "database": conninfo_to_dict(args.database_url).get("dbname"),
        "shape": asdict(shape),
        "populated_this_run": populated_now,
        "populate": dataset.populate,
        "builds": args.builds,
        "warm_up": args.warm_up,
        "cpus": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in os.getloadavg()],
        "prewarmed": prewarm(),
    }
    try:
        with instrumented(clock):
            _progress(f"timing {args.builds} builds per conversation (+{args.warm_up} warm-ups), interleaved")
            time_builds(cases, prompts, args.builds, args.warm_up, clock, model)
            results["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
            for case in cases:
                results[case.target.name] = {
                    "messages": case.target.messages,
                    **{name: summarize(values) for name, values in case.samples.items()},
                    "count_tokens_calls_mean": round(float(np.mean(case.calls["count_tokens"])), 1),
                    "context_report": case.report,
                    "recall_vs_exact": {
                        "mean_overlap": round(float(np.mean(case.recall_overlap)), 3) if case.recall_overlap else None,
                        "returned_mean": round(float(np.mean(case.recall_returned)), 2),
                        "exact_returned_mean": round(float(np.mean(case.exact_returned)), 2),
                    },
                }
            long, short = results["long"], results["short"]
            results["ratio_long_to_short"] = {
                key: {q: round(long[key][q] / short[key][q], 2) for q in ("p50", "p95")}
                for key in ("whole", "without_embedding", "context_inputs", "build_context")
            }
            results["target_met"] = long["without_embedding"]["p95"] < TARGET_P95_MS
            fresh = questions(random.Random(shape.seed + 4), len(cases))
            results["explain"] = {
                case.target.name: explain_turn(case, prompts[1], fresh[index]) for index, case in enumerate(cases)
            }
            if args.profile or not results["target_met"]:
                _progress("profiling 50 builds of the long conversation")
                results["profile"] = profile_builds(cases[0], prompts[:50], clock, model)
    finally:
        from django.db import connection

        with connection.cursor() as cursor:  # plain SQL: no cascade collector over other apps' tables
            cursor.execute("DELETE FROM conversations_message WHERE id = ANY(%s)", [[case.probe.pk for case in cases]])
    results["database_facts"] = database_facts()
    return results


def _table(rows: list[tuple[str, dict[str, float]]]) -> list[str]:
    lines = ["| part | p50 ms | p95 ms | p99 ms | mean ms | max ms |", "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {s['p50']} | {s['p95']} | {s['p99']} | {s['mean']} | {s['max']} |" for name, s in rows]
    return lines


PARTS = [
    ("(a) whole: embed + `_context_for`", "whole"),
    ("(b) without the query embedding: the context build", "without_embedding"),
    ("embed the question (`_embed`)", "embed"),
    ("store its vector after the reply started (`_store_embedding`; not in (a))", "store_vector"),
    ("`_context_for`", "context_for"),
    ("`context_inputs` (one query: switch, summary, branch, recall, facts)", "context_inputs"),
    ("· of which turning rows into inputs", "rows_to_inputs"),
    ("`build_context`", "build_context"),
    ("· of which `count_tokens`", "count_tokens"),
]


def write_report(results: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"context_build-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.md"
    r = results
    shape, populate_info, facts = r["shape"], r["populate"], r["database_facts"]
    lines = [
        f"# Context build at scale ({r['at']})",
        "",
        f"Database `{r['database']}`: {facts['messages']:,} messages ({facts['embedded_messages']:,} embedded) of"
        f" {shape['users']:,} users × {shape['conversations_per_user']} conversations, {facts['facts']:,} facts;"
        f" message table {facts['message_table_size']}, HNSW index {facts['message_hnsw_size']}; pgvector"
        f" {facts['pgvector']}, shared_buffers {facts['shared_buffers']}. {r['cpus']} CPUs; load average"
        f" {r['load_average_before']} before, {r.get('load_average_after')} after.",
        "",
        f"Populate ({'this run' if r['populated_this_run'] else 'an earlier run, reused'}):"
        f" embed target conversations {populate_info.get('embed_targets_s')} s"
        f" ({populate_info.get('embedded_texts')} texts), COPY {populate_info.get('copy_s')} s,"
        f" VACUUM ANALYZE {populate_info.get('vacuum_analyze_s')} s, btree indexes"
        f" {populate_info.get('btree_indexes_s')} s, **HNSW on messages {populate_info.get('msg_embedding_hnsw_s')} s**"
        f" (facts {populate_info.get('fact_embedding_hnsw_s')} s), ANALYZE {populate_info.get('analyze_s')} s;"
        f" total {populate_info.get('total_s')} s. Notices: {populate_info.get('hnsw_notices') or 'none'}.",
        "",
        f"{r['builds']} builds per conversation after {r['warm_up']} warm-ups, the two conversations interleaved,"
        f" varied questions; prewarmed: {r['prewarmed']}. Target: (b) p95 < {TARGET_P95_MS} ms for the"
        " 10,000-message conversation —"
        f" **{'met' if r['target_met'] else 'missed'}**.",
        "",
    ]
    for name in ("long", "short"):
        case = r[name]
        lines += [
            f"## {case['messages']:,}-message conversation",
            "",
            *_table([(label, case[key]) for label, key in PARTS]),
            "",
            f"count_tokens calls per build: {case['count_tokens_calls_mean']}. Context report of the last build:"
            f" `{json.dumps(case['context_report'])}`.",
            "",
            f"Recall vs an exact search over the same rows: overlap {case['recall_vs_exact']['mean_overlap']},"
            f" turns returned {case['recall_vs_exact']['returned_mean']} (exact:"
            f" {case['recall_vs_exact']['exact_returned_mean']}).",
            "",
        ]
    lines += [
        "## Ratio 10,000 / 100 messages",
        "",
        "| part | p50 | p95 |",
        "|---|---|---|",
        *[f"| {key} | {v['p50']} | {v['p95']} |" for key, v in r["ratio_long_to_short"].items()],
        "",
        "## EXPLAIN ANALYZE of the reads",
        "",
    ]
    for name, plans in r["explain"].items():
        for query, plan in plans.items():
            lines += [
                f"### {name}: {query} — {plan['execution_ms']} ms, buffers hit {plan['shared_hit']} read"
                f" {plan['shared_read']}, HNSW {'used' if plan['uses_hnsw'] else 'not used'}",
                "",
                "```",
                *plan["plan"],
                "```",
                "",
            ]
    if r.get("profile"):
        lines += ["## cProfile, 50 builds of the long conversation", "", "```", r["profile"].rstrip(), "```", ""]
    path.write_text("\n".join(lines))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--builds", type=int, default=200)
    parser.add_argument("--warm-up", type=int, default=5)
    parser.add_argument("--messages", type=int, default=Shape.messages, help="total messages in the dataset")
    parser.add_argument("--users", type=int, default=Shape.users)
    parser.add_argument("--rebuild", action="store_true", help="drop and repopulate the benchmark database")
    parser.add_argument("--profile", action="store_true", help="profile even when the target is met")
    args = parser.parse_args()
    results = run(args)
    report = write_report(results)
    printable = {key: value for key, value in results.items() if key not in ("profile", "explain")}
    printable["explain"] = {
        name: {query: {k: v for k, v in plan.items() if k != "plan"} for query, plan in plans.items()}
        for name, plans in results["explain"].items()
    }
    print(json.dumps(printable))
    print(f"report: {report}")


if __name__ == "__main__":
    main()
