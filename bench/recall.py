"""Does a fact the user stated long ago reach the prompt? The product's context vs a last-N window.

Plants 50 facts early in 5 long synthetic conversations (one user each, 2,000 exchanges each, the
facts stated by the user in exchanges 10–200, phrased in varied ways, some alone, some inside a
longer message), the rest varied filler chat on many topics, with near misses (other people's
allergies, other codes and dates, likes and preferences). Then runs the product's own memory work
over them with the offline model, which answers those tasks deterministically: message embeddings
(the same `embed`, batches of 32, stored with the rows; cached in the temp dir across runs),
`memory.services.summary_refresh` until caught up, `memory.services.facts_extract` until every
message has been read.

For each fact it then asks a paraphrased question at the end of the conversation and builds the
context exactly as a turn does (`conversations.services.turns._embed` and `_context_for`), and
checks whether the planted turn (its text, quoted in the recalled section, the summary or the kept
turns) or a fact extracted from it is in the built prompt. The baseline, in the same run, is a
plain window of the newest whole turns within the same token budget. The questions are then asked
again with other recall settings (limit, threshold) to show what each would find and cost.

Uses a database of its own (chatproject_recall by default), recreated on every run. Prints one
JSON line and writes a Markdown report to bench/results/.

    python -m bench.recall
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from unittest import mock

import numpy as np
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench.context_build import TOPICS, Clock, assistant_text, cached_embeddings, user_text

if TYPE_CHECKING:
    from conversations.models import Conversation, Message
    from memory.context import BuiltContext, ContextInputs

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/chatproject_recall"
MARKER_TABLE = "bench_recall"


@dataclass(frozen=True)
class Planted:
    statement: str  # what the user says (wrapped in varied phrasing when planted)
    question: str  # asked at the end: a paraphrase, not the statement's words
    kind: str  # what the offline extractor can make of it: "pattern" (one of its patterns) or "free"


# Ten per conversation. About a third match one of the offline model's extraction patterns.
FACTS: list[list[Planted]] = [
    [
        Planted("my sister's name is Carla, she's visiting next month", "What is my sister called?", "free"),
        Planted("my locker code at the gym is 4812", "What's the combination for my locker where I work out?", "free"),
        Planted("I'm allergic to shellfish", "Is there any food I must avoid for medical reasons?", "pattern"),
        Planted("I live in Tampere these days", "Which city am I based in at the moment?", "pattern"),
        Planted("my car is a blue 2014 Skoda Octavia", "What vehicle do I own?", "free"),
        Planted("my dentist appointment is on the 14th of March", "When am I due to get my teeth checked?", "free"),
        Planted("I have a dog named Pixel", "What's my puppy called?", "pattern"),
        Planted("my favourite band is Khruangbin", "Which group do I like to listen to most?", "pattern"),
        Planted("I work as a radiographer at the local hospital", "What do I do for a living?", "pattern"),
        Planted("my passport expires in August 2027", "When do my travel documents run out?", "free"),
    ],
    [
        Planted("my brother Tomasz lives in Gdansk", "What's the name of my brother?", "free"),
        Planted(
            "the wifi password at my parents' place is heron-lake-77",
            "What do I type to get online at my mum and dad's house?",
            "free",
        ),
        Planted("I'm vegetarian, have been since university", "Do I eat meat?", "pattern"),
        Planted("my blood type is O negative", "Which blood group am I?", "free"),
        Planted("I'm training for the Berlin marathon in September", "Which race am I getting ready for?", "free"),
        Planted("my daughter goes to Hillcrest Primary", "Which school does my girl attend?", "free"),
        Planted(
            "I prefer answers with bullet points rather than long paragraphs",
            "How should you format replies for me?",
            "pattern",
        ),
        Planted("my landlord is a Mr. Okafor", "Who owns the flat I rent?", "free"),
        Planted("I take my coffee with oat milk and no sugar", "How do I like my morning brew?", "free"),
        Planted("our wedding anniversary is on June 3rd", "When did my spouse and I get married?", "free"),
    ],
    [
        Planted("I play the cello in a community orchestra", "Which instrument do I perform on?", "free"),
        Planted("my employee ID is 55-2093", "What's my staff number at the company?", "free"),
        Planted("I'm allergic to penicillin", "Is there a medicine doctors shouldn't give me?", "pattern"),
        Planted("my favourite colour is teal", "What shade do I like best?", "pattern"),
        Planted("my mother grew up in Valparaíso", "Where was my mum raised?", "free"),
        Planted("I have a cat called Miso", "What is the name of my kitty?", "pattern"),
        Planted("my flight to Lisbon is TP1337 on Friday", "What's my flight number for the Portugal trip?", "free"),
        Planted("I work at Northwind Logistics", "Which company employs me?", "pattern"),
        Planted("my bike lock combination is 3-9-1-7", "What numbers open the lock on my bicycle?", "free"),
        Planted("my son Leo turns seven in November", "When is my boy's birthday?", "free"),
    ],
    [
        Planted("my name is Daniela", "What am I called?", "pattern"),
        Planted("I moved to Utrecht last spring", "Which town did I relocate to?", "pattern"),
        Planted("my GP is Dr. Haverford at the Elm Street clinic", "Who is my family doctor?", "free"),
        Planted("I'm learning Japanese for a trip in 2026", "Which language am I studying, and why?", "free"),
        Planted("my partner is called Sam and works nights", "What's the name of the person I live with?", "free"),
        Planted("my apartment is on the 6th floor, number 62", "What's my flat number?", "free"),
        Planted("I like jazz, especially Bill Evans", "What kind of music do I enjoy?", "pattern"),
        Planted("my gym membership renews on the first of every month", "When is my gym subscription billed?", "free"),
        Planted("I'm lactose intolerant", "Can I drink regular cow's milk?", "free"),
        Planted(
            "my grandmother's pierogi recipe uses farmer's cheese", "What goes into my grandma's dumplings?", "free"
        ),
    ],
    [
        Planted(
            "my nephew Arjun is starting university this autumn", "Which relative of mine is off to college?", "free"
        ),
        Planted("my home insurance policy number is HX-448-201", "What's the reference of my house cover?", "free"),
        Planted("I enjoy bouldering on weekends", "What sport do I do on Saturdays and Sundays?", "pattern"),
        Planted(
            "I'm a night owl and usually work best after 10pm", "At what time of day am I most productive?", "free"
        ),
        Planted("my favourite film is Spirited Away", "Which movie do I love most?", "pattern"),
        Planted(
            "I broke my left wrist in 2019 and it still aches in the cold",
            "Which old injury bothers me in winter?",
            "free",
        ),
        Planted("my best friend Ines lives in Porto", "Who is my closest friend?", "free"),
        Planted("I ride a red Vespa to work", "How do I get to the office?", "free"),
        Planted("I'm colour-blind, red and green look the same to me", "Do I have trouble seeing any colours?", "free"),
        Planted("my piano teacher is Mrs. Lindqvist", "Who gives me piano lessons?", "free"),
    ],
]

PLANT_OPENERS = ["", "By the way, ", "Oh, before I forget: ", "Random thing, but ", "FYI ", "Just so you know, "]
PLANT_CLOSERS = ["", " Just so you have it.", " Anyway.", " Might be useful later.", " No need to reply to that."]
ACKNOWLEDGEMENTS = [
    "Got it, thanks for telling me.",
    "Noted. Anything else you want me to keep in mind?",
    "Thanks, that's good to know.",
    "Understood.",
    "Okay, I'll keep that in mind when it's relevant.",
]

# Filler with personal details that are not the planted ones: the near misses.
NEAR_MISSES = [
    "My colleague is allergic to cats, so the office plant swap turned into a whole thing.",
    "The office door code changed again, I have to ask reception every morning.",
    "My friend's wedding is sometime in the summer, I still need to buy a present.",
    "I watched a documentary about Lisbon's trams last night, it was great.",
    "Our neighbour's dog barked all night, I barely slept.",
    "I have a meeting with someone from finance on Thursday at 9.",
    "My cousin keeps sending me articles about marathons, no idea why.",
    "The parking permit number for the visitor spot is on the fridge somewhere.",
    "I went to a concert last week, the band was loud but fun.",
    "My manager wants the report by Friday, which is tight.",
    "The train was late again this morning, twenty minutes this time.",
    "I'm thinking of repainting the hallway, maybe something green.",
    "I like the second option you gave better.",
    "I prefer the shorter version, to be honest.",
    "I really enjoy these little chats, they help me think.",
    "My phone battery is dying constantly, might need a new one.",
    "A friend of mine just adopted a rescue cat.",
    "The doctor's office called about a form, I'll deal with it tomorrow.",
    "My kid's football practice moved to Wednesdays.",
    "I've been drinking way too much coffee this week.",
]
SMALL_TALK_REPLIES = [
    "That sounds like a lot to juggle. Is there anything I can help you with?",
    "Ha, I know the feeling. Want to talk it through?",
    "Fair enough. Let me know if you want ideas.",
    "That makes sense. How are you feeling about it?",
    "Good to hear. What's next on your list?",
]


@dataclass
class PlantedTurn:
    conversation: int
    exchange: int
    fact: Planted
    content: str
    message_id: int = 0


@dataclass
class Outcome:
    planted: PlantedTurn
    via: list[str] = field(default_factory=list)
    baseline: bool = False
    facts_extracted: list[str] = field(default_factory=list)
    similarity: float = 0.0
    rank: int = 0
    fact_rank: int | None = None

    @property
    def hit(self) -> bool:
        return bool(self.via)


def _progress(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", flush=True)


def fresh_database(url: str) -> None:
    """Drop and create the benchmark database; only one this script made (or an empty one) is dropped."""
    params = conninfo_to_dict(url)
    dbname = str(params.get("dbname") or "")
    admin = make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone() is not None
    if exists:
        with psycopg.connect(url, autocommit=True) as conn:
            tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        if tables and MARKER_TABLE not in tables:
            raise SystemExit(f"{dbname} has tables but no {MARKER_TABLE}: not a benchmark database; left alone")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} (created_at timestamptz DEFAULT now())").format(sql.Identifier(MARKER_TABLE))
        )


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # Populating only: nothing here is timed per call, so the embedder may take both cores.
    os.environ.setdefault("EMBEDDING_THREADS", "2")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.DEBUG = False
    call_command("migrate", verbosity=0)


def filler_exchange(rng: random.Random) -> tuple[str, str]:
    """One user message and its reply: mostly topic chat, sometimes small talk with personal details."""
    if rng.random() < 0.15:
        return rng.choice(NEAR_MISSES), rng.choice(SMALL_TALK_REPLIES)
    topic = rng.randrange(len(TOPICS))
    return user_text(rng, topic), assistant_text(rng, topic, words=(20, 60))


def plant_text(rng: random.Random, fact: Planted) -> str:
    opener = rng.choice(PLANT_OPENERS)
    text = f"{opener}{fact.statement if opener else fact.statement[0].upper() + fact.statement[1:]}."
    if rng.random() < 0.5:  # inside a longer message, next to an unrelated request
        topic = rng.randrange(len(TOPICS))
        text = f"{text} {user_text(rng, topic)}" if rng.random() < 0.5 else f"{user_text(rng, topic)} {text}"
    return text + rng.choice(PLANT_CLOSERS)


def script_conversation(rng: random.Random, index: int, exchanges: int) -> tuple[list[str], list[PlantedTurn]]:
    """The conversation's messages (user first) and where its facts were planted."""
    facts = FACTS[index]
    slots = sorted(rng.sample(range(10, 201), len(facts)))
    planted = {slot: fact for slot, fact in zip(slots, rng.sample(facts, len(facts)), strict=True)}
    texts: list[str] = []
    turns: list[PlantedTurn] = []
    for exchange in range(exchanges):
        if exchange in planted:
            content = plant_text(rng, planted[exchange])
            turns.append(PlantedTurn(index, exchange, planted[exchange], content))
            texts += [content, rng.choice(ACKNOWLEDGEMENTS)]
        else:
            texts += list(filler_exchange(rng))
    return texts, turns


def populate(
    conversations: int, exchanges: int, seed: int
) -> tuple[list[Conversation], list[PlantedTurn], dict[str, Any]]:
    from django.contrib.auth.models import User
    from django.db import connection, transaction

    from chatproject.llm import embeddings
    from chatproject.llm.config import default_model
    from conversations.models import Conversation, Message

    rng = random.Random(seed)
    timings: dict[str, Any] = {}
    scripts = [script_conversation(rng, index, exchanges) for index in range(conversations)]
    texts = [text for messages, _ in scripts for text in messages]
    _progress(f"embedding {len(texts):,} messages (batches of 32)")
    started = time.perf_counter()
    vectors, cached = cached_embeddings(texts)
    timings["embed_messages_s"] = round(time.perf_counter() - started, 1)
    timings["embeddings_from_cache"] = cached
    timings["messages"] = len(texts)

    started = time.perf_counter()
    model = default_model().name
    name = embeddings.model_name()
    result: list[Conversation] = []
    planted: list[PlantedTurn] = []
    next_id = 1
    cursor = 0
    with transaction.atomic():
        for index, (messages, turns) in enumerate(scripts):
            owner = User.objects.create(username=f"bench-recall-{index + 1}")
            conversation = Conversation.objects.create(owner=owner, title=f"Long chat {index + 1}", model=model)
            rows: list[Message] = []
            for position, content in enumerate(messages):
                user = position % 2 == 0
                rows.append(
                    Message(
                        id=next_id,
                        conversation=conversation,
                        parent_id=next_id - 1 if position else None,
                        role="user" if user else "assistant",
                        content=content,
                        model="" if user else model,
                        embedding=vectors[cursor].tolist(),
                        embedding_model=name,
                    )
                )
                next_id += 1
                cursor += 1
            Message.objects.bulk_create(rows, batch_size=1000)
            conversation.active_leaf_id = rows[-1].pk
            conversation.save(update_fields=["active_leaf"])
            for turn in turns:
                turn.message_id = rows[2 * turn.exchange].pk
            planted += turns
            result.append(conversation)
        with connection.cursor() as db:
            db.execute("SELECT setval(pg_get_serial_sequence('conversations_message', 'id'), %s)", [next_id - 1])
    timings["insert_s"] = round(time.perf_counter() - started, 1)
    return result, planted, timings


def run_memory(conversations: list[Conversation]) -> dict[str, Any]:
    """The product's background memory work, run to completion with the offline model."""
    from django.db.models import Max

    from conversations.models import Message
    from memory.models import ConversationSummary, MemoryProfile, UserFact
    from memory.services import facts_extract, summary_refresh

    stats: dict[str, Any] = {}
    started = time.perf_counter()
    refreshes = 0
    for conversation in conversations:
        while summary_refresh(conversation_id=conversation.pk) is not None:
            refreshes += 1
        _progress(f"  summaries of {conversation.title}: caught up ({refreshes} so far)")
    stats["summary_refreshes"] = refreshes
    stats["summary_s"] = round(time.perf_counter() - started, 1)

    started = time.perf_counter()
    calls = 0
    for conversation in conversations:
        latest = Message.objects.filter(conversation=conversation, role="user").aggregate(top=Max("id"))["top"]
        while True:
            facts_extract(user_id=conversation.owner_id)
            calls += 1
            profile = MemoryProfile.objects.get(user_id=conversation.owner_id)
            if profile.facts_through_message_id >= latest:
                break
    stats["facts_extract_calls"] = calls
    stats["facts_s"] = round(time.perf_counter() - started, 1)
    stats["facts_active"] = UserFact.objects.filter(status=UserFact.Status.ACTIVE).count()
    stats["summaries"] = ConversationSummary.objects.count()
    return stats


def sections(system: str) -> dict[str, str]:
    """The system message's memory sections by heading (text up to the next heading)."""
    from memory.context import FACTS_HEADING, RECALLED_HEADING, SUMMARY_HEADING

    found: dict[str, str] = {}
    headings = {"facts": FACTS_HEADING, "summary": SUMMARY_HEADING, "recall": RECALLED_HEADING}
    starts = sorted((system.find(heading), name) for name, heading in headings.items() if heading in system)
    for (begin, name), following in zip(starts, [*starts[1:], (len(system), "")], strict=True):
        found[name] = system[begin : following[0]]
    return found


def flat(text: str) -> str:
    return " ".join(text.split())


def classify(outcome: Outcome, built: BuiltContext, facts: list[str]) -> None:
    content = outcome.planted.content
    system = built.messages[0]["content"]
    parts = sections(system)
    if content in parts.get("recall", ""):
        outcome.via.append("recall")
    if any(fact in parts.get("facts", "") for fact in facts):
        outcome.via.append("facts")
    # The summary quotes a turn as its first 160 characters, whitespace collapsed.
    if flat(content)[:160] in flat(parts.get("summary", "")):
        outcome.via.append("summary")
    if any(content in message["content"] for message in built.messages[1:-1]):
        outcome.via.append("turns")


def last_n_window(conversation: Conversation, question: str, model: str) -> set[int]:
    """Ids of the newest whole turns that fit the same budget next to the system prompt and question."""
    from django.conf import settings

    from chatproject.llm import gateway
    from conversations.selectors import branch_messages

    budget = gateway.context_window(model) - int(settings.LLM_MAX_OUTPUT_TOKENS)
    budget -= gateway.count_tokens(
        [{"role": "system", "content": settings.LLM_SYSTEM_PROMPT}, {"role": "user", "content": question}], model
    )
    kept: set[int] = set()
    for message in reversed(branch_messages(conversation=conversation)):
        cost = gateway.count_tokens([{"role": message.role, "content": message.content}], model)
        if cost > budget:
            break
        budget -= cost
        kept.add(message.pk)
    return kept


@dataclass
class Asker:
    """Builds the context for a question at the end of a conversation, as a turn does."""

    conversations: list[Conversation]
    model: str
    clock: Clock = field(default_factory=Clock)
    probes: dict[int, Message] = field(default_factory=dict)

    def build(self, turn: PlantedTurn) -> tuple[BuiltContext, ContextInputs, list[float] | None, int]:
        from conversations.models import Message
        from conversations.services import turns
        from conversations.services.messages import TurnStart

        conversation = self.conversations[turn.conversation]
        question = turn.fact.question
        probe = self.probes.get(turn.conversation)
        if probe is None:
            # The question's own message, child of the leaf, as turn_start stores it.
            probe = Message.objects.create(
                conversation=conversation, parent_id=conversation.active_leaf_id, role="user", content=question
            )
            self.probes[turn.conversation] = probe
        Message.objects.filter(pk=probe.pk).update(content=question)
        probe.content = question
        vector = turns._embed(question)
        turns._store_embedding(probe, vector)
        start = TurnStart(
            conversation=conversation, user_message=probe, assistant_message=None, created_conversation=False, reaped=[]
        )
        with mock.patch.object(turns, "context_inputs", self.clock.wrap("context_inputs", turns.context_inputs)):
            built = turns._context_for(start, self.model, question, vector)
        return built, cast("ContextInputs", self.clock.last["context_inputs"]), vector, probe.pk


def planted_facts(turn: PlantedTurn) -> list[str]:
    """Active facts whose source is the planted turn (a later fact with the same key replaces it)."""
    from memory.models import UserFact

    rows = UserFact.objects.filter(source_message_id=turn.message_id, status=UserFact.Status.ACTIVE)
    return list(rows.values_list("text", flat=True))


def mean_report(reports: list[dict[str, object]]) -> dict[str, Any]:
    tiers = Counter[str]()
    for report in reports:
        for tier, tokens in cast(dict[str, int], report["tiers"]).items():
            tiers[tier] += tokens
    return {
        "mean_tiers": {tier: round(tokens / len(reports)) for tier, tokens in tiers.items()},
        "mean_tokens_used": round(sum(cast(int, report["tokens_used"]) for report in reports) / len(reports)),
        "budget": reports[0]["budget"],
    }


def ask(asker: Asker, planted: list[PlantedTurn]) -> tuple[list[Outcome], list[int], dict[str, Any]]:
    """The product's context with the configured settings, with diagnostics and the last-N baseline."""
    outcomes: list[Outcome] = []
    window_sizes: list[int] = []
    reports: list[dict[str, object]] = []
    windows: dict[int, set[int]] = {}
    for turn in planted:
        built, inputs, vector, probe_id = asker.build(turn)
        reports.append(built.report.as_dict())
        facts = planted_facts(turn)
        outcome = Outcome(planted=turn, facts_extracted=facts)
        classify(outcome, built, facts)
        conversation = asker.conversations[turn.conversation]
        diagnose(outcome, conversation, np.asarray(vector, dtype=np.float32), inputs, probe_id)
        window = windows.get(turn.conversation)
        if window is None:
            window = windows[turn.conversation] = last_n_window(conversation, turn.fact.question, asker.model)
        window_sizes.append(len(window))
        outcome.baseline = turn.message_id in window
        outcomes.append(outcome)
    return outcomes, window_sizes, mean_report(reports)


# Recall settings tried beside the configured ones: (CONTEXT_RECALL_LIMIT, CONTEXT_RECALL_THRESHOLD).
VARIANTS = [(3, 0.25), (10, 0.35), (10, 0.25), (20, 0.2), (30, 0.0)]


def ask_variants(asker: Asker, planted: list[PlantedTurn]) -> list[dict[str, Any]]:
    """The same questions with other recall settings: share found, and what the prompt costs."""
    from django.test import override_settings

    results: list[dict[str, Any]] = []
    for limit, threshold in VARIANTS:
        hits = Counter[str]()
        reports: list[dict[str, object]] = []
        with override_settings(CONTEXT_RECALL_LIMIT=limit, CONTEXT_RECALL_THRESHOLD=threshold):
            for turn in planted:
                built, _, _, _ = asker.build(turn)
                reports.append(built.report.as_dict())
                outcome = Outcome(planted=turn)
                classify(outcome, built, planted_facts(turn))
                hits["any"] += outcome.hit
                hits.update(outcome.via)
        summary = mean_report(reports)
        results.append(
            {
                "recall_limit": limit,
                "recall_threshold": threshold,
                "share": round(hits["any"] / len(planted), 3),
                "via_recall": hits["recall"],
                "via_facts": hits["facts"],
                "mean_tokens_used": summary["mean_tokens_used"],
                "mean_recalled_tokens": summary["mean_tiers"].get("recalled", 0),
            }
        )
    return results


def diagnose(outcome: Outcome, conversation: Conversation, query: Any, inputs: ContextInputs, probe_id: int) -> None:
    """Where the planted turn ranks for the question (exact cosine), and its fact among the user's facts."""
    from conversations.models import Message
    from memory.models import UserFact
    from memory.selectors import CHAT_ROLES

    rows = list(
        Message.objects.filter(conversation=conversation, role__in=CHAT_ROLES, embedding__isnull=False)
        .exclude(pk__in=[turn.message_id for turn in inputs.history if turn.message_id is not None])
        .exclude(pk=probe_id)
        .values_list("pk", "embedding")
    )
    ids = np.asarray([pk for pk, _ in rows])
    similarity = np.asarray([vector for _, vector in rows], dtype=np.float32) @ query
    mine = float(similarity[ids == outcome.planted.message_id][0])
    outcome.similarity = round(mine, 3)
    outcome.rank = int((similarity > mine).sum()) + 1
    facts = list(
        UserFact.objects.filter(user_id=conversation.owner_id, status=UserFact.Status.ACTIVE).values_list(
            "source_message_id", "embedding"
        )
    )
    if any(source == outcome.planted.message_id for source, _ in facts):
        scores = np.asarray([vector for _, vector in facts], dtype=np.float32) @ query
        best = max(
            float(s) for (source, _), s in zip(facts, scores, strict=True) if source == outcome.planted.message_id
        )
        outcome.fact_rank = int((scores > best).sum()) + 1


def run(args: argparse.Namespace) -> dict[str, Any]:
    from django.conf import settings

    started_all = time.perf_counter()
    fresh_database(args.database_url)
    setup_django(args.database_url)
    _progress(f"scripting {args.conversations} conversations × {args.exchanges} exchanges")
    conversations, planted, timings = populate(args.conversations, args.exchanges, args.seed)
    _progress("summaries and facts with the product's services (offline model)")
    timings |= run_memory(conversations)
    from chatproject.llm.config import default_model

    _progress(f"asking {len(planted)} questions")
    started = time.perf_counter()
    asker = Asker(conversations=conversations, model=default_model().name)
    outcomes, window_sizes, context_info = ask(asker, planted)
    timings["ask_s"] = round(time.perf_counter() - started, 1)
    _progress(f"asking them again with {len(VARIANTS)} other recall settings")
    variants = ask_variants(asker, planted)
    timings["total_s"] = round(time.perf_counter() - started_all, 1)

    total = len(outcomes)
    via = Counter(channel for outcome in outcomes for channel in outcome.via)
    only = Counter(outcome.via[0] for outcome in outcomes if len(outcome.via) == 1)
    extracted = sum(1 for outcome in outcomes if outcome.facts_extracted)
    by_kind: dict[str, dict[str, int]] = {}
    for outcome in outcomes:
        kind = by_kind.setdefault(outcome.planted.fact.kind, {"planted": 0, "extracted": 0, "in_context": 0})
        kind["planted"] += 1
        kind["extracted"] += bool(outcome.facts_extracted)
        kind["in_context"] += outcome.hit
    return {
        "benchmark": "recall",
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "database": conninfo_to_dict(args.database_url).get("dbname"),
        "conversations": args.conversations,
        "exchanges": args.exchanges,
        "questions": total,
        "product_share": round(sum(outcome.hit for outcome in outcomes) / total, 3),
        "baseline_share": round(sum(outcome.baseline for outcome in outcomes) / total, 3),
        "via": {channel: via.get(channel, 0) for channel in ("recall", "facts", "summary", "turns")},
        "only_via": dict(only),
        "facts_extracted_from_planted_turns": extracted,
        "by_kind": by_kind,
        "planted_rank_median": float(np.median([outcome.rank for outcome in outcomes])),
        "planted_in_top3": sum(1 for outcome in outcomes if outcome.rank <= 3),
        "planted_similarity_median": round(float(np.median([outcome.similarity for outcome in outcomes])), 3),
        "baseline_window_messages_mean": round(float(np.mean(window_sizes)), 1),
        "context": context_info,
        "variants": variants,
        "settings": {
            "CONTEXT_RECENT_TURNS": settings.CONTEXT_RECENT_TURNS,
            "CONTEXT_HISTORY_LIMIT": settings.CONTEXT_HISTORY_LIMIT,
            "CONTEXT_RECALL_LIMIT": settings.CONTEXT_RECALL_LIMIT,
            "CONTEXT_RECALL_THRESHOLD": settings.CONTEXT_RECALL_THRESHOLD,
            "CONTEXT_FACTS_LIMIT": settings.CONTEXT_FACTS_LIMIT,
            "SUMMARY_MAX_WORDS": settings.SUMMARY_MAX_WORDS,
        },
        "timings": timings,
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "outcomes": [
            {
                "conversation": outcome.planted.conversation + 1,
                "exchange": outcome.planted.exchange,
                "statement": outcome.planted.content,
                "question": outcome.planted.fact.question,
                "kind": outcome.planted.fact.kind,
                "via": outcome.via,
                "baseline": outcome.baseline,
                "facts": outcome.facts_extracted,
                "similarity": outcome.similarity,
                "rank": outcome.rank,
                "fact_rank": outcome.fact_rank,
            }
            for outcome in outcomes
        ],
    }


def write_report(results: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"recall-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.md"
    r = results
    t = r["timings"]
    s = r["settings"]
    lines = [
        f"# Recall of early facts ({r['at']})",
        "",
        f"{r['conversations']} conversations × {r['exchanges']} exchanges ({t['messages']:,} messages),"
        f" {r['questions']} facts planted by the user in exchanges 10–200, one paraphrased question each at the"
        f" end. Offline model for summaries and facts; MiniLM embeddings. Settings: recent turns"
        f" {s['CONTEXT_RECENT_TURNS']}, history limit {s['CONTEXT_HISTORY_LIMIT']}, recall"
        f" {s['CONTEXT_RECALL_LIMIT']} at ≥ {s['CONTEXT_RECALL_THRESHOLD']},"
        f" facts {s['CONTEXT_FACTS_LIMIT']}. Load average at the end {r['load_average']}.",
        "",
        "| context | planted turn or its fact in the prompt |",
        "|---|---|",
        f"| product (`_context_for`) | **{r['product_share']:.0%}** |",
        f"| newest whole turns, same budget ({r['baseline_window_messages_mean']} messages) |"
        f" **{r['baseline_share']:.0%}** |",
        "",
        f"Found via (a question can count for several): recall {r['via']['recall']}, facts {r['via']['facts']},"
        f" summary {r['via']['summary']}, kept turns {r['via']['turns']}; only via: {r['only_via']}.",
        "",
        f"Facts the offline extractor made from the planted turns: {r['facts_extracted_from_planted_turns']} of"
        f" {r['questions']}. By kind: {r['by_kind']}.",
        "",
        f"Exact cosine rank of the planted turn for its question among the conversation's older messages: median"
        f" {r['planted_rank_median']}, in the top 3 for {r['planted_in_top3']} of {r['questions']}; median"
        f" similarity {r['planted_similarity_median']}.",
        "",
        f"Prompt: {r['context']['mean_tokens_used']} tokens used on average of a {r['context']['budget']} budget;"
        f" mean tokens per tier {r['context']['mean_tiers']}.",
        "",
        f"Timings: embed {t['embed_messages_s']} s, insert {t['insert_s']} s, {t['summary_refreshes']} summary"
        f" refreshes {t['summary_s']} s, {t['facts_extract_calls']} facts_extract calls {t['facts_s']} s"
        f" ({t['facts_active']} active facts), questions {t['ask_s']} s; total {t['total_s']} s.",
        "",
        "The same 50 questions with other recall settings (the product's own build, settings overridden):",
        "",
        "| recall limit | threshold | share | via recall | via facts | mean tokens used | mean recalled-tier tokens |",
        "|---|---|---|---|---|---|---|",
        f"| {s['CONTEXT_RECALL_LIMIT']} (configured) | {s['CONTEXT_RECALL_THRESHOLD']} | {r['product_share']:.0%} |"
        f" {r['via']['recall']} | {r['via']['facts']} | {r['context']['mean_tokens_used']} |"
        f" {r['context']['mean_tiers'].get('recalled', 0)} |",
        *[
            f"| {v['recall_limit']} | {v['recall_threshold']} | {v['share']:.0%} | {v['via_recall']} |"
            f" {v['via_facts']} | {v['mean_tokens_used']} | {v['mean_recalled_tokens']} |"
            for v in r["variants"]
        ],
        "",
        "| conv | exch | kind | statement | question | via | last-N | cos | rank | fact rank | extracted fact |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o in r["outcomes"]:
        statement = o["statement"].replace("|", "/")
        lines.append(
            f"| {o['conversation']} | {o['exchange']} | {o['kind']} | {statement} | {o['question']} |"
            f" {', '.join(o['via']) or '—'} | {'yes' if o['baseline'] else 'no'} | {o['similarity']} | {o['rank']} |"
            f" {o['fact_rank'] or '—'} | {'; '.join(o['facts']) or '—'} |"
        )
    lines.append("")
    path.write_text("\n".join(lines))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--conversations", type=int, default=len(FACTS), choices=range(1, len(FACTS) + 1))
    parser.add_argument("--exchanges", type=int, default=2000, help="user/assistant exchanges per conversation")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    results = run(args)
    report = write_report(results)
    print(json.dumps({key: value for key, value in results.items() if key != "outcomes"}))
    print(f"report: {report}")


if __name__ == "__main__":
    main()
