"""Fine-tune a checkpoint plus a classification head on a labelled set: the teacher to compress.

``edgekit finetune minilm --data spam`` makes all-MiniLM-L6-v2 a spam
classifier and caches it (a normal Hugging Face checkpoint directory, plus
``edgekit_training.json`` with its settings and accuracies); a second call
with the same settings and data reuses it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path

from edgekit.datasets import LabelledData
from edgekit.training.loop import TrainSettings, Trainer, seed_everything

RECORD = "edgekit_training.json"
DEFAULT_SETTINGS = TrainSettings(epochs=2.0, batch_size=32, lr=5e-5, max_len=128)


def data_digest(data: LabelledData) -> str:
    h = hashlib.sha256()
    for split in (data.train, data.validation, data.test):
        for t, lab in zip(split.texts, split.labels):
            h.update(t.encode())
            h.update(lab.encode())
    return h.hexdigest()


def cached(out: Path, key: dict) -> dict | None:
    rec = out / RECORD
    if rec.is_file() and (out / "config.json").is_file():
        record = json.loads(rec.read_text())
        if record.get("key") == key:
            return record
    return None


def finetune_classifier(base: str | Path, data: LabelledData, out: Path, *, settings: TrainSettings = DEFAULT_SETTINGS,
                        progress: bool = True, resume: bool = False) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification

    from edgekit.checkpoint import load_checkpoint, offline
    from edgekit.training.data import accuracy, encode

    offline()
    ckpt = load_checkpoint(base, task="feature-extraction")
    labels = data.label_names
    key = {"base": str(ckpt.path), "data": data_digest(data), "settings": asdict(settings), "labels": labels}
    hit = cached(out, key)
    if hit is not None:
        return {**hit, "cached": True}
    seed_everything(settings.seed)
    label2id = {name: i for i, name in enumerate(labels)}
    model = AutoModelForSequenceClassification.from_pretrained(
        str(ckpt.path), num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id,
        attn_implementation="eager")
    tok = ckpt.tokenizer
    train = encode(tok, data.train.texts, settings.max_len, [label2id[x] for x in data.train.labels])
    val = encode(tok, data.validation.texts, settings.max_len, [label2id[x] for x in data.validation.labels])
    test = encode(tok, data.test.texts, settings.max_len, [label2id[x] for x in data.test.labels])
    loss_fn = torch.nn.CrossEntropyLoss()

    def step_loss(m, idx):
        b = train.batch(idx)
        y = b.pop("labels")
        return loss_fn(m(**b).logits, y)

    work = out.with_name(out.name + ".training")
    trainer = Trainer(model, step_loss, len(train), settings, work, progress=progress, desc="fine-tune")
    history = trainer.fit(lambda: {"val_accuracy": accuracy(model, val)}, resume=resume)
    record = {"key": key, "history": history, "val_accuracy": history[-1]["val_accuracy"] if history else
              accuracy(model, val),
              "test_accuracy": accuracy(model, test), "train_examples": len(train), "world_size": trainer.world}
    if trainer.rank == 0:
        staged = out.with_name(out.name + ".partial")
        shutil.rmtree(staged, ignore_errors=True)
        model.config.architectures = ["BertForSequenceClassification"]
        model.save_pretrained(str(staged), safe_serialization=True)
        tok.save_pretrained(str(staged))
        (staged / RECORD).write_text(json.dumps(record, indent=2) + "\n")
        shutil.rmtree(out, ignore_errors=True)
        staged.rename(out)
        shutil.rmtree(work, ignore_errors=True)
    return {**record, "cached": False}
