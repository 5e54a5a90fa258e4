"""Token tensors for training and evaluation: tokenized once, each batch cut to its longest row."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from edgekit.errors import InternalError

if TYPE_CHECKING:
    import torch


@dataclass
class Encoded:
    ids: torch.Tensor  # int64 [N, L]
    mask: torch.Tensor
    types: torch.Tensor
    lengths: np.ndarray
    labels: torch.Tensor | None = None  # int64 [N]

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, idx) -> dict:
        import torch

        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        width = int(self.lengths[idx.numpy()].max())
        out = {
            "input_ids": self.ids[idx, :width],
            "attention_mask": self.mask[idx, :width],
            "token_type_ids": self.types[idx, :width],
        }
        if self.labels is not None:
            out["labels"] = self.labels[idx]
        return out


@dataclass
class EncodedImages:
    """Images as one ``pixel_values`` tensor: the image counterpart of :class:`Encoded`."""

    pixels: torch.Tensor  # float32 [N, C, H, W]
    labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.pixels)

    def batch(self, idx) -> dict:
        import torch

        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        out = {"pixel_values": self.pixels[idx]}
        if self.labels is not None:
            out["labels"] = self.labels[idx]
        return out


EncodedData: TypeAlias = "Encoded | EncodedImages"  # a training set: token rows, or images


def encode(tokenizer, texts: Sequence[str], max_len: int, labels: Sequence[int] | None = None) -> EncodedData:
    """Token tensors for ``texts``; for an image processor, pixel tensors for the images."""
    import torch

    from edgekit.data.images import is_image_processor

    if is_image_processor(tokenizer):
        return EncodedImages(
            torch.from_numpy(tokenizer(list(texts))["pixel_values"]),
            None if labels is None else torch.as_tensor(list(labels), dtype=torch.long),
        )

    enc = tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_len, return_tensors="np")
    mask = enc["attention_mask"]
    types = enc.get("token_type_ids", np.zeros_like(mask))
    return Encoded(
        torch.from_numpy(enc["input_ids"].astype(np.int64)),
        torch.from_numpy(mask.astype(np.int64)),
        torch.from_numpy(types.astype(np.int64)),
        mask.sum(1),
        None if labels is None else torch.as_tensor(list(labels), dtype=torch.long),
    )


_EVAL_BAR: ContextVar[str | None] = ContextVar("edgekit_eval_bar", default=None)


@contextmanager
def evaluation_progress(desc: str | None) -> Iterator[None]:
    """While inside, :func:`outputs` (every evaluation pass: accuracy, logits, teacher targets) shows a
    progress bar named ``desc`` with its ETA on stderr; None: no bar (``--quiet``)."""
    token = _EVAL_BAR.set(desc)
    try:
        yield
    finally:
        _EVAL_BAR.reset(token)


def outputs(model, data: EncodedData, pick, batch_size: int = 64, progress: str | None = None) -> np.ndarray:
    """``pick(model_output, batch)`` for every row, in order, in eval mode without gradients, on the model's
    device; the model's train/eval mode is restored afterwards. ``progress`` names a bar over the batches
    (default: the one :func:`evaluation_progress` asks for, if any)."""
    import torch
    from tqdm import tqdm

    from edgekit.training.device import device_of, to_device

    desc = progress or _EVAL_BAR.get()
    was = model.training
    model.eval()
    device = device_of(model)
    out = []
    starts = range(0, len(data), batch_size)
    with torch.inference_mode():
        for i in tqdm(starts, desc=desc, unit="batch", leave=False, disable=desc is None or len(starts) < 2):
            b = to_device(data.batch(range(i, min(i + batch_size, len(data)))), device)
            b.pop("labels", None)
            out.append(pick(model(**b), b).float().cpu().numpy())
    model.train(was)
    return np.concatenate(out)


def logits(model, data: EncodedData, batch_size: int = 64, progress: str | None = None) -> np.ndarray:
    """The model's logits for every row, in order, in eval mode without gradients (on the model's device)."""
    return outputs(model, data, lambda res, _batch: res.logits, batch_size, progress)


def accuracy(model, data: EncodedData, progress: str | None = None) -> float:
    from edgekit.measure.evaluation import accuracy as percent_correct

    if data.labels is None:
        raise InternalError("accuracy needs a labelled set")
    return percent_correct(logits(model, data, progress=progress).argmax(-1), data.labels.numpy())
