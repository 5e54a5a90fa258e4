"""The runtime API: load a bundle and call it at the task level.

    import edgekit
    model = edgekit.load("bundle/", runtime="onnxruntime", threads=2)
    vectors = model.embed(["a sentence", "another"])      # feature-extraction bundles
    labels = model.classify(["free money!!!"])           # text-classification bundles
    labels = model.classify_images([array_or_path])      # image-classification bundles
    raw = model.run({"input_ids": ..., "attention_mask": ...})

Needs numpy, ``tokenizers`` (Pillow to open image files) and the runtime library of the chosen variant
(onnxruntime or ai-edge-litert); never torch, transformers or TensorFlow.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.data.feeds import concat_rows, tokenize
from edgekit.data.items import MAX_TEXT_CHARS, check_images, check_texts  # noqa: F401 - re-exported: the runtime API
from edgekit.data.text_encoder import TextEncoder
from edgekit.device.bundle import Bundle, Variant, open_bundle
from edgekit.errors import ArtifactError, InputError
from edgekit.plugins import load_session
from edgekit.tasks import Task, all_tasks, get_task

if TYPE_CHECKING:
    from edgekit.data.images import ImageProcessor

REPRODUCE_COSINE = 0.999  # same numerics: the recorded outputs are reproduced
FIDELITY_MEAN_SLACK = 0.005  # other int8 kernels (another CPU): fidelity to fp32 may move this much
FIDELITY_MIN_SLACK = 0.01


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float
    scores: dict[str, float]

    def as_dict(self) -> dict:
        return {"label": self.label, "score": self.score, "scores": self.scores}


class BundleModel:
    """A bundle variant loaded on a runtime adapter. Calls are safe from several threads."""

    def __init__(self, bundle: Bundle, variant: Variant, session, runtime: str, threads: int) -> None:
        self.bundle, self.variant, self.session, self.runtime = bundle, variant, session, runtime
        self.threads = threads
        pre = bundle.meta["preprocessing"]
        self.encoder: ImageProcessor | TextEncoder
        if pre.get("kind") == "image":
            from edgekit.data.images import ImageProcessor

            self.max_seq_len = 0
            self.encoder = ImageProcessor.from_pretrained((bundle.path / pre["processor"]).parent)
        else:
            self.max_seq_len = min(pre["max_seq_len"], self.session.max_seq_len or pre["max_seq_len"])
            self.encoder = TextEncoder(bundle.path / pre["tokenizer"], self.max_seq_len)
        self.batch_size = int(pre.get("batch_size", 32))
        self._post = bundle.meta["postprocessing"]
        self._output = self._post["output"]
        self._lock = threading.Lock()  # LiteRT interpreters are not re-entrant

    @property
    def task(self) -> str:
        return self.bundle.task

    @property
    def task_def(self) -> Task:
        """The registry's description of this bundle's task (see :mod:`edgekit.tasks`)."""
        return get_task(self.task)

    def _require(self, method: str) -> None:
        """Refuse a call that is not this bundle's task's (bad input: say which call to use)."""
        if self.task_def.api_method != method:
            raise InputError(f"this bundle is a {self.task} model; use {self.task_def.api_method}()")

    def info(self) -> dict:
        return {
            "bundle": self.bundle.name,
            "task": self.task,
            "variant": self.variant.name,
            "format": self.variant.format,
            "precision": self.variant.precision,
            "runtime": self.runtime,
            "threads": self.threads,
            "max_seq_len": self.max_seq_len,
            **({"labels": self._post["labels"]} if "labels" in self._post else {}),
        }

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The model's raw outputs for feeds named and typed as ``session.inputs`` declare."""
        from edgekit.data.feeds import check_feeds

        feeds = check_feeds(feeds, self.session.inputs)
        with self._lock:
            return self.session.run(feeds)

    def forward(self, items: list) -> np.ndarray:
        """The task output for checked ``items`` (texts, text pairs or images), in batches, row after row."""
        chunks = []
        for i in range(0, len(items), self.batch_size):
            feeds = tokenize(self.encoder, items[i : i + self.batch_size], self.session.inputs, self.max_seq_len)
            with self._lock:
                chunks.append(np.asarray(self.session.run(feeds)[self._output], dtype=np.float32))
        return concat_rows(chunks)[: len(items)]

    _forward = forward

    def __getattr__(self, name: str):
        """The runtime API call of a task that answers it itself (:meth:`Task.predict`); another task's such
        call is refused as bad input, as BundleModel's own calls are."""
        bundle = self.__dict__.get("bundle")
        if bundle is not None:
            task = get_task(bundle.task)
            if name == task.api_method and type(task).predict is not Task.predict:
                return lambda items: task.predict(self, items)
            if any(t.api_method == name for t in all_tasks()):
                return lambda items: self._require(name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def embed(self, texts: str | Sequence[str]) -> np.ndarray:
        """One embedding row per text (L2-normalised when the model was trained so)."""
        self._require("embed")
        out = self._forward(check_texts(texts))
        if self._post.get("normalize"):
            out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def classify(self, texts: str | Sequence[str]) -> list[Prediction]:
        """The most likely label of each text, with its probability and every label's."""
        self._require("classify")
        return self._predictions(self._forward(check_texts(texts)))

    def classify_images(self, images) -> list[Prediction]:
        """The most likely label of each image (an HxW or HxWxC array, a file path or a file's bytes), with its
        probability and every label's."""
        self._require("classify_images")
        return self._predictions(self._forward(check_images(images)))

    def _predictions(self, logits: np.ndarray) -> list[Prediction]:
        logits = logits.astype(np.float64)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        labels = self._post["labels"]
        return [
            Prediction(
                labels[int(p.argmax())],
                round(float(p.max()), 6),
                {labels[j]: round(float(p[j]), 6) for j in range(len(labels))},
            )
            for p in probs
        ]

    def predict(self, items) -> Any:
        """The task-level call for this bundle (:attr:`Task.api_method`): embeddings, predictions, answers..."""
        return self.task_def.predict(self, items)

    def task_outputs(self, items: Sequence) -> np.ndarray:
        """What reference.npz records: embeddings, class probabilities, or what the task records."""
        return self.task_def.recorded(self.predict(items), self._post)

    def check(self) -> dict:
        """Run the reference texts and judge the outputs against those recorded in the bundle.

        Passes when this variant reproduces its recorded outputs (worst cosine
        >= 0.999), or, where another CPU's int8 kernels round differently, when
        its fidelity to the recorded fp32 reference is as good as it was at
        bundling (mean within 0.005, worst within 0.01). Anything else is wrong
        output.
        """
        from edgekit.device.bundle import FP32_KEY
        from edgekit.measure.fidelity import cosine_rows

        got = self.task_outputs(self.bundle.reference_texts)
        expected = self.bundle.reference_outputs(self.variant.name)
        if got.shape != expected.shape:
            raise ArtifactError(f"outputs have shape {got.shape}, the recorded ones {expected.shape}")
        cos = np.nan_to_num(cosine_rows(expected, got), nan=-1.0)
        result: dict[str, Any] = {
            "texts": len(got),
            "cosine_to_recorded_min": round(float(cos.min()), 6),
            "min_cosine": REPRODUCE_COSINE,
        }
        recorded = self.bundle.meta["reference"].get("fidelity", {}).get(self.variant.name)
        if recorded is not None and FP32_KEY in self.bundle.reference_keys():
            fid = np.nan_to_num(cosine_rows(self.bundle.reference_outputs(FP32_KEY), got), nan=-1.0)
            result["fidelity_to_fp32"] = {
                "cosine_mean": round(float(fid.mean()), 6),
                "cosine_min": round(float(fid.min()), 6),
            }
            result["fidelity_recorded"] = recorded
        if cos.min() >= REPRODUCE_COSINE:
            return {**result, "passed": True, "verdict": "reproduces the outputs recorded when bundled"}
        if recorded is None:
            return {**result, "passed": False, "verdict": "outputs differ from the recorded ones"}
        now = result["fidelity_to_fp32"]
        ok = (
            now["cosine_mean"] >= recorded["cosine_mean"] - FIDELITY_MEAN_SLACK
            and now["cosine_min"] >= recorded["cosine_min"] - FIDELITY_MIN_SLACK
        )
        verdict = (
            "different kernels from the bundling machine; fidelity to fp32 as recorded"
            if ok
            else "wrong outputs: fidelity to fp32 fell below what was recorded"
        )
        return {**result, "passed": ok, "verdict": verdict}

    def close(self) -> None:
        self.session.close()


def load(
    bundle: str | Path | Bundle,
    runtime: str | None = None,
    threads: int | None = None,
    variant: str | None = None,
    check: bool = True,
) -> BundleModel:
    """Load a bundle (directory or ``.tar.gz``) for inference.

    ``runtime`` names an adapter (``edgekit runtimes``); by default the first
    variant whose runtime is installed here is used. ``check`` verifies every
    file's sha256 first (a tampered or partial bundle raises ArtifactError).
    """
    from edgekit.plugins import get_runtime, runtime_adapters

    b = bundle if isinstance(bundle, Bundle) else open_bundle(bundle, check=check)
    if runtime is not None:
        adapter = get_runtime(runtime)
        chosen = b.variant(variant, formats=tuple(adapter.formats))
        if chosen.format not in adapter.formats:
            raise ArtifactError(f"runtime {runtime!r} does not run {chosen.format} models (variant {chosen.name})")
    else:
        usable = tuple(
            {f for cls in runtime_adapters().values() if cls.available() and not cls.explicit_only for f in cls.formats}
        )
        chosen = b.variant(variant, formats=usable)
        from edgekit.plugins import runtime_for_format

        adapter = runtime_for_format(chosen.format)
    threads = threads or min(4, os.cpu_count() or 1)
    return BundleModel(b, chosen, load_session(adapter, b.path / chosen.file, threads), adapter.name, threads)
