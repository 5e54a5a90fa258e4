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

from edgekit.data.feeds import tokenize
from edgekit.data.text_encoder import TextEncoder
from edgekit.device.bundle import Bundle, Variant, open_bundle
from edgekit.errors import ArtifactError, InputError
from edgekit.plugins import load_session
from edgekit.tasks import Task, get_task

if TYPE_CHECKING:
    from edgekit.data.images import ImageProcessor

MAX_TEXT_CHARS = 100_000
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


def check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, Sequence) or not all(isinstance(t, str) for t in texts):
        raise InputError("texts must be a list of strings")
    if not texts:
        raise InputError("texts is empty")
    long = [i for i, t in enumerate(texts) if len(t) > MAX_TEXT_CHARS]
    if long:
        raise InputError(f"text {long[0]} is longer than {MAX_TEXT_CHARS} characters")
    return list(texts)


def check_images(images) -> list:
    """A list of images (arrays HxW or HxWxC, file paths, or image files' bytes). One path, one file's bytes,
    one HxW array, one HxWxC array (C of 1, 3 or 4), or an N-image array (NxHxW, NxHxWxC) are accepted too."""
    if isinstance(images, (str, Path, bytes, bytearray)):
        images = [images]
    elif isinstance(images, np.ndarray):
        single = images.ndim == 2 or (images.ndim == 3 and images.shape[2] in (1, 3, 4))
        images = [images] if single else list(images)
    else:
        images = list(images)
    if not images:
        raise InputError("images is empty")
    out = []
    for i, im in enumerate(images):
        if isinstance(im, (str, Path)) and not Path(im).is_file():
            raise InputError(f"image {i}: no such file {im}")
        if isinstance(im, (str, Path, bytes, bytearray)):
            im = _decode(i, im)
        if not isinstance(im, np.ndarray) or im.ndim not in (2, 3) or im.size == 0:
            raise InputError(f"image {i}: expected an HxW or HxWxC array, a file path or a file's bytes")
        out.append(im)
    return out


def _decode(i: int, image) -> np.ndarray:
    from edgekit.data.images import load_image

    try:
        return load_image(image)
    except ImportError:
        raise
    except Exception as err:  # noqa: BLE001 - Pillow raises several kinds for a file it cannot read
        raise InputError(f"image {i}: not an image file Pillow can read ({type(err).__name__})") from None


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

    def _forward(self, texts: list[str]) -> np.ndarray:
        chunks = []
        for i in range(0, len(texts), self.batch_size):
            feeds = tokenize(self.encoder, texts[i : i + self.batch_size], self.session.inputs, self.max_seq_len)
            with self._lock:
                chunks.append(np.asarray(self.session.run(feeds)[self._output], dtype=np.float32))
        return np.concatenate(chunks)[: len(texts)]

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

    def predict(self, texts) -> np.ndarray | list[Prediction]:
        """The task-level call for this bundle: embeddings or predictions (texts, or images)."""
        return getattr(self, self.task_def.api_method)(texts)

    def task_outputs(self, texts: Sequence[str] | Sequence[np.ndarray]) -> np.ndarray:
        """What reference.npz records: embeddings, or class probabilities."""
        return self.task_def.recorded(self.predict(texts), self._post)

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
