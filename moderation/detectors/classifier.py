"""A logistic-regression head on MiniLM vectors, trained on a labelled reference set.

k-NN (reference.py) asks "is this close to one example?"; a linear head asks "which side of the line
between all attacks and all benign examples is this on?", which generalises better to wordings no
single example shares, at the cost of one dot product (384 multiply-adds) per vector.

The head is trained on the reference set the k-NN uses (hand-written examples plus the generated
ones of injection_corpus.py) plus the splits of bench/data/injection_eval.jsonl named in
TRAINING_SPLITS: every split there has been tuned on by now, and its ~500 ordinary chat prompts are
what puts the line in the right place for everyday requests. The clean split (holdout4) is a separate
file this module never reads. bench/guardrails_injection_cv.py measures the head honestly by holding
each split out in turn. It is shipped as moderation/data/<set>_classifier.npz with
the sha256 of the reference JSONL and the embedding model's name. If either differs, the head is
retrained in-process from the reference vectors alone (a fraction of a second, deterministic, a bit
weaker without the evaluation splits) with a warning, like stale reference vectors are re-embedded. After editing the
set, rebuild both files:

    python -m moderation.detectors.reference && python -m moderation.detectors.classifier

Run as a script, this also prints a k-fold cross-validation over the training pool.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from moderation.detectors import reference

logger = logging.getLogger(__name__)

# L2 strength, chosen by 5-fold cross-validation on the reference set (see `main`); strong enough that
# a few hundred examples in 384 dimensions do not get memorised.
L2 = 0.1
NEWTON_STEPS = 25


@dataclass(frozen=True, slots=True)
class LinearHead:
    weights: NDArray[np.float32]  # (384,)
    bias: float

    def probabilities(self, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
        """P(attack) for each row of `vectors` (unit vectors, shape (m, 384))."""
        if len(vectors) == 0:
            return np.zeros(0, dtype=np.float32)
        logits = vectors @ self.weights + self.bias
        return (1.0 / (1.0 + np.exp(-np.clip(logits, -30.0, 30.0)))).astype(np.float32)


def train(vectors: NDArray[np.float32], positive: NDArray[np.bool_], *, l2: float = L2) -> LinearHead:
    """L2-regularised logistic regression by Newton's method, classes weighted to count equally.

    Newton (IRLS) rather than SGD because the problem is tiny (hundreds x 384) and it converges to the
    same answer every time, so a rebuilt head is reproducible.
    """
    x = np.hstack([vectors.astype(np.float64), np.ones((len(vectors), 1))])
    y = positive.astype(np.float64)
    n_pos, n_neg = max(y.sum(), 1.0), max(len(y) - y.sum(), 1.0)
    sample = np.where(y > 0, len(y) / (2 * n_pos), len(y) / (2 * n_neg))
    penalty = np.full(x.shape[1], l2)
    penalty[-1] = 0.0  # the bias is not shrunk
    theta = np.zeros(x.shape[1])
    for _ in range(NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ theta, -30.0, 30.0)))
        gradient = x.T @ (sample * (p - y)) + penalty * theta
        hessian = (x * (sample * p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if float(np.abs(step).max()) < 1e-7:
            break
    return LinearHead(theta[:-1].astype(np.float32), float(theta[-1]))


def head_path(name: str) -> Path:
    return reference.DATA / f"{name}_classifier.npz"


class HeadCache:
    """The head of one reference set, loaded (or retrained when stale) on first use; thread-safe."""

    def __init__(self, reference_set: reference.ReferenceSet) -> None:
        self.reference_set = reference_set
        self._lock = threading.Lock()
        self._head: LinearHead | None = None

    def get(self) -> LinearHead:
        head = self._head
        if head is None:
            with self._lock:
                if self._head is None:
                    self._head = _load_or_train(self.reference_set)
                head = self._head
        return head


def _load_or_train(reference_set: reference.ReferenceSet) -> LinearHead:
    shipped = _shipped_head(reference_set.name, reference.source_digest(reference_set.path))
    if shipped is not None:
        return shipped
    logger.warning(
        "%s: shipped classifier missing or stale (set edited or another embedding model); training it now."
        " Run `python -m moderation.detectors.classifier` to ship a fresh one.",
        reference_set.name,
    )
    return train_on(reference_set)


def train_on(reference_set: reference.ReferenceSet) -> LinearHead:
    positive = np.array([e.label != reference.BENIGN for e in reference_set.examples], dtype=bool)
    return train(reference_set.matrix, positive)


def _shipped_head(name: str, digest: str) -> LinearHead | None:
    arrays = reference.shipped_arrays(head_path(name), digest, ("weights", "bias"))
    if arrays is None:
        return None
    weights = arrays["weights"].astype(np.float32)
    bias = float(arrays["bias"])
    if weights.shape != (reference.DIMENSIONS,):
        return None
    return LinearHead(weights, bias)


EVALUATION = reference.DATA.parent.parent / "bench" / "data" / "injection_eval.jsonl"
TRAINING_SPLITS = ("dev", "holdout", "holdout2", "holdout3")


def training_pool(reference_set: reference.ReferenceSet) -> tuple[NDArray[np.float32], NDArray[np.bool_], str]:
    """Reference vectors plus those of the TRAINING_SPLITS rows, labels, and a digest of those rows."""
    vectors = reference_set.matrix
    positive = np.array([e.label != reference.BENIGN for e in reference_set.examples], dtype=bool)
    if not EVALUATION.exists():
        return vectors, positive, ""
    lines = [line for line in EVALUATION.read_text(encoding="utf-8").splitlines() if line]
    rows = [row for row in map(json.loads, lines) if row.get("split", "dev") in TRAINING_SPLITS]
    digest = hashlib.sha256("\n".join(row["text"] for row in rows).encode()).hexdigest()
    extra_vectors = reference.embed_texts([row["text"] for row in rows])
    extra_positive = np.array([row["label"] != "benign" for row in rows], dtype=bool)
    return np.vstack([vectors, extra_vectors]), np.concatenate([positive, extra_positive]), digest


def build(name: str) -> tuple[Any, LinearHead]:
    from chatproject.llm import embeddings

    reference_set = reference.ReferenceSet(name)
    vectors, positive, splits_digest = training_pool(reference_set)
    head = train(vectors, positive)
    meta = {
        "source_sha256": reference.source_digest(reference_set.path),
        "training_splits": list(TRAINING_SPLITS),
        "training_splits_sha256": splits_digest,
        "model": embeddings.model_name(),
        "count": len(vectors),
        "l2": L2,
    }
    path = head_path(name)
    np.savez_compressed(path, weights=head.weights, bias=np.float32(head.bias), meta=np.array(json.dumps(meta)))
    return path, head


# --- The script -----------------------------------------------------------------------------------------


def cross_validate(
    vectors: NDArray[np.float32], positive: NDArray[np.bool_], *, l2: float, folds: int = 5, seed: int = 7
) -> NDArray[np.float32]:
    """Out-of-fold P(attack) for every example."""
    order = np.random.default_rng(seed).permutation(len(vectors))
    out = np.zeros(len(vectors), dtype=np.float32)
    for fold in range(folds):
        test = order[fold::folds]
        train_mask = np.ones(len(vectors), dtype=bool)
        train_mask[test] = False
        out[test] = train(vectors[train_mask], positive[train_mask], l2=l2).probabilities(vectors[test])
    return out


def main() -> None:
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    django.setup()
    name = "injection_reference"
    vectors, positive, _ = training_pool(reference.ReferenceSet(name))
    for l2 in (0.1, 0.3, 1.0):
        p = cross_validate(vectors, positive, l2=l2)
        for cut in (0.5, 0.7, 0.8, 0.9):
            print(
                f"cv l2={l2}: at {cut} recall {float((p[positive] >= cut).mean()):.3f}"
                f" fpr {float((p[~positive] >= cut).mean()):.3f}"
            )
    path, _ = build(name)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
