"""Hashed word and character n-grams of a text: the lexical half of the injection head's features.

MiniLM's vector says what a text is about; it blurs how it is put ("### SYSTEM:", "<|im_start|>",
"Developer Mode enabled", "[INST]", a JSON field addressed to "the AI"). Word uni- and bigrams and the
character 3-5-grams of each word keep that, and the character grams carry over to spellings a
reference example never used (leetspeak, inflections, other languages' cognates). Features are hashed
into DIMENSIONS buckets (the hashing trick) so the head needs no vocabulary file; a collision costs a
little accuracy, not correctness.

crc32 rather than hash(): Python salts str hashes per process, and a trained head must read the same
bucket in every process.
"""

from __future__ import annotations

import itertools
import re
import threading
import zlib
from collections import OrderedDict

import numpy as np
from numpy.typing import NDArray

DIMENSIONS = 1 << 18
# Only the start of a very long paste is read: the features of 8,000 characters cost about 1 ms.
MAX_CHARS = 8_000
_TOKEN = re.compile(r"\w+|[^\w\s]")
_MASK = DIMENSIONS - 1


def _bucket(feature: str) -> int:
    return zlib.crc32(feature.encode()) & _MASK


class _WordCache:
    """Buckets of a word's own features (the word and its character grams), kept per process: words repeat."""

    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self._items: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def buckets(self, word: str) -> tuple[int, ...]:
        with self._lock:
            found = self._items.get(word)
        if found is not None:
            return found
        found = _word_buckets(word)
        with self._lock:
            self._items[word] = found
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return found


def _word_buckets(word: str) -> tuple[int, ...]:
    buckets = [_bucket("w:" + word)]
    if len(word) > 1 and word.isalnum():
        marked = f"<{word}>"
        for n in (3, 4, 5):
            buckets += (_bucket("c:" + marked[i : i + n]) for i in range(max(1, len(marked) - n + 1)))
    return tuple(buckets)


_words = _WordCache()


def features(text: str) -> NDArray[np.int64]:
    """The sorted, distinct buckets a text sets (each counts once: presence, not frequency)."""
    tokens = _TOKEN.findall(text[:MAX_CHARS].lower())
    buckets: list[int] = []
    for token in dict.fromkeys(tokens):
        buckets += _words.buckets(token)
    buckets += (_bucket(f"b:{a} {b}") for a, b in dict.fromkeys(itertools.pairwise(tokens)))
    return np.unique(np.fromiter(buckets, dtype=np.int64, count=len(buckets)))


class Sparse:
    """A batch of texts' features as coordinate lists, each row scaled to unit length."""

    __slots__ = ("cols", "rows", "size", "values")

    def __init__(self, texts: list[str]) -> None:
        per_text = [features(text) for text in texts]
        self.size = len(texts)
        self.rows = np.repeat(np.arange(self.size), [len(f) for f in per_text])
        self.cols = np.concatenate(per_text) if per_text else np.zeros(0, dtype=np.int64)
        lengths = np.array([max(len(f), 1) for f in per_text], dtype=np.float64)
        self.values = (1.0 / np.sqrt(lengths))[self.rows] if self.size else np.zeros(0)

    def dot(self, weights: NDArray[np.floating]) -> NDArray[np.float64]:
        """Each row times `weights` (shape (DIMENSIONS,))."""
        # With weights, bincount sums floats (its stubs only know the counting form).
        return np.asarray(
            np.bincount(self.rows, weights=weights[self.cols] * self.values, minlength=self.size), dtype=np.float64
        )

    def transpose_dot(self, errors: NDArray[np.float64]) -> NDArray[np.float64]:
        """The transpose times `errors` (shape (size,)): the gradient's sparse part."""
        return np.asarray(
            np.bincount(self.cols, weights=errors[self.rows] * self.values, minlength=DIMENSIONS), dtype=np.float64
        )
