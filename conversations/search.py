"""Search across one user's own conversations: words and meaning, ranked together.

Two searches run in one SQL statement and are fused by reciprocal rank (each message scores
Σ 1 / (RRF_K + its rank in a list)), which needs no calibration between a text-search rank and a
cosine distance, scales that mean nothing to each other:

- by words: PostgreSQL full-text search on `conversations_message.search_vector`, a stored
  tsvector generated from `content` with its GIN index (migration 0006_search), queried with
  `websearch_to_tsquery`, so people can type "quoted phrases", `or` and `-excluded` words;
- by meaning: the query embedded with the product's embedder and the message vectors searched by
  cosine distance on their HNSW index, with pgvector's iterative scan (set per connection in
  settings) so the filter to one user's rows cannot starve the index of candidates.

The text search configuration is 'english': stemming lets "recipes" find "recipe" and "running"
find "runs", and words like "the", which would match everything, are dropped.
Text in other languages still matches word for word, because query and messages go through the
same configuration; the meaning half covers what stemming misses there.

Only the user's own conversations that are not deleted are searched; system prompts and blocked
replies never are. The matching message comes back with its matches marked by `ts_headline`,
HTML-escaped here except for the marks, and a link that opens the conversation at the message.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from chatproject.llm import embeddings

logger = logging.getLogger(__name__)

MAX_QUERY_CHARS = 200
DEFAULT_LIMIT = 20
MAX_LIMIT = 50
# Candidates taken from each search before fusing: enough that a message ranked well by one and
# poorly by the other still reaches the top of the fused list.
CANDIDATES = 50
# Ranking reads every matching message: a word found in a quarter of 100,000 messages costs
# 150-350 ms to rank (bench/search.py). So only the first this many matches found are ranked, in no
# particular order: a word that common says little about which message is wanted, and the meaning
# half still ranks the whole history. Queries of a few words rarely reach the cap (words are ANDed).
RANK_AT_MOST = 2_000
# The constant of reciprocal rank fusion (Cormack et al. 2009); 60 is the usual choice.
RRF_K = 60
# Nearest neighbours are returned however far they are; beyond this cosine distance (similarity
# under 0.3 with all-MiniLM-L6-v2) a message is unrelated to the query and only adds noise.
DEFAULT_MAX_DISTANCE = 0.7
# Where ts_headline marks a match: private-use characters, removed from the text first so that a
# message cannot fake a mark, turned into <mark> only after the rest is escaped.
_START, _STOP = "\ue000", "\ue001"
# What `<` and `>` become before parsing, as in the stored tsvector (migration 0006_search): the
# parser would take `<script>` for markup and ts_headline would leave it out of the snippet.
_LT, _GT = "\ue002", "\ue003"
# translate(): `<` and `>` to their stand-ins; the four private-use characters, when a message
# contains them, are deleted (no character to map them to).
_TRANSLATE_FROM, _TRANSLATE_TO = "<>" + _START + _STOP + _LT + _GT, _LT + _GT
# ts_headline parses the whole text it is given; a match further in than this is found, not shown.
_HEADLINE_CHARS = 20_000
_HEADLINE_OPTIONS = (
    f'StartSel="{_START}", StopSel="{_STOP}", MaxWords=40, MinWords=18, ShortWord=2,'
    ' MaxFragments=2, FragmentDelimiter=" … "'
)
_SPACES = re.compile(r"\s+")


class SearchQueryInvalid(ValueError):
    """A query that cannot be searched for; `message` says why, for the person who typed it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class SearchHit:
    message_id: int
    conversation_id: UUID
    conversation_title: str
    role: str
    created_at: datetime
    # The message around its matches: escaped HTML whose only tags are <mark>…</mark>.
    snippet: SafeString
    score: float
    by_words: bool
    by_meaning: bool

    @property
    def url(self) -> str:
        detail = reverse("conversation-detail", kwargs={"conversation_id": self.conversation_id})
        # `?m=` opens the branch the message is on, when it is not the one shown.
        return f"{detail}?m={self.message_id}#m-{self.message_id}"

    def as_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "conversation_id": str(self.conversation_id),
            "conversation_title": self.conversation_title,
            "role": self.role,
            "created_at": self.created_at.isoformat(),
            "snippet_html": str(self.snippet),
            "url": self.url,
            "score": round(self.score, 6),
            "matched_by": [name for name, hit in (("words", self.by_words), ("meaning", self.by_meaning)) if hit],
        }


def search_query_clean(query: str) -> str:
    """The query with its whitespace collapsed; SearchQueryInvalid if it is empty or too long."""
    text = _SPACES.sub(" ", query.replace("\x00", " ")).strip()
    if not text:
        raise SearchQueryInvalid("empty_query", "Type a word or a phrase to search for.")
    if len(text) > MAX_QUERY_CHARS:
        raise SearchQueryInvalid(
            "query_too_long", f"A search can be at most {MAX_QUERY_CHARS} characters; this one has {len(text)}."
        )
    return text


# The rows a user may find: their own conversations that are not deleted, and no system prompts or
# blocked replies.
_OWN = """
    JOIN conversations_conversation c ON c.id = m.conversation_id
    WHERE c.owner_id = %(user)s AND c.deleted_at IS NULL
      AND m.role IN ('user', 'assistant') AND m.status <> 'blocked'"""

_SEARCH_SQL = """
WITH q AS (SELECT websearch_to_tsquery('english', %(text)s) AS tsq),
matches AS MATERIALIZED (
    SELECT m.id, m.search_vector
    FROM q CROSS JOIN conversations_message m{own}
      AND m.search_vector @@ q.tsq
    LIMIT %(rank_at_most)s
),
by_words AS (
    SELECT matches.id, row_number() OVER (ORDER BY ts_rank_cd(matches.search_vector, q.tsq) DESC, matches.id DESC)
        AS rank
    FROM matches CROSS JOIN q
    ORDER BY rank
    LIMIT %(candidates)s
){meaning_ctes},
fused AS (
    SELECT id, sum(1.0 / (%(rrf_k)s + rank)) AS score,
           bool_or(source = 'words') AS by_words, bool_or(source = 'meaning') AS by_meaning
    FROM (
        SELECT id, rank, 'words' AS source FROM by_words{meaning_union}
    ) ranked
    GROUP BY id
    ORDER BY score DESC, id DESC
    LIMIT %(limit)s
)
SELECT f.id, c.id, c.title, m.role, m.created_at, f.score, f.by_words, f.by_meaning,
       ts_headline('english', left(translate(m.content, %(from)s, %(to)s), %(headline_chars)s), q.tsq,
                   %(headline_options)s)
FROM fused f
JOIN conversations_message m ON m.id = f.id
JOIN conversations_conversation c ON c.id = m.conversation_id
CROSS JOIN q
ORDER BY f.score DESC, f.id DESC
"""

# MATERIALIZED keeps the planner from merging the nearest-neighbour scan into the outer query, and
# the re-ranking below restores exact order: the iterative scan's 'relaxed_order' may return
# neighbours slightly out of order.
_MEANING_CTES = """,
nearest AS MATERIALIZED (
    SELECT m.id, m.embedding <=> %(vector)s::vector AS distance
    FROM conversations_message m{own}
      AND m.embedding IS NOT NULL
    ORDER BY distance
    LIMIT %(candidates)s
),
by_meaning AS (
    SELECT id, row_number() OVER (ORDER BY distance, id) AS rank
    FROM nearest
    WHERE distance <= %(max_distance)s
)"""
_MEANING_UNION = """
        UNION ALL
        SELECT id, rank, 'meaning' FROM by_meaning"""


def _statement(*, with_meaning: bool) -> str:
    return _SEARCH_SQL.format(
        own=_OWN,
        meaning_ctes=_MEANING_CTES.format(own=_OWN) if with_meaning else "",
        meaning_union=_MEANING_UNION if with_meaning else "",
    )


_WITH_MEANING = _statement(with_meaning=True)
_WORDS_ONLY = _statement(with_meaning=False)


def _query_vector(text: str) -> list[float] | None:
    """The query's embedding, or None when the embedder fails: words alone still find things."""
    try:
        return embeddings.embed_one(text)
    except Exception:  # a remote embedding backend can fail in many ways; search degrades, not breaks
        logger.warning("search: embedding the query failed; searching by words only", exc_info=True)
        return None


def _vector_literal(values: Sequence[float]) -> str:
    return "[" + ",".join(str(float(v)) for v in values) + "]"


def _snippet(headline: str) -> SafeString:
    escaped = html.escape(headline, quote=False)
    for stand_in, markup in ((_START, "<mark>"), (_STOP, "</mark>"), (_LT, "&lt;"), (_GT, "&gt;")):
        escaped = escaped.replace(stand_in, markup)
    return mark_safe(escaped)  # everything but the marks was escaped just above


def messages_search(*, user_id: int, query: str, limit: int = DEFAULT_LIMIT) -> list[SearchHit]:
    """The user's messages that best match `query` by words or by meaning, best first.

    Raises SearchQueryInvalid for an empty or too long query. One embedding of the query and one
    SQL statement; `limit` is clamped to 1..MAX_LIMIT.
    """
    text = search_query_clean(query)
    vector = _query_vector(text)
    params: dict[str, Any] = {
        "user": user_id,
        "text": text,
        "candidates": CANDIDATES,
        "rank_at_most": RANK_AT_MOST,
        "rrf_k": RRF_K,
        "limit": max(1, min(int(limit), MAX_LIMIT)),
        "from": _TRANSLATE_FROM,
        "to": _TRANSLATE_TO,
        "headline_chars": _HEADLINE_CHARS,
        "headline_options": _HEADLINE_OPTIONS,
    }
    if vector is not None:
        params["vector"] = _vector_literal(vector)
        params["max_distance"] = float(getattr(settings, "SEARCH_MAX_DISTANCE", DEFAULT_MAX_DISTANCE))
    with connection.cursor() as cursor:
        cursor.execute(_WITH_MEANING if vector is not None else _WORDS_ONLY, params)
        rows = cursor.fetchall()
    return [
        SearchHit(
            message_id=row[0],
            conversation_id=row[1],
            conversation_title=row[2],
            role=row[3],
            created_at=row[4],
            score=float(row[5]),
            by_words=bool(row[6]),
            by_meaning=bool(row[7]),
            snippet=_snippet(row[8]),
        )
        for row in rows
    ]
