"""The task registry: everything that varies by task lives in one module per task.

A task module defines a :class:`Task` subclass and decorates it with :func:`register`; this package
imports every module beside it, so adding a task is one new module (plus its tests and docs). Core
code asks the registry (:func:`get_task`, :func:`infer_task`) and reads the task's attributes and
methods; it never compares task names.

Imports no torch: the device side reads the registry too. Build-side methods import torch lazily.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import InputError


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` to the same row of ``b`` (rows flattened)."""
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(na * nb, 1e-12)


def mean_pool(hidden, attention_mask):
    """Mean of the token vectors the mask keeps (sentence-transformers' pooling)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class Task:
    """What one task computes, how it is compared and evaluated, and how a bundle serves it."""

    name: ClassVar[str]
    description: ClassVar[str]
    output_name: ClassVar[str] = "logits"  # the exported model's one output
    modality: ClassVar[str] = "text"  # "text": token inputs from a tokenizer; "image": pixel_values
    labelled: ClassVar[bool] = False  # outputs are class scores: label agreement, accuracy, KD on logits
    architectures: ClassVar[tuple[str, ...]] = ()  # config.json architecture suffixes the task is inferred from
    auto_class: ClassVar[str] = "AutoModel"  # the transformers Auto class that loads a checkpoint for it
    trainable: ClassVar[bool] = True  # distillation, pruning and QAT support it (per-input outputs)
    # generated step by step (a KV cache): compressed by edgekit.generation.pipeline, not the one-pass stages
    generative: ClassVar[bool] = False
    # "module:function" that compresses a generative task's checkpoint (its own pipeline)
    compressor: ClassVar[str] = ""
    default_recipe: ClassVar[str] = "fastest"  # what `compress CHECKPOINT` runs when no recipe is named
    api_method: ClassVar[str]  # the runtime API call: BundleModel.<api_method>(inputs)
    endpoint: ClassVar[str]  # the serve route that answers it (POST /predict answers every task)

    @property
    def is_image(self) -> bool:
        return self.modality == "image"

    # -- items: what one prediction takes (a text, an image, a question and its context, ...) -------
    request_field: ClassVar[str] = "texts"  # the JSON field serve reads the items from

    def check_items(self, items) -> list:
        """``items`` as a list this task predicts on; bad input raises InputError (exit 2)."""
        from edgekit.data.items import check_images, check_texts

        return check_images(items) if self.is_image else check_texts(items)

    def item_from_json(self, obj: Any) -> Any:
        """One item from its JSON form (a request, a bundle's reference inputs, a line of a file)."""
        return obj

    def item_as_json(self, item: Any) -> Any:
        """One item in JSON form (the inverse of :meth:`item_from_json`)."""
        return item

    # -- data: the shipped default sets and how a file of items is read --------------------------
    def builtin_data(self) -> tuple[Path, Path] | None:
        """Shipped (calibration, held-out) files for this task; None: the shipped plain texts."""
        return None

    def load_items(self, path: Path) -> tuple[list, list | None]:
        """The items of a file and their gold labels (None when the file has none)."""
        from edgekit.data.calibration import load_labels, load_texts

        return load_texts(path), load_labels(path)

    # -- evaluation on a labelled set ------------------------------------------------------------
    @property
    def evaluated(self) -> bool:
        """Whether the task is scored on labelled data (gold answers), not only against fp32."""
        return self.labelled

    eval_key: ClassVar[str] = "accuracy"  # the metric (points, 0-100) whose drop budgets and gates hold
    eval_label: ClassVar[str] = "accuracy"

    def gold(self, labels: list, config: dict) -> Any:
        """The gold answers of ``labels`` (as a labelled file gives them) in the form :meth:`evaluate` takes;
        None when this task has no evaluation on labelled data."""
        if not self.labelled:
            return None
        from edgekit.measure.evaluation import label_ids

        label2id = config.get("label2id") or {v: int(k) for k, v in (config.get("id2label") or {}).items()}
        return label_ids(labels, label2id, int(config.get("num_labels") or len(label2id)))

    def evaluate(self, outputs: np.ndarray, gold: Any, items: Sequence, tokenizer, seq_len: int) -> dict:
        """The task metrics of ``outputs`` (the model's outputs on ``items``) against ``gold``;
        :attr:`eval_key` among them."""
        from edgekit.measure.evaluation import accuracy, macro_f1

        gold = gold[: len(outputs)]
        pred = outputs.argmax(-1)
        return {
            "accuracy": round(accuracy(pred, gold), 3),
            "macro_f1": round(macro_f1(pred, gold, outputs.shape[-1]), 3),
            "eval_samples": int(len(gold)),
        }

    # -- build side (torch tensors) ------------------------------------------------------------
    def head(self, model_output, attention_mask):
        """The task output from a transformers model's output (the exported graph's one output)."""
        return model_output.logits

    # outputs an ONNX export adds after the task's own, for the ecosystem's loaders (Optimum's ORTModel
    # classes read ``last_hidden_state``); each comes from the transformers model output's attribute
    ecosystem_outputs: ClassVar[tuple[str, ...]] = ()

    def wrap(self, model, ecosystem: bool = False):
        """``model`` as the exported module: token tensors (or pixel_values) in, the task output out; with
        ``ecosystem``, the :attr:`ecosystem_outputs` after it."""
        import torch

        task = self
        extra = self.ecosystem_outputs if ecosystem else ()

        def outputs(model_output, attention_mask):
            head = task.head(model_output, attention_mask)
            return (head, *(getattr(model_output, n) for n in extra)) if extra else head

        if self.is_image:

            class ImageTaskModule(torch.nn.Module):
                def __init__(self, inner) -> None:
                    super().__init__()
                    self.model = inner

                def forward(self, pixel_values):
                    return outputs(self.model(pixel_values=pixel_values), None)

            return ImageTaskModule(model).eval()

        class TaskModule(torch.nn.Module):
            def __init__(self, inner, takes_token_types: bool) -> None:
                super().__init__()
                self.model = inner
                self.takes_token_types = takes_token_types

            def forward(self, input_ids, attention_mask, token_type_ids=None):
                kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
                if self.takes_token_types and token_type_ids is not None:
                    kwargs["token_type_ids"] = token_type_ids
                return outputs(self.model(**kwargs), attention_mask)

        return TaskModule(model, getattr(model.config, "type_vocab_size", 0) > 0).eval()

    def postprocessing(self, config: dict, files: Callable[[str], Any]) -> dict:
        """bundle.json's post-processing for a checkpoint's ``config``; ``files(name)`` reads a JSON file
        of the checkpoint (None when absent)."""
        id2label = config.get("id2label") or {}
        return {"output": "logits", "activation": "softmax", "labels": [id2label[k] for k in sorted(id2label, key=int)]}

    # -- measurement ---------------------------------------------------------------------------
    headline_key: ClassVar[str] = "cosine_mean"
    headline_label: ClassVar[str] = "mean cosine to fp32"
    budget_key: ClassVar[str] = "cosine_mean"  # what a search budget's min_fidelity holds (a share, 0..1)

    def fidelity(self, reference: np.ndarray, output: np.ndarray) -> dict:
        """How close ``output`` is to ``reference``, as plain floats."""
        if reference.shape != output.shape:
            return {"error": f"shape {output.shape} differs from reference {reference.shape}"}
        cos = cosine_rows(reference, output)
        result = {
            "samples": int(len(reference)),
            "cosine_mean": float(cos.mean()),
            "cosine_min": float(cos.min()),
            "max_abs_diff": float(np.abs(reference - output).max()),
        }
        if self.labelled:
            result["label_agreement"] = float((reference.argmax(-1) == output.argmax(-1)).mean())
        return result

    def headline(self, fidelity: dict) -> float | None:
        """The single number a user compares."""
        return fidelity.get(self.headline_key)

    # -- device side -----------------------------------------------------------------------------
    def predict(self, model, items) -> Any:
        """The runtime API call (:attr:`api_method`) on a loaded bundle ``model`` (a BundleModel): tasks whose
        call BundleModel does not define itself override this; ``model.forward(items)`` runs the graph."""
        return getattr(model, self.api_method)(items)

    def check_postprocessing(self, post: dict, need: Callable[[bool, str], None]) -> None:
        """Refuse a bundle whose post-processing this task cannot apply (``need(ok, what)``)."""
        labels = post.get("labels")
        need(
            isinstance(labels, list) and bool(labels) and all(isinstance(x, str) for x in labels),
            "postprocessing.labels",
        )

    def as_json(self, result) -> list[dict]:
        """One JSON object per input for ``edgekit run`` and ``serve`` (predictions)."""
        return [p.as_dict() for p in result]

    response_key: ClassVar[str] = "predictions"  # what serve calls the list in its answer

    def recorded(self, result, post: dict) -> np.ndarray:
        """What reference.npz records for ``result``: one float row per input."""
        labels = post["labels"]
        return np.array([[p.scores[label] for label in labels] for p in result], dtype=np.float32)


_REGISTRY: dict[str, Task] = {}


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: one instance of ``cls`` answers for its ``name``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"task {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls()
    return cls


def _load_modules() -> None:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


def get_task(name: str) -> Task:
    """The registered task ``name``; an unknown name is bad input (exit 2)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown task {name!r}; known: {', '.join(_REGISTRY)}") from None


def all_tasks() -> Sequence[Task]:
    return list(_REGISTRY.values())


def infer_task(config: dict) -> str:
    """The task a checkpoint's config.json asks for: the task whose architecture suffix its
    ``architectures`` name, else the default (the one declaring no architectures: embeddings)."""
    archs = config.get("architectures") or []
    for task in _REGISTRY.values():
        if any(a.endswith(suffix) for a in archs for suffix in task.architectures):
            return task.name
    return next(t.name for t in _REGISTRY.values() if not t.architectures)


_load_modules()
TASKS = tuple(_REGISTRY)
