"""Training stages: distill (a smaller student) and prune (structured, then recovery distillation).

Both read a PyTorch checkpoint artifact and write one (``hf-checkpoint``: a
normal Hugging Face directory plus edgekit's manifest), which the export
stages then take like any checkpoint. The teacher is always the checkpoint
the recipe started from. Interrupted training resumes from the run directory
beside the output (``<output>/.train-<name>/``) when the same recipe is run
again with ``--resume``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgekit.errors import RecipeError
from edgekit.recipe.config import DistillConfig, PruneConfig, QATConfig, TrainConfig
from edgekit.stages import StageResult, register
from edgekit.tasks import get_task

if TYPE_CHECKING:
    from edgekit.training.data import EncodedData

MODEL_FILE = "model.safetensors"


@dataclass
class _TaskData:
    train: EncodedData  # encoded with the student's tokenizer
    teacher_train: EncodedData  # the same rows, encoded with the teacher's
    val: EncodedData
    evaluate: Callable[[], dict[str, float]]


def _settings(cfg: TrainConfig, n_examples: int):
    """The loop's settings; ``min_steps`` turns into more epochs on a small set."""
    from edgekit.training.loop import TrainSettings

    epochs = cfg.epochs
    if cfg.min_steps:
        steps_per_epoch = -(-n_examples // cfg.batch_size)
        epochs = max(epochs, cfg.min_steps / steps_per_epoch)
    return TrainSettings(
        epochs=epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        max_len=cfg.max_len,
        seed=cfg.seed,
        save_every=cfg.save_every,
    )


def _same_vocab(a, b) -> bool:
    from edgekit.data.images import is_image_processor

    if is_image_processor(a):  # image processors: the same pixels for teacher and student
        return True
    return a is b or a.get_vocab() == b.get_vocab()


def _task_data(ctx, data_spec: str, max_len: int, student_holder: list, tokenizer=None) -> _TaskData:
    """Encoded train/validation sets (student and teacher ids) and the validation metric for the task."""
    from edgekit.training.data import accuracy, encode

    teacher = ctx.teacher
    tok = tokenizer or ctx.checkpoint.tokenizer
    same = _same_vocab(tok, teacher.tokenizer)
    if teacher.task_def.labelled:
        from edgekit.data.datasets import load_dataset

        data = load_dataset(data_spec)
        label2id = teacher.label2id
        unknown = sorted(set(data.train.labels) - set(label2id))
        if unknown:
            raise RecipeError(f"dataset {data_spec}: labels {unknown} are not the teacher's ({sorted(label2id)})")
        y_train = [label2id[x] for x in data.train.labels]
        train = encode(tok, data.train.texts, max_len, y_train)
        teacher_train = train if same else encode(teacher.tokenizer, data.train.texts, max_len, y_train)
        val = encode(tok, data.validation.texts, max_len, [label2id[x] for x in data.validation.labels])
        return _TaskData(train, teacher_train, val, lambda: {"val_accuracy": accuracy(student_holder[0], val)})
    texts = ctx.data.calibration
    train = encode(tok, texts, max_len)
    teacher_train = train if same else encode(teacher.tokenizer, texts, max_len)
    val = encode(tok, ctx.data.heldout[:200], max_len)
    teacher_val = val if same else encode(teacher.tokenizer, ctx.data.heldout[:200], max_len)

    def cosine():
        from edgekit.training.distill import teacher_targets

        a = teacher_targets(teacher.model, teacher_val, teacher.task)
        b = teacher_targets(student_holder[0], val, teacher.task)
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        return {"val_cosine": float(cos.mean())}

    return _TaskData(train, teacher_train, val, cosine)


def _task_texts(data_spec: str, ctx) -> list[str]:
    if ctx.teacher.task_def.labelled:
        from edgekit.data.datasets import load_dataset

        d = load_dataset(data_spec)
        return d.train.texts + d.validation.texts
    return list(ctx.data.calibration)


def _losses(cfg):
    from edgekit.training.distill import DistillLosses

    return DistillLosses(**cfg.model_dump())


def _save(model, ctx, out_dir: Path, record: dict, tokenizer) -> StageResult:
    import gzip
    import shutil

    from edgekit.checkpoint import load_checkpoint
    from edgekit_runtimes.torch_eager import TorchEagerAdapter

    shutil.rmtree(_run_dir(ctx, out_dir, out_dir.name), ignore_errors=True)  # finished: nothing to resume
    model.save_pretrained(str(out_dir), safe_serialization=True)
    from edgekit.training.prune import HEADS_KEY

    if getattr(model.config, HEADS_KEY, None):
        # load_pruned rebuilds the narrower model and loads this state dict by the module's own names;
        # save_pretrained may rename weights to a legacy layout (it does for ViT)
        from safetensors.torch import save_file

        save_file(
            {k: v.contiguous() for k, v in model.state_dict().items()},
            str(out_dir / MODEL_FILE),
            metadata={"format": "pt"},
        )
    tokenizer.save_pretrained(str(out_dir))
    raw = (out_dir / MODEL_FILE).read_bytes()
    record = {**record, "size_bytes": len(raw), "gzip_bytes": len(gzip.compress(raw, compresslevel=6))}
    (out_dir / "edgekit_training.json").write_text(json.dumps(record, indent=2) + "\n")
    student = load_checkpoint(out_dir, task=ctx.teacher.task)
    params = sum(p.numel() for p in student.model.parameters())
    session = TorchEagerAdapter().from_checkpoint(student, ctx.threads)
    return StageResult(
        format="hf-checkpoint",
        precision="fp32",
        model_file=MODEL_FILE,
        validation={k: v for k, v in (record.get("history") or [{}])[-1].items() if k != "loss"},
        extra={
            "parameters": params,
            **{k: v for k, v in record.items() if k != "history"},
            "history": record.get("history"),
        },
        session=session,
    )


def _run_key(config, parent, ctx) -> dict:
    """What a training stage's resume state must have been made by: this stage's config, its input and the
    teacher (path and config)."""
    teacher = {k: v for k, v in ctx.teacher.config.items() if k not in ("transformers_version", "_name_or_path")}
    return {"stage": config.model_dump(mode="json"), "input": parent.name, "teacher": [str(ctx.teacher.path), teacher]}


def _run_dir(ctx, out_dir: Path, name: str) -> Path:
    return Path(ctx.run_root or out_dir.parent) / f".train-{name}"


@register(DistillConfig, lambda c, fmt: "student")
def run_distill(config: DistillConfig, parent, ctx, out_dir: Path) -> StageResult:
    from edgekit.training.device import train_device
    from edgekit.training.distill import distill, evenly_spaced, student_from_teacher

    if parent.format != "hf-checkpoint":
        raise RecipeError(f"stage distill reads a checkpoint, but its input {parent.name!r} is {parent.format}")
    teacher = ctx.teacher.model
    source = ctx.checkpoint.model  # the parent: the teacher itself, or an earlier student
    n = source.config.num_hidden_layers
    layers = config.layers if isinstance(config.layers, list) else evenly_spaced(n, config.layers)
    if not layers or max(layers) >= n or min(layers) < 0:
        raise RecipeError(f"stage distill: layers {config.layers} do not fit a {n}-layer model")
    student = student_from_teacher(source, layers).train()
    holder = [student]
    data = _task_data(ctx, config.data, config.train.max_len, holder)
    device = train_device()
    history = distill(
        teacher,
        student,
        data.train,
        ctx.teacher.task,
        _settings(config.train, len(data.train)),
        _losses(config.losses),
        _run_dir(ctx, out_dir, out_dir.name),
        layer_map=layers if source is teacher else None,
        evaluate=data.evaluate,
        progress=ctx.progress,
        resume=ctx.resume,
        desc=f"distill {out_dir.name}",
        teacher_data=data.teacher_train,
        device=device,
        key=_run_key(config, parent, ctx),
    )
    record = {
        "kind": "distill",
        "teacher_layers": n,
        "student_layers": layers,
        "device": str(device),
        "history": history,
    }
    return _save(student, ctx, out_dir, record, ctx.checkpoint.tokenizer)


@register(PruneConfig, lambda c, fmt: "pruned")
def run_prune(config: PruneConfig, parent, ctx, out_dir: Path) -> StageResult:
    import copy

    import torch

    from edgekit.training.distill import distill
    from edgekit.training.prune import apply, measure_importance

    if parent.format != "hf-checkpoint":
        raise RecipeError(f"stage prune reads a checkpoint, but its input {parent.name!r} is {parent.format}")
    if all(v is None for v in (config.heads, config.ffn, config.layers, config.sparsity)) and not config.vocabulary:
        raise RecipeError("stage prune: give heads, ffn, layers, sparsity and/or vocabulary")
    model = copy.deepcopy(ctx.checkpoint.model)
    holder = [model]
    data = _task_data(ctx, config.data, (config.recover or TrainConfig()).max_len, holder)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(data.train))[: config.importance_batches * 16]
    chunks = [idx[i : i + 16] for i in range(0, len(idx), 16)]
    batches = [data.train.batch(c) for c in chunks]
    task = get_task(ctx.teacher.task)
    if task.labelled:

        def loss_of(m, b):
            b = dict(b)
            y = b.pop("labels")
            return torch.nn.functional.cross_entropy(m(**b).logits, y)
    else:
        for b, c in zip(batches, chunks):  # the teacher's task outputs of the same rows, in its own token ids
            tb = data.teacher_train.batch(c)
            with torch.no_grad():
                b["teacher"] = task.head(ctx.teacher.model(**tb), tb["attention_mask"])

        def loss_of(m, b):
            b = dict(b)
            t = b.pop("teacher")
            e = task.head(m(**b), b["attention_mask"])
            return (1 - torch.nn.functional.cosine_similarity(e, t, dim=-1)).mean()

    imp = measure_importance(model, batches, loss_of, layer_scores=config.layers is not None)
    before = data.evaluate()
    plan = apply(model, imp, heads=config.heads, ffn=config.ffn, layers=config.layers)
    masked = _mask_by_magnitude(model, config.sparsity) if config.sparsity else []
    tokenizer = ctx.checkpoint.tokenizer
    vocab: dict[str, str | int] | None = None
    if config.vocabulary and ctx.teacher.is_image:
        vocab = {"skipped": "an image model has no vocabulary"}
    elif config.vocabulary:
        import tempfile

        from edgekit.training.vocab import plan_vocabulary, prune_embeddings, write_tokenizer

        keep = plan_vocabulary(tokenizer, _task_texts(config.data, ctx), (config.recover or TrainConfig()).max_len)
        vocab = {"before": len(tokenizer.get_vocab()), "after": len(keep)}
        prune_embeddings(model, keep)
        tokenizer = write_tokenizer(tokenizer, keep, Path(tempfile.mkdtemp(prefix="vocab-", dir=out_dir.parent)))
        data = _task_data(ctx, config.data, (config.recover or TrainConfig()).max_len, holder, tokenizer)
    after = data.evaluate()
    history, device = [], None
    if config.recover is not None:
        from edgekit.training.device import train_device

        model.train()
        device = train_device()
        history = distill(
            ctx.teacher.model,
            model,
            data.train,
            task.name,
            _settings(config.recover, len(data.train)),
            _losses(config.losses),
            _run_dir(ctx, out_dir, out_dir.name),
            evaluate=data.evaluate,
            progress=ctx.progress,
            resume=ctx.resume,
            desc=f"recover {out_dir.name}",
            teacher_data=data.teacher_train,
            device=device,
            key=_run_key(config, parent, ctx),
        )
    sparsity = _make_permanent(masked)
    from edgekit.training.prune import encoder_macs

    seq = 128 if not ctx.teacher.is_image else _patches(ctx.checkpoint.config)
    macs = {
        "seq_len": seq,
        "before": encoder_macs(ctx.checkpoint.config, seq),
        "after": encoder_macs(model.config.to_dict(), seq),
    }
    heads = len(next(iter(plan["heads"].values()))) if plan["heads"] else None
    record = {
        "kind": "prune",
        "unstructured_sparsity": sparsity,
        "vocabulary": vocab,
        "encoder_macs": macs,
        "recovery_device": device and str(device),
        "kept": {"layers": plan["layers"], "heads_per_layer": heads, "ffn_per_layer": model.config.intermediate_size},
        "before_pruning": before,
        "after_pruning_before_recovery": after,
        "history": history or [after],
        "importance": {"layers": imp.layers.round(5).tolist()},
    }
    return _save(model, ctx, out_dir, record, tokenizer)


def _patches(config: dict) -> int:
    """Tokens a ViT sees: its patches plus the class token."""
    return (int(config["image_size"]) // int(config["patch_size"])) ** 2 + 1


def _mask_by_magnitude(model, amount: float) -> list:
    """Zero the smallest-magnitude ``amount`` of every encoder Linear weight (torch.nn.utils.prune masks,
    which keep them zero during recovery training)."""
    import torch
    from torch.nn.utils import prune as torch_prune

    linears = [m for m in model.base_model.encoder.modules() if isinstance(m, torch.nn.Linear)]
    for m in linears:
        torch_prune.l1_unstructured(m, "weight", amount=amount)
    return linears


def _make_permanent(linears: list) -> float | None:
    from torch.nn.utils import prune as torch_prune

    if not linears:
        return None
    zeros = total = 0
    for m in linears:
        torch_prune.remove(m, "weight")
        zeros += int((m.weight == 0).sum())
        total += m.weight.numel()
    return round(zeros / total, 4)


@register(QATConfig, lambda c, fmt: "onnx-int8-qat" if c.mode == "qat" else "onnx-int8-pt2e-static")
def run_qat(config: QATConfig, parent, ctx, out_dir: Path) -> StageResult:
    """QAT, or (``mode: ptq``) static PTQ through the same quantizer: equal precision, so the two compare.

    Both calibrate the observers on training batches first. QAT then trains
    with distillation from the fp32 model; with ``keep_best`` it keeps the
    calibrated start when training lowered validation accuracy (model
    selection on the validation split; the test split is never looked at)."""
    import contextlib
    import copy
    import io
    import shutil

    from edgekit.plugins import get_runtime
    from edgekit.stages.quantize import sanity
    from edgekit.training.distill import distill
    from edgekit.training.qat import calibrate, export_onnx, freeze_observers, prepare

    if parent.format != "hf-checkpoint":
        raise RecipeError(f"stage qat reads a checkpoint, but its input {parent.name!r} is {parent.format}")
    if not ctx.teacher.task_def.labelled or ctx.teacher.is_image:
        raise RecipeError(
            "stage qat trains text classifiers (distillation on logits); encoders and image models "
            "are not supported yet"
        )
    qat = config.mode == "qat"
    adapter = prepare(ctx.checkpoint, qat=qat)
    adapter.dropout = config.dropout
    holder = [adapter]
    data = _task_data(ctx, config.data, config.train.max_len, holder)
    rng = np.random.default_rng(config.train.seed)
    order = rng.permutation(len(data.train))[: config.calibration_batches * config.train.batch_size]
    calibrate(
        adapter,
        [
            data.train.batch(order[i : i + config.train.batch_size])
            for i in range(0, len(order), config.train.batch_size)
        ],
    )
    start = {"step": 0, **data.evaluate()}
    history, kept_start, frozen = [start], False, 0
    if qat:
        if config.freeze_observers:
            frozen = freeze_observers(adapter)
        snapshot = copy.deepcopy(adapter.graph.state_dict())
        history += distill(
            ctx.teacher.model,
            adapter,
            data.train,
            ctx.teacher.task,
            _settings(config.train, len(data.train)),
            _losses(config.losses),
            _run_dir(ctx, out_dir, out_dir.name),
            evaluate=data.evaluate,
            progress=ctx.progress,
            resume=ctx.resume,
            desc=f"qat {out_dir.name}",
            teacher_data=data.teacher_train,
            device="cpu",  # the PT2E graph was exported on the CPU
            key=_run_key(config, parent, ctx),
        )
        if config.keep_best and history[-1].get("val_accuracy", 0) < start.get("val_accuracy", 0):
            adapter.graph.load_state_dict(snapshot)
            kept_start = True
    model_file = "model.onnx"
    with contextlib.redirect_stdout(io.StringIO()):
        export_onnx(adapter, ctx.checkpoint, out_dir / model_file, config.opset)
    shutil.rmtree(_run_dir(ctx, out_dir, out_dir.name), ignore_errors=True)
    session = get_runtime("onnxruntime").load(out_dir / model_file, threads=ctx.threads)
    validation = sanity(session, ctx, config.min_cosine, config.mode)
    scheme = ("QAT" if qat else "static PTQ") + (
        " (PT2E, X86 Inductor quantizer): int8 per-channel weights, uint8 activations, QDQ ONNX"
    )
    return StageResult(
        format="onnx",
        precision="int8",
        model_file=model_file,
        validation={**validation, **{k: v for k, v in history[-1].items() if k != "loss"}},
        extra={
            "scheme": [scheme],
            "calibration_batches": config.calibration_batches,
            "validation_after_calibration": start.get("val_accuracy"),
            "kept_calibrated_start": kept_start,
            "frozen_observers": frozen,
            "history": history,
        },
        session=session,
    )
