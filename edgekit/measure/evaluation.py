"""Evaluators: the task metric of an artifact, measured by running it on its own runtime.

* embeddings: cosine to the fp32 PyTorch outputs (mean, worst);
* classification: accuracy and macro-F1 on a labelled evaluation set, and
  agreement with the fp32 model's labels;
* scored sentence pairs: Spearman correlation between embedding cosine
  similarity and the scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from edgekit.data.feeds import concat_rows, text_batches
from edgekit.errors import CalibrationError
from edgekit.measure.fidelity import compare
from edgekit.tasks import get_task


def run_texts(session, tokenizer, texts: Sequence[str], seq_len: int, batch_size: int = 16) -> np.ndarray:
    """The session's first output for every text, in order (batched, padded per batch)."""
    limit = min(seq_len, session.max_seq_len or seq_len)
    name = session.outputs[0].name
    chunks = [session.run(f)[name] for f in text_batches(tokenizer, list(texts), session.inputs, limit, batch_size)]
    return concat_rows(chunks)[: len(texts)]


def label_ids(labels: Sequence[str], label2id: dict[str, int], num_labels: int) -> np.ndarray:
    """Labels given as names (config label2id) or as class numbers."""
    out = []
    for lab in labels:
        if lab in label2id:
            out.append(label2id[lab])
        elif lab.lstrip("-").isdigit() and 0 <= int(lab) < num_labels:
            out.append(int(lab))
        else:
            raise CalibrationError(
                f"label {lab!r} is neither a label name ({', '.join(label2id)}) nor a class number below {num_labels}"
            )
    return np.array(out)


def accuracy(pred: np.ndarray, gold: np.ndarray) -> float:
    return float((pred == gold).mean()) * 100.0


def macro_f1(pred: np.ndarray, gold: np.ndarray, num_labels: int) -> float:
    scores = []
    for c in range(num_labels):
        tp = float(((pred == c) & (gold == c)).sum())
        fp = float(((pred == c) & (gold != c)).sum())
        fn = float(((pred != c) & (gold == c)).sum())
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) * 100.0 if scores else 0.0


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties)."""

    def ranks(x):
        order = np.argsort(x, kind="mergesort")
        r = np.empty(len(x))
        r[order] = np.arange(len(x))
        for v in np.unique(x):  # average ranks of ties
            idx = x == v
            r[idx] = r[idx].mean()
        return r

    ra, rb = ranks(np.asarray(a, float)), ranks(np.asarray(b, float))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / np.sqrt((ra**2).sum() * (rb**2).sum()))


@dataclass(frozen=True)
class EvalSet:
    """What a candidate is measured on, and the fp32 reference's outputs on it."""

    task: str
    texts: list
    reference: np.ndarray
    gold: Any = None  # the task's gold answers (class ids for classifiers), when labelled
    max_len: int = 256  # tokens per text, the same for the reference and every candidate
    tokenizer: Any = None

    @property
    def samples(self) -> int:
        return len(self.texts)

    def outputs(self, session) -> np.ndarray:
        """``session``'s first output on every text (the reference's counterpart), at :attr:`max_len` tokens."""
        return run_texts(session, self.tokenizer, self.texts, self.max_len)

    def _scores(self, outputs: np.ndarray) -> dict:
        return get_task(self.task).evaluate(outputs, self.gold, self.texts, self.tokenizer, self.max_len)

    @cached_property
    def reference_accuracy(self) -> float | None:
        """The reference's task metric (:attr:`Task.eval_key`), when labelled."""
        return None if self.gold is None else self._scores(self.reference)[get_task(self.task).eval_key]

    def metrics(self, outputs: np.ndarray) -> dict:
        result = compare(self.task, self.reference, outputs)
        result["fidelity_key"] = get_task(self.task).budget_key  # what a min_fidelity budget holds
        if self.gold is not None:
            scores = self._scores(outputs)
            result.update(scores)
            result["reference_accuracy"] = self.reference_accuracy
            result["accuracy_drop"] = result["reference_accuracy"] - scores[get_task(self.task).eval_key]
        return result
