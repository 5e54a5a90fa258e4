"""Fine-tune a checkpoint plus a classification head on a labelled set: the teacher to compress.

``edgekit finetune minilm --data spam`` makes all-MiniLM-L6-v2 a spam
classifier; ``edgekit finetune vit-tiny --data digits`` trains a small Vision
Transformer (a configuration built in code, initialised at random) on
scikit-learn's digits. Either is cached (a normal Hugging Face checkpoint directory, plus
``edgekit_training.json`` with its settings and accuracies); a second call
with the same settings and data reuses it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path

from edgekit.data.datasets import LabelledData
from edgekit.training.loop import Trainer, TrainSettings, seed_everything

RECORD = "edgekit_training.json"
DEFAULT_SETTINGS = TrainSettings(epochs=2.0, batch_size=32, lr=5e-5, max_len=128)
# Vision Transformers trained from scratch here: a configuration in code, no weights to download.
VISION_BASES = {
    "vit-tiny": {
        "patch_size": 2,
        "hidden_size": 128,
        "num_hidden_layers": 6,
        "num_attention_heads": 4,
        "intermediate_size": 512,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    },
}
VISION_SETTINGS = TrainSettings(epochs=40.0, batch_size=64, lr=1e-3, max_len=8, weight_decay=0.05)


def _sample_bytes(sample) -> bytes:
    if isinstance(sample, str):
        return sample.encode()
    import numpy as np

    return np.ascontiguousarray(sample).tobytes()


def data_digest(data: LabelledData) -> str:
    h = hashlib.sha256()
    for split in (data.train, data.validation, data.test):
        for t, lab in zip(split.texts, split.labels):
            h.update(_sample_bytes(t))
            h.update(lab.encode())
    return h.hexdigest()


def cached(out: Path, key: dict) -> dict | None:
    rec = out / RECORD
    if rec.is_file() and (out / "config.json").is_file():
        record = json.loads(rec.read_text())
        if record.get("key") == key:
            return record
    return None


def finetune_classifier(
    base: str | Path,
    data: LabelledData,
    out: Path,
    *,
    settings: TrainSettings = DEFAULT_SETTINGS,
    progress: bool = True,
    resume: bool = False,
    overwrite: bool = False,
) -> dict:
    from transformers import AutoModelForSequenceClassification

    from edgekit.checkpoint import load_checkpoint, offline
    from edgekit.training.data import encode

    offline()
    if str(base) in VISION_BASES:
        return train_image_classifier(
            str(base), data, out, settings=settings, progress=progress, resume=resume, overwrite=overwrite
        )
    ckpt = load_checkpoint(base, task="feature-extraction")
    labels = data.label_names
    key = {"base": str(ckpt.path), "data": data_digest(data), "settings": asdict(settings), "labels": labels}
    hit = cached(out, key)
    if hit is not None:
        return {**hit, "cached": True}
    seed_everything(settings.seed)
    label2id = {name: i for i, name in enumerate(labels)}
    model = AutoModelForSequenceClassification.from_pretrained(
        str(ckpt.path),
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id=label2id,
        attn_implementation="eager",
    )
    tok = ckpt.tokenizer
    train = encode(tok, data.train.texts, settings.max_len, [label2id[x] for x in data.train.labels])
    val = encode(tok, data.validation.texts, settings.max_len, [label2id[x] for x in data.validation.labels])
    test = encode(tok, data.test.texts, settings.max_len, [label2id[x] for x in data.test.labels])
    return _train_and_publish(
        model,
        tok,
        train,
        val,
        test,
        key,
        settings,
        out,
        progress=progress,
        resume=resume,
        overwrite=overwrite,
        desc="fine-tune",
        architecture="BertForSequenceClassification",
    )


def _train_and_publish(
    model,
    preprocessor,
    train,
    val,
    test,
    key: dict,
    settings: TrainSettings,
    out: Path,
    *,
    progress: bool,
    resume: bool,
    overwrite: bool,
    desc: str,
    architecture: str,
) -> dict:
    """Train ``model`` with cross-entropy on ``train``, then write it with its tokenizer or image processor
    and the training record into ``out`` (staged beside it, moved into place whole; an earlier edgekit
    checkpoint there is replaced only with ``overwrite``, anything else is refused before training)."""
    from contextlib import nullcontext

    import torch

    from edgekit.output import OutputDir
    from edgekit.training.data import accuracy
    from edgekit.training.device import device_of, to_device
    from edgekit.training.loop import world

    def step_loss(m, idx):
        b = to_device(train.batch(idx), device_of(m))
        y = b.pop("labels")
        return torch.nn.functional.cross_entropy(m(**b).logits, y)

    work = out / ".train-finetune"  # the resumable state lives in the output: it survives a failed run
    with OutputDir(out, "finetune", overwrite=overwrite) if world()[0] == 0 else nullcontext() as target:
        if target is not None:
            target.hold()
        trainer = Trainer(model, step_loss, len(train), settings, work, progress=progress, desc=desc, key=key)
        history = trainer.fit(lambda: {"val_accuracy": accuracy(model, val)}, resume=resume)
        shown = trainer.progress  # rank 0 only, and not with --quiet
        record = {
            "key": key,
            "history": history,
            "val_accuracy": history[-1]["val_accuracy"]
            if history
            else accuracy(model, val, progress="validation" if shown else None),
            "test_accuracy": accuracy(model, test, progress="test" if shown else None),
            "train_examples": len(train),
            "world_size": trainer.world,
            "device": str(trainer.device),
            "backend": trainer.backend,
        }
        if target is not None:
            model.config.architectures = [architecture]
            model.save_pretrained(str(target.tree), safe_serialization=True)
            preprocessor.save_pretrained(target.tree)
            (target.tree / RECORD).write_text(json.dumps(record, indent=2) + "\n")
            target.commit()
            shutil.rmtree(work, ignore_errors=True)  # finished: nothing to resume
    return {**record, "cached": False}


def _image_size(data: LabelledData) -> tuple[int, int]:
    """(side, channels) of the first training image (all are resized to it)."""
    from edgekit.data.images import load_image

    arr = load_image(data.train.texts[0])
    return int(arr.shape[0]), 1 if arr.ndim == 2 else int(arr.shape[2])


def train_image_classifier(
    base: str,
    data: LabelledData,
    out: Path,
    *,
    settings: TrainSettings = VISION_SETTINGS,
    progress: bool = True,
    resume: bool = False,
    arch: dict | None = None,
    overwrite: bool = False,
) -> dict:
    """A ViT from the built-in configuration ``base`` (or ``arch``), trained from scratch on ``data``'s images."""
    from transformers import ViTConfig, ViTForImageClassification

    from edgekit.checkpoint import offline
    from edgekit.data.images import ImageProcessor
    from edgekit.training.data import encode

    offline()
    labels = data.label_names
    side, channels = _image_size(data)
    arch = {**(arch or VISION_BASES[base]), "image_size": side, "num_channels": channels}
    key = {"base": base, "arch": arch, "data": data_digest(data), "settings": asdict(settings), "labels": labels}
    hit = cached(out, key)
    if hit is not None:
        return {**hit, "cached": True}
    seed_everything(settings.seed)
    label2id = {name: i for i, name in enumerate(labels)}
    # transformers' configs take num_labels through **kwargs, which their dataclass_transform typing hides
    config = ViTConfig(
        **arch,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),  # type: ignore[call-arg]
        label2id=label2id,
    )
    model = ViTForImageClassification(config)
    proc = ImageProcessor(
        image_size=side, num_channels=channels, image_mean=[0.5] * channels, image_std=[0.5] * channels
    )
    train = encode(proc, data.train.texts, 0, [label2id[x] for x in data.train.labels])
    val = encode(proc, data.validation.texts, 0, [label2id[x] for x in data.validation.labels])
    test = encode(proc, data.test.texts, 0, [label2id[x] for x in data.test.labels])

    return _train_and_publish(
        model,
        proc,
        train,
        val,
        test,
        key,
        settings,
        out,
        progress=progress,
        resume=resume,
        overwrite=overwrite,
        desc="train",
        architecture="ViTForImageClassification",
    )
