"""Cross-validated quality of the injection detector: how it does on wordings its learned part never saw.

The shipped head is trained on the reference set, the training set (moderation/data/
injection_training.jsonl), the public corpus's training half and every split of
bench/data/injection_eval.jsonl, so scoring it on those splits says nothing about new wordings. Here
each split is held out in turn (leave-one-split-out): the head is retrained on all of that but the
held-out split, the detector (rules + k-NN + that head) scores the held-out split, and the held-out
results are pooled. A second view trains the head without any evaluation split and scores every
split (nothing of the evaluation set seen by the learned part). The k-NN never holds evaluation
lines, so it needs no retraining.

The rules were written with dev, holdout, holdout2 and (since the fourth round) holdout3 in view, so
these figures still flatter the rules; they are honest about the learned half only.

    python -m bench.guardrails_injection_cv [--grid]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bench.guardrails_detectors import ORDINARY_SOURCE, Example, load

CV_SPLITS = ("dev", "holdout", "holdout2", "holdout3")
THRESHOLD = 0.5


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    import django

    django.setup()


def _scores(detector: Any, examples: Sequence[Example], vectors: NDArray[np.float32]) -> list[float]:
    from moderation.detectors.base import CheckContext, Direction

    out = []
    for example, vector in zip(examples, vectors, strict=True):
        context = CheckContext(extra={"embedding": vector.tolist()})
        findings = detector.check(example.text, direction=Direction.INPUT, context=context)
        out.append(max((f.score for f in findings), default=0.0))
    return out


def _embed_cached(texts: Sequence[str]) -> NDArray[np.float32]:
    """Embeddings of the evaluation texts, kept in a temporary file between runs of this script."""
    from moderation.detectors import reference

    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"injection-cv-{digest}.npy"
    if path.exists():
        return np.load(path)
    vectors = reference.embed_texts(texts)
    np.save(path, vectors)
    return vectors


def summary(examples: Sequence[Example], scores: Sequence[float], threshold: float = THRESHOLD) -> dict[str, Any]:
    attacks = [s for e, s in zip(examples, scores, strict=True) if e.positive]
    chat = [s for e, s in zip(examples, scores, strict=True) if not e.positive and ORDINARY_SOURCE in e.source]
    hard = [s for e, s in zip(examples, scores, strict=True) if not e.positive and ORDINARY_SOURCE not in e.source]
    return {
        "attacks": len(attacks),
        "recall": round(float(np.mean([s >= threshold for s in attacks])), 4) if attacks else None,
        "chat": len(chat),
        "chat_fp": sum(s >= threshold for s in chat),
        "hard": len(hard),
        "hard_fp": sum(s >= threshold for s in hard),
    }


def run(detector: Any, grid: Sequence[tuple[float, float]]) -> dict[str, Any]:
    from moderation.detectors import classifier

    ref = detector.reference
    # The reference set's examples already hold the training set (its companion).
    extra = [
        row
        for row in classifier._labelled_rows(classifier.PUBLIC, None)
        if classifier.public_training_half(row["text"])
    ]
    ref_texts = [e.text for e in ref.examples] + [row["text"] for row in extra]
    ref_vectors = np.vstack([ref.matrix, _embed_cached(ref_texts[len(ref.examples) :])])
    ref_positive = np.array(
        [e.label != "benign" for e in ref.examples] + [row["label"] != "benign" for row in extra], dtype=bool
    )
    examples = [e for e in load("injection_eval") if e.split in CV_SPLITS]
    eval_texts = [e.text for e in examples]
    eval_vectors = _embed_cached(eval_texts)
    eval_positive = np.array([e.positive for e in examples], dtype=bool)
    splits = np.array([e.split for e in examples])
    results: dict[str, Any] = {}
    for floor, weight in grid:
        detector.head_floor, detector.head_weight = floor, weight
        pooled: list[float] = [0.0] * len(examples)
        per_split = {}
        for held in CV_SPLITS:
            train_mask = splits != held
            detector.head._head = classifier.train(
                np.vstack([ref_vectors, eval_vectors[train_mask]]),
                np.concatenate([ref_positive, eval_positive[train_mask]]),
                ref_texts + [text for text, keep in zip(eval_texts, train_mask, strict=True) if keep],
            )
            index = np.flatnonzero(~train_mask)
            held_examples = [examples[i] for i in index]
            held_scores = _scores(detector, held_examples, eval_vectors[index])
            for i, score in zip(index, held_scores, strict=True):
                pooled[i] = score
            per_split[held] = summary(held_examples, held_scores)
        detector.head._head = classifier.train(ref_vectors, ref_positive, ref_texts)
        reference_only = {
            held: summary(
                [examples[i] for i in np.flatnonzero(splits == held)],
                _scores(
                    detector,
                    [examples[i] for i in np.flatnonzero(splits == held)],
                    eval_vectors[splits == held],
                ),
            )
            for held in CV_SPLITS
        }
        results[f"floor={floor} weight={weight}"] = {
            "leave_one_split_out": {"pooled": summary(examples, pooled), **per_split},
            "reference_only_head": reference_only,
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", action="store_true", help="also try other head floors and weights")
    args = parser.parse_args()
    _setup()
    from moderation.detectors import reference
    from moderation.detectors.injection import InjectionDetector

    reference.vector_cache.size = 1_000_000  # windows of long texts are embedded once for every fold
    detector = InjectionDetector()
    grid = [(detector.head_floor, detector.head_weight)]
    if args.grid:
        grid += [(f, w) for f in (0.6, 0.7, 0.8, 0.9) for w in (0.6, 0.75, 0.9) if (f, w) != grid[0]]
    print(json.dumps(run(detector, grid), indent=1))


if __name__ == "__main__":
    main()
