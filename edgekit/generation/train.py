"""Train the demo decoder from scratch, and distil a smaller decoder from it (build side, torch).

``edgekit finetune sotu-llama --data sotu`` trains a small Llama-style decoder (a configuration in
code, a byte-level BPE tokenizer trained on the same text) on the shipped State of the Union
corpus; ``edgekit distill-decoder`` makes a student with fewer layers and a narrower FFN, initialised
from the teacher's layers, trained on the teacher's next-token distribution (KL at temperature T) plus
the language-model loss. Both run in the resumable :class:`~edgekit.training.loop.Trainer` (torchrun
DDP unchanged) and are cached like the ViT teacher: the same settings and data reuse the directory.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.generation.corpus import blocks, corpus_files, documents, token_stream, train_tokenizer
from edgekit.training.finetune import RECORD, cached
from edgekit.training.loop import Trainer, TrainSettings, seed_everything, world

DECODER_BASES: dict[str, dict[str, Any]] = {
    # Llama-style (RoPE, RMSNorm, SwiGLU, grouped-query attention): about 4.7M parameters
    "sotu-llama": {
        "hidden_size": 256,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "intermediate_size": 768,
        "max_position_embeddings": 512,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
    },
}
DECODER_SETTINGS = TrainSettings(epochs=6.0, batch_size=16, lr=2e-3, max_len=256, weight_decay=0.1, save_every=25)
VOCAB_SIZE = 4096


def _digest_files(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


def perplexity(model, data: np.ndarray, batch_size: int = 8) -> float:
    """exp(mean next-token cross-entropy) of ``model`` over the windows in ``data``."""
    import torch

    from edgekit.training.device import device_of

    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(data), batch_size):
            x = torch.as_tensor(data[i : i + batch_size], device=device_of(model))
            logits = model(input_ids=x).logits[:, :-1].float()
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum"
            )
            total += float(loss)
            count += int(x[:, 1:].numel())
    return math.exp(total / max(count, 1))


def _cached_or_seeded(out: Path, key: dict, seed: int) -> dict | None:
    """What every from-scratch trainer starts with: no hub access; the cached model's record when ``out`` already
    holds a model trained under ``key``; otherwise None, with every random generator seeded."""
    from edgekit.checkpoint import offline

    offline()
    hit = cached(out, key)
    if hit is not None:
        return {**hit, "cached": True}
    seed_everything(seed)
    return None


def _publish(model, tokenizer, trainer_fn, key: dict, out: Path, overwrite: bool, extra: dict) -> dict:
    from edgekit.output import OutputDir

    work = out / ".train-decoder"
    with OutputDir(out, "finetune", overwrite=overwrite) if world()[0] == 0 else nullcontext() as target:
        if target is not None:
            target.hold()
        record = {"key": key, **trainer_fn(work), **extra}
        if target is not None:
            model.save_pretrained(str(target.tree), safe_serialization=True)
            tokenizer.save_pretrained(target.tree)
            model.generation_config.save_pretrained(str(target.tree))
            (target.tree / RECORD).write_text(json.dumps(record, indent=2) + "\n")
            target.commit()
            shutil.rmtree(work, ignore_errors=True)
    return {**record, "cached": False}


def train_decoder(
    base: str,
    corpus: str,
    out: Path,
    *,
    settings: TrainSettings = DECODER_SETTINGS,
    progress: bool = True,
    resume: bool = False,
    overwrite: bool = False,
) -> dict:
    """A decoder from the built-in configuration ``base`` trained from scratch on ``corpus``."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from edgekit.training.device import device_of

    train_file, heldout_file = corpus_files(corpus)
    arch = DECODER_BASES[base]
    key = {"base": base, "arch": arch, "data": _digest_files(train_file, heldout_file), "settings": asdict(settings)}
    hit = _cached_or_seeded(out, key, settings.seed)
    if hit is not None:
        return hit
    train_docs, held_docs = documents(train_file), documents(heldout_file)
    tok = train_tokenizer(train_docs, VOCAB_SIZE)
    train = blocks(token_stream(tok, train_docs), settings.max_len)
    held = blocks(token_stream(tok, held_docs), settings.max_len)
    config = LlamaConfig(
        **arch,
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        architectures=["LlamaForCausalLM"],
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, do_sample=False, max_new_tokens=64
    )

    def step_loss(m, idx):
        x = torch.as_tensor(train[idx], device=device_of(m))
        return m(input_ids=x, labels=x).loss

    def fit(work: Path) -> dict:
        trainer = Trainer(
            model, step_loss, len(train), settings, work, progress=progress, desc="train decoder", key=key
        )
        history = trainer.fit(lambda: {"heldout_perplexity": perplexity(model, held)}, resume=resume)
        return {
            "history": history,
            "heldout_perplexity": history[-1]["heldout_perplexity"] if history else perplexity(model, held),
            "world_size": trainer.world,
            "device": str(trainer.device),
        }

    extra = {
        "train_tokens": int(train.size),
        "heldout_tokens": int(held.size),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "corpus": corpus,
    }
    return _publish(model, tok, fit, key, out, overwrite, extra)


def student_from(teacher, layers: int, ffn_keep: float):
    """A copy of ``teacher`` with ``layers`` of its layers (taken evenly, first and last kept) and, for
    gated FFNs (Llama-style gate/up/down), the ``ffn_keep`` share of FFN channels with the largest weight norms."""
    import copy

    import torch

    from edgekit.errors import RecipeError

    base = teacher.model if hasattr(teacher, "model") else teacher.transformer
    blocks_attr = "layers" if hasattr(base, "layers") else "h"
    teacher_layers = getattr(base, blocks_attr)
    if layers > len(teacher_layers):
        raise RecipeError(f"distill-decoder: layers {layers} > the teacher's {len(teacher_layers)}")
    keep = sorted({int(round(x)) for x in np.linspace(0, len(teacher_layers) - 1, layers)})
    student = copy.deepcopy(teacher)
    sbase = student.model if hasattr(student, "model") else student.transformer
    setattr(sbase, blocks_attr, torch.nn.ModuleList([getattr(sbase, blocks_attr)[i] for i in keep]))
    for new_idx, block in enumerate(getattr(sbase, blocks_attr)):
        attn = getattr(block, "self_attn", None) or getattr(block, "attn", None)
        if attn is not None and hasattr(attn, "layer_idx"):
            attn.layer_idx = new_idx
    text = student.config
    if hasattr(text, "num_hidden_layers"):
        text.num_hidden_layers = len(keep)
    else:
        text.n_layer = len(keep)
    if hasattr(text, "layer_types") and text.layer_types is not None:
        text.layer_types = [text.layer_types[i] for i in keep]
    if ffn_keep < 1.0:
        for block in getattr(sbase, blocks_attr):
            mlp = block.mlp
            if not all(hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj")):
                raise RecipeError("distill-decoder: ffn_keep < 1 needs a gated FFN (gate_proj, up_proj, down_proj)")
            d = mlp.gate_proj.out_features
            k = max(1, int(round(d * ffn_keep)))
            score = mlp.gate_proj.weight.norm(dim=1) * mlp.up_proj.weight.norm(dim=1) * mlp.down_proj.weight.norm(dim=0)
            idx = torch.topk(score, k).indices.sort().values
            for name, dim in (("gate_proj", 0), ("up_proj", 0), ("down_proj", 1)):
                old = getattr(mlp, name)
                new = torch.nn.Linear(
                    old.in_features if dim == 0 else k, k if dim == 0 else old.out_features, bias=old.bias is not None
                )
                with torch.no_grad():
                    new.weight.copy_(old.weight.index_select(dim, idx))
                    if old.bias is not None:
                        new.bias.copy_(old.bias if dim == 1 else old.bias[idx])
                setattr(mlp, name, new)
        text.intermediate_size = max(1, int(round(text.intermediate_size * ffn_keep)))
    return student, keep


def distill_decoder(
    teacher_dir: Path, cfg, out: Path, *, progress: bool = True, resume: bool = False, work: Path | None = None
) -> dict:
    """Distil ``cfg.layers``-layer student from the checkpoint at ``teacher_dir`` into the directory ``out``
    (a normal checkpoint with the teacher's tokenizer): KL(teacher || student) at ``cfg.temperature`` times
    T^2 weighted ``cfg.alpha``, plus the language-model loss weighted 1 - alpha."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoTokenizer

    from edgekit.generation.pipeline import load_causal_lm
    from edgekit.training.device import device_of

    s = cfg.train
    settings = TrainSettings(epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, max_len=s.max_len, save_every=25)
    seed_everything(settings.seed)
    teacher = load_causal_lm(teacher_dir)
    tok = AutoTokenizer.from_pretrained(str(teacher_dir), local_files_only=True, trust_remote_code=False)
    train_file, heldout_file = corpus_files(cfg.data)
    context = int(getattr(teacher.config, "max_position_embeddings", 0) or settings.max_len)
    length = min(settings.max_len, context)
    train = blocks(token_stream(tok, documents(train_file)), length)
    held = blocks(token_stream(tok, documents(heldout_file)), length)
    student, keep = student_from(teacher, cfg.layers, cfg.ffn_keep)
    for p in teacher.parameters():
        p.requires_grad_(False)
    T, alpha = cfg.temperature, cfg.alpha

    def step_loss(m, idx):
        x = torch.as_tensor(train[idx], device=device_of(m))
        with torch.no_grad():
            t_logits = teacher.to(x.device)(input_ids=x).logits
        out = m(input_ids=x, labels=x)
        kl = F.kl_div(
            F.log_softmax(out.logits / T, -1).flatten(0, 1),
            F.log_softmax(t_logits / T, -1).flatten(0, 1),
            log_target=True,
            reduction="batchmean",
        ) * (T * T)
        return alpha * kl + (1 - alpha) * out.loss

    key = {"teacher": str(teacher_dir), "stage": cfg.model_dump(mode="json")}
    work = work or out / ".train-distill"  # the resumable state (the pipeline keeps it in the output itself)
    trainer = Trainer(
        student, step_loss, len(train), settings, work, progress=progress, desc="distill decoder", key=key
    )
    history = trainer.fit(lambda: {"heldout_perplexity": perplexity(student, held)}, resume=resume)
    student.config.architectures = list(teacher.config.architectures or [type(student).__name__])
    if world()[0] == 0:  # under torchrun, rank 0 writes
        student.save_pretrained(str(out), safe_serialization=True)
        tok.save_pretrained(out)
        student.generation_config.save_pretrained(str(out))
        shutil.rmtree(work, ignore_errors=True)
    return {
        "history": history,
        "layers_kept": keep,
        "teacher_heldout_perplexity": perplexity(teacher, held),
        "heldout_perplexity": history[-1]["heldout_perplexity"] if history else perplexity(student, held),
        "parameters": int(sum(p.numel() for p in student.parameters())),
        "teacher_parameters": int(sum(p.numel() for p in teacher.parameters())),
        "device": str(trainer.device),
    }
