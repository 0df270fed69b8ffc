"""The learned half of the guardrails: k nearest neighbours over MiniLM embeddings of labelled examples.

Each reference set is a JSONL file in moderation/data (text, label, category, source; a label is
"benign" or names a harmful class) whose embeddings are shipped beside it as an .npz, so a process
does not spend ~5 s embedding a few hundred examples on its first check. The .npz records the
sha256 of the JSONL it was computed from and the embedding model's name: if either differs (the set
was edited, or EMBEDDING_BACKEND names another model) the vectors are recomputed at first use, with
a warning, instead of comparing incomparable vectors. A set may name companions (COMPANIONS): other
labelled files in moderation/data whose lines join its own, so the injection k-NN also votes over the
head's written training set. Their digests count in the set's, and their vectors are in the same .npz.
After editing a set or a companion, rebuild the file:

    python -m moderation.detectors.reference

Texts are embedded through chatproject.llm.embeddings, so the same model (and its one copy in
memory) serves memory search and the guardrails. A detector asks `vectors_for` for windows of a
text; vectors are kept in a small per-process LRU because a streaming reply is re-checked with
the tail of what came before, and the input and output detectors look at the same windows.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypedDict, Unpack

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parent.parent / "data"
BENIGN = "benign"
DIMENSIONS = 384  # chatproject.llm.embeddings.DIMENSIONS, without importing Django settings here
SET_NAMES = ("injection_reference", "toxicity_reference")
# Files in DATA whose lines join a set's own, after them. The injection set's k-NN votes over the head's
# training set too: with it (and the retired clean splits it holds), three folds of the retired splits found
# 95.5% of their held-out attacks against 93.1% with the curated set alone, with as few ordinary prompts
# flagged (5 of 1,169); see docs/guardrails.md.
COMPANIONS: dict[str, tuple[str, ...]] = {"injection_reference": ("injection_training.jsonl",)}


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: str  # "benign", or the harmful class ("attack", "harmful")
    category: str  # the finding category it teaches ("prompt_injection", "toxicity.hate", ...); "none" if benign
    source: str  # which public description the example follows


@dataclass(frozen=True, slots=True)
class Votes:
    """What the neighbours of one vector say."""

    score: float  # weighted share of harmful neighbours, damped when none is close: 0..1
    category: str  # the harmful category with the most weight ("" if none)
    nearest: float  # cosine similarity of the closest harmful example
    neighbour: int  # index of that example in the set (-1 if none)


@dataclass(frozen=True, slots=True)
class KnnParams:
    # Chosen by leave-one-out on the injection reference set (not on any evaluation set).
    k: int = 11
    # Softmax temperature over similarities: closer neighbours count for more.
    temperature: float = 0.1
    # A vote counts fully only when some harmful example is at least this similar, and not at all below
    # `floor`: an input unlike anything in the set is not judged by the set.
    floor: float = 0.4
    full: float = 0.55


class ReferenceSet:
    """One labelled set with its vectors, loaded on first use; `votes` is thread-safe."""

    def __init__(self, name: str, params: KnnParams | None = None) -> None:
        self.name = name
        self.params = params or KnnParams()
        self.path = DATA / f"{name}.jsonl"
        self.paths = (self.path, *(DATA / companion for companion in COMPANIONS.get(name, ())))
        self._lock = threading.Lock()
        # (examples, their unit vectors as columns, which are harmful). With a companion the set has ~17,000
        # examples: the mask is built once, not on each vote (a Python pass over them costs a millisecond),
        # and the vectors are kept transposed, because a vector times a contiguous (384, n) matrix reads it
        # in order: 0.3 ms here against 1.1 ms through a transposed view of (n, 384).
        self._loaded: tuple[list[Example], NDArray[np.float32], NDArray[np.bool_]] | None = None

    @property
    def examples(self) -> list[Example]:
        return self._load()[0]

    @property
    def matrix(self) -> NDArray[np.float32]:
        """The examples' unit vectors, one row each (a view)."""
        return self._load()[1].T

    def votes(self, vectors: NDArray[np.float32], *, exclude: Sequence[int] = ()) -> list[Votes]:
        """The neighbours' verdict for each row of `vectors` (unit vectors, shape (m, 384)).

        `exclude` leaves examples out (leave-one-out evaluation of the set itself).
        """
        examples, columns, harmful = self._load()
        if len(vectors) == 0:
            return []
        sims = vectors @ columns
        if exclude:
            sims[:, list(exclude)] = -1.0
        return [self._vote(row, examples, harmful) for row in sims]

    def _vote(self, sims: NDArray[np.float32], examples: list[Example], harmful: NDArray[np.bool_]) -> Votes:
        p = self.params
        k = min(p.k, len(sims))
        top = np.argpartition(-sims, k - 1)[:k]
        weights = np.exp((sims[top] - sims[top].max()) / p.temperature)
        share = float(weights[harmful[top]].sum() / weights.sum())
        if not harmful.any():
            return Votes(0.0, "", 0.0, -1)
        harmful_sims = np.where(harmful, sims, -1.0)
        neighbour = int(harmful_sims.argmax())
        nearest = float(harmful_sims[neighbour])
        gate = min(max((nearest - p.floor) / (p.full - p.floor), 0.0), 1.0)
        by_category: dict[str, float] = {}
        for index, weight in zip(top, weights, strict=True):
            if harmful[index]:
                category = examples[index].category
                by_category[category] = by_category.get(category, 0.0) + float(weight)
        category = max(by_category, key=by_category.__getitem__) if by_category else examples[neighbour].category
        return Votes(round(share * gate, 4), category, nearest, neighbour)

    @staticmethod
    def _harmful_mask(examples: list[Example]) -> NDArray[np.bool_]:
        return np.array([example.label != BENIGN for example in examples], dtype=bool)

    def examples_from_files(self) -> list[Example]:
        return [example for path in self.paths if path.exists() for example in read_examples(path)]

    def digest(self) -> str:
        """What the set is made of: its own file's sha256, or with companions a digest of all their digests."""
        return set_digest(self.paths)

    def _load(self) -> tuple[list[Example], NDArray[np.float32], NDArray[np.bool_]]:
        loaded = self._loaded
        if loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._loaded = _shared_load(self)
                loaded = self._loaded
        return loaded


# The loaded sets of this process, by name, with the digest they were loaded at. A detector is rebuilt whenever
# the MODERATION_ settings change, and with its companion the injection set is ~17,000 examples (250 ms to
# parse, decompress and transpose): the same files are loaded once and shared, read-only.
_shared: dict[str, tuple[str, tuple[list[Example], NDArray[np.float32], NDArray[np.bool_]]]] = {}
_shared_lock = threading.Lock()


def _shared_load(reference: ReferenceSet) -> tuple[list[Example], NDArray[np.float32], NDArray[np.bool_]]:
    digest = reference.digest()
    with _shared_lock:
        found = _shared.get(reference.name)
        if found is not None and found[0] == digest:
            return found[1]
        examples = reference.examples_from_files()
        columns = np.ascontiguousarray(_vectors_of(reference, examples).T)
        columns.flags.writeable = False
        loaded = (examples, columns, reference._harmful_mask(examples))
        _shared[reference.name] = (digest, loaded)
        return loaded


def known_embedding(text: str, extra: dict[str, Any] | None) -> dict[str, Any] | None:
    """The turn's own vector of the whole message, when the caller passed it: no second embedding."""
    vector = extra.get("embedding") if extra else None
    return {text: vector} if vector is not None else None


def ramp(score: float, floor: float, weight: float) -> float:
    """A learned score's share of a verdict: nothing up to floor, then linear up to weight at 1.0."""
    if score <= floor:
        return 0.0
    return weight * (score - floor) / (1.0 - floor)


def read_examples(path: Path) -> list[Example]:
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        try:
            examples.append(Example(row["text"], row["label"], row["category"], row["source"]))
        except KeyError as exc:
            raise ValueError(f"{path}:{number} lacks the field {exc}") from exc
    return examples


def source_digest(path: Path) -> str:
    """sha256 of a data file, hashed once per version of it: the training set is megabytes, and every new
    detector (each settings change, in tests) checks its shipped arrays against it."""
    stat = path.stat()
    return _digest_of_version(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _digest_of_version(path: str, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def set_digest(paths: Sequence[Path]) -> str:
    digests = [source_digest(path) for path in paths if path.exists()]
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256("".join(digests).encode()).hexdigest()


def vectors_path(name: str) -> Path:
    return DATA / f"{name}.npz"


def _vectors_of(reference: ReferenceSet, examples: list[Example]) -> NDArray[np.float32]:
    shipped = _shipped_vectors(reference.name, reference.digest(), len(examples))
    if shipped is not None:
        return shipped
    logger.warning(
        "%s: shipped vectors missing or stale (set edited or another embedding model); embedding %d examples"
        " now. Run `python -m moderation.detectors.reference` to ship fresh ones.",
        reference.name,
        len(examples),
    )
    return embed_texts([example.text for example in examples])


def shipped_arrays(path: Path, digest: str, names: Sequence[str]) -> dict[str, NDArray[Any]] | None:
    """Arrays of a shipped .npz, if it was made from exactly this JSONL by exactly this model."""
    from chatproject.llm import embeddings

    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as stored:
        meta = json.loads(str(stored["meta"]))
        if meta.get("source_sha256") != digest or meta.get("model") != embeddings.model_name():
            return None
        return {name: np.asarray(stored[name]) for name in names}


def _shipped_vectors(name: str, digest: str, count: int) -> NDArray[np.float32] | None:
    """The .npz vectors if they were made from exactly this JSONL by exactly this model."""
    arrays = shipped_arrays(vectors_path(name), digest, ("vectors",))
    if arrays is None:
        return None
    vectors = arrays["vectors"].astype(np.float32)
    if vectors.shape != (count, DIMENSIONS):
        return None
    # float16 storage rounds; re-normalising keeps dot products true cosines.
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def build(name: str) -> Path:
    """Embed a set and write its .npz; what the module does when run as a script."""
    from chatproject.llm import embeddings

    reference = ReferenceSet(name)
    examples = reference.examples_from_files()
    vectors = embed_texts([example.text for example in examples])
    meta = {"source_sha256": reference.digest(), "model": embeddings.model_name(), "count": len(examples)}
    path = vectors_path(name)
    np.savez_compressed(path, vectors=vectors.astype(np.float16), meta=np.array(json.dumps(meta)))
    return path


# --- Embedding texts, windows of long texts, and the cache ----------------------------------------------


def embed_texts(texts: Sequence[str]) -> NDArray[np.float32]:
    from chatproject.llm import embeddings

    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    return np.asarray(embeddings.embed(list(texts)), dtype=np.float32)


class _VectorCache:
    """A bounded LRU of text -> vector, shared by the detectors of one process."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, text: str) -> NDArray[np.float32] | None:
        with self._lock:
            vector = self._items.get(text)
            if vector is not None:
                self._items.move_to_end(text)
            return vector

    def put(self, text: str, vector: NDArray[np.float32]) -> None:
        with self._lock:
            self._items[text] = vector
            self._items.move_to_end(text)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


vector_cache = _VectorCache(size=2048)


def vectors_for(texts: Sequence[str], *, known: dict[str, Any] | None = None) -> NDArray[np.float32]:
    """One unit vector per text, embedding only those neither `known` nor cached, in one batch.

    `known` maps a text to a vector the caller already has (the turn's embedding of the message).
    """
    found: dict[str, NDArray[np.float32]] = {}
    for text in texts:
        vector = _known_vector(known, text) if known else None
        if vector is None:
            vector = vector_cache.get(text)
        if vector is not None:
            found[text] = vector
    missing = [text for text in dict.fromkeys(texts) if text not in found]
    if missing:
        for text, vector in zip(missing, embed_texts(missing), strict=True):
            vector_cache.put(text, vector)
            found[text] = vector
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    return np.stack([_unit(found[text]) for text in texts])


def _known_vector(known: dict[str, Any], text: str) -> NDArray[np.float32] | None:
    vector = known.get(text)
    if vector is None or len(vector) != DIMENSIONS:
        return None
    return np.asarray(vector, dtype=np.float32)


def _unit(vector: NDArray[np.float32]) -> NDArray[np.float32]:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


@dataclass(frozen=True, slots=True)
class Window:
    start: int
    end: int
    text: str


_SENTENCE = re.compile(r"[^.!?\n]*(?:[.!?]+[\"')\]]*|\n+|$)")


def windows(text: str, *, words: int = 40, max_chars: int = 20_000) -> list[Window]:
    """Consecutive sentences packed into windows of about `words` words (longer sentences are cut).

    Reference examples are one to three sentences long; windows of that size compare best with them,
    where one vector of a whole document would average an injected sentence away.
    """
    result: list[Window] = []
    start = end = count = 0
    for sentence in _sentences(text[:max_chars]):
        size = len(sentence.text.split())
        if count and count + size > words:
            result.append(Window(start, end, text[start:end].strip()))
            count = 0
        if not count:
            start = sentence.start
        end = sentence.end
        count += size
        if count > words:
            result += _cut(text, start, end, words)
            count = 0
    if count:
        result.append(Window(start, end, text[start:end].strip()))
    return [window for window in result if window.text]


def _sentences(text: str) -> list[Window]:
    return [Window(m.start(), m.end(), m.group()) for m in _SENTENCE.finditer(text) if m.group().strip()]


def _cut(text: str, start: int, end: int, words: int) -> list[Window]:
    """A long sentence (or a paste without punctuation) in pieces of `words` words."""
    spans = [m.span() for m in re.finditer(r"\S+", text[start:end])]
    pieces = []
    for first in range(0, len(spans), words):
        chunk = spans[first : first + words]
        a, b = start + chunk[0][0], start + chunk[-1][1]
        pieces.append(Window(a, b, text[a:b]))
    return pieces


# --- What both detectors do with the reference set ----------------------------------------------------------

# A text worth a vector, and the span of the checked text it stands for (where a finding points).
Candidate = tuple[str, tuple[int, int]]


class KnnOptions(TypedDict, total=False):
    """A detector's k-NN settings, as settings.MODERATION_DETECTORS may override them ("options")."""

    use_knn: bool
    knn_floor: float
    knn_weight: float
    window_words: int
    max_windows: int
    max_chars: int
    min_score: float
    reference_set: str


class NeighbourSignal:
    """The learned half of a detector: its k-NN settings, which texts to embed, and what a vote adds.

    The injection and toxicity detectors differ in their rules and in how they read the votes, not in
    how they choose windows of a long text or weigh a vote, so that lives here once. A subclass names
    its own defaults; the floor and weight were chosen by leave-one-out on its reference set (recall
    against false positives on its hard negatives), not on an evaluation set.
    """

    REFERENCE_SET: ClassVar[str]
    KNN_FLOOR: ClassVar[float]  # a vote up to here adds nothing...
    KNN_WEIGHT: ClassVar[float]  # ...and a unanimous one adds this much
    MIN_SCORE: ClassVar[float]  # findings weaker than this are not reported at all

    def __init__(self, **options: Unpack[KnnOptions]) -> None:
        self.use_knn = options.get("use_knn", True)
        self.knn_floor = options.get("knn_floor", self.KNN_FLOOR)
        self.knn_weight = options.get("knn_weight", self.KNN_WEIGHT)
        self.window_words = options.get("window_words", 40)
        self.max_windows = options.get("max_windows", 2)
        self.max_chars = options.get("max_chars", 20_000)
        self.min_score = options.get("min_score", self.MIN_SCORE)
        self.reference = ReferenceSet(options.get("reference_set", self.REFERENCE_SET))

    def knn_contribution(self, score: float) -> float:
        return ramp(score, self.knn_floor, self.knn_weight)

    def is_long(self, text: str) -> bool:
        """Long enough that one vector of the whole would average an instruction away: windows are embedded."""
        return len(text.split()) > self.window_words * 1.5

    def cued_windows(self, text: str, weigh: Callable[[Window], int], *, reuse_cached: bool = False) -> list[Candidate]:
        """The `max_windows` windows that `weigh` rates highest (0: not worth a vector).

        With `reuse_cached`, windows another detector already embedded come along too: they cost nothing.
        """
        free, scored = [], []
        for window in windows(text, words=self.window_words, max_chars=self.max_chars):
            if reuse_cached and vector_cache.get(window.text) is not None:
                free.append(window)
                continue
            weight = weigh(window)
            if weight:
                scored.append((weight, window))
        scored.sort(key=lambda pair: -pair[0])
        chosen = free + [window for _, window in scored[: self.max_windows]]
        return [(window.text, (window.start, window.end)) for window in chosen]

    @staticmethod
    def candidate_vectors(candidates: Sequence[Candidate], text: str, extra: dict[str, Any]) -> NDArray[np.float32]:
        """Vectors of the candidates, reusing the turn's vector of the whole text when it was passed."""
        return vectors_for([candidate for candidate, _ in candidates], known=known_embedding(text, extra))


# --- The script -----------------------------------------------------------------------------------------


def main() -> None:
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    django.setup()
    for name in SET_NAMES:
        path = build(name)
        print(f"wrote {path} ({len(ReferenceSet(name).examples_from_files())} examples)")


if __name__ == "__main__":
    main()
