"""Knowledge distillation from a teacher into a smaller student.

Students start from the teacher's own layers (DistilBERT-style: a subset of
its layers, evenly spaced unless listed) or from a pruned copy of it.
Losses, weighted in the recipe:

* ``kd``: KL divergence between teacher and student logits at temperature T
  (scaled by T^2), classifiers;
* ``hard``: cross-entropy with the labels, classifiers;
* ``hidden``: MSE between mapped hidden states (student layer i <- the
  teacher layer it was copied from);
* ``embedding``: 1 - cosine between mean-pooled sentence embeddings, encoders
  (trained on unlabelled text).

Teacher logits and embeddings are computed once, before training. The
teacher sits on the training device for the run (its hidden states are
needed at every step) and goes back to where it was afterwards.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.tasks import get_task
from edgekit.training.loop import Trainer, TrainSettings, seed_everything, world


@dataclass(frozen=True)
class DistillLosses:
    temperature: float = 2.0
    kd: float = 1.0
    hard: float = 0.5
    hidden: float = 0.0
    embedding: float = 1.0


def evenly_spaced(n_teacher: int, n_student: int) -> list[int]:
    """Which teacher layers a student of ``n_student`` layers copies (the top one always kept)."""
    if n_student >= n_teacher:
        return list(range(n_teacher))
    step = n_teacher / n_student
    return sorted({min(n_teacher - 1, int(round((i + 1) * step)) - 1) for i in range(n_student)})


def student_from_teacher(teacher, layers: list[int]):
    from edgekit.training.prune import keep_layers

    student = copy.deepcopy(teacher)
    keep_layers(student, layers)
    return student


def teacher_targets(teacher, data, task: str, batch_size: int = 64, progress: str | None = None) -> np.ndarray:
    """Teacher logits (classifiers) or mean-pooled embeddings (encoders) for every row of ``data``; the
    model is left in eval mode (the hidden-state loss runs the teacher at every step)."""
    from edgekit.training.data import outputs

    teacher.eval()
    head = get_task(task).head
    return outputs(teacher, data, lambda res, b: head(res, b.get("attention_mask")), batch_size, progress)


def distill(
    teacher,
    student,
    data,
    task: str,
    settings: TrainSettings,
    losses: DistillLosses,
    run_dir: Path | None,
    *,
    layer_map: list[int] | None = None,
    evaluate=None,
    progress: bool = True,
    resume: bool = False,
    desc: str = "distill",
    teacher_data=None,
    device=None,
    key: dict | None = None,
) -> list[dict]:
    """Train ``student`` in place on ``data`` (an Encoded set, labelled for classifiers).

    ``teacher_data`` holds the same rows in the teacher's token ids when the
    student has its own (pruned) vocabulary. ``device``: where to train
    (default: :func:`edgekit.training.device.train_device`); ``key``: what identifies the run (see
    :class:`edgekit.training.loop.Trainer`)."""
    import torch
    import torch.nn.functional as F

    from edgekit.training.device import device_of, to_device, train_device

    device = torch.device(device) if device is not None else train_device()
    home = device_of(teacher)
    teacher.to(device)  # the hidden-state loss runs it at every step
    try:
        seed_everything(settings.seed)
        shown = f"{desc}: teacher outputs" if progress and world()[0] == 0 else None
        targets = torch.from_numpy(
            teacher_targets(teacher, teacher_data if teacher_data is not None else data, task, progress=shown)
        )
        targets = targets.to(device)
        use_hidden = losses.hidden > 0 and layer_map is not None and (teacher_data is None or teacher_data is data)
        T = losses.temperature

        def step_loss(model, idx):
            b = to_device(data.batch(idx), device)
            labels = b.pop("labels", None)
            out = model(**b, output_hidden_states=use_hidden)
            tgt = targets[torch.as_tensor(np.asarray(idx), device=device)]
            loss = torch.zeros((), device=device)
            if get_task(task).labelled:
                s = out.logits
                if losses.kd:
                    loss = loss + losses.kd * T * T * F.kl_div(
                        F.log_softmax(s / T, -1), F.softmax(tgt / T, -1), reduction="batchmean"
                    )
                if losses.hard and labels is not None:
                    loss = loss + losses.hard * F.cross_entropy(s, labels)
            else:
                emb = get_task(task).head(out, b["attention_mask"])
                loss = loss + losses.embedding * (1 - F.cosine_similarity(emb, tgt, dim=-1)).mean()
            if use_hidden:
                with torch.no_grad():
                    t_hidden = teacher(**b, output_hidden_states=True).hidden_states
                mask = (
                    b["attention_mask"].unsqueeze(-1).float()
                    if "attention_mask" in b
                    else torch.ones(*out.hidden_states[0].shape[:2], 1, device=device)
                )
                for i, j in enumerate(layer_map):
                    diff = (out.hidden_states[i + 1] - t_hidden[j + 1]) * mask
                    loss = loss + losses.hidden * diff.pow(2).sum() / (mask.sum() * diff.shape[-1])
            return loss

        trainer = Trainer(
            student, step_loss, len(data), settings, run_dir, progress=progress, desc=desc, device=device, key=key
        )
        return trainer.fit(evaluate, resume=resume)
    finally:
        teacher.to(home)
