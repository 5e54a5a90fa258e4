"""Train the demo encoder-decoder from scratch, and distil a student with fewer decoder layers (build side).

``edgekit finetune sotu-bart --data sotu-punct`` trains a small BART (a configuration in code, a byte-level
BPE tokenizer trained on the same text) to restore punctuation and capitalisation
(:mod:`edgekit.generation.text2text_data`). :func:`distill_seq2seq` keeps the teacher's encoder and
every other decoder layer (decoder depth is what a generated token pays for) and trains the student on
the teacher's token distributions (KL at temperature T, teacher-forced on the gold targets) plus the
cross-entropy on the targets. Both run in the resumable :class:`~edgekit.training.loop.Trainer` and
are cached: the same settings and data reuse the directory.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.generation.text2text_data import data_files, pairs
from edgekit.generation.train import _cached_or_seeded, _digest_files, _publish
from edgekit.training.loop import Trainer, TrainSettings, seed_everything

SEQ2SEQ_BASES: dict[str, dict[str, Any]] = {
    # BART-style (learned absolute positions in the encoder and the decoder, GELU, tied embeddings): about 7M
    # parameters. Positions matter here: a copy-heavy task is learnt in a few hundred steps by BART, while T5
    # (relative position buckets, none in the cross-attention) and Marian (sinusoidal) stayed at the
    # language-model loss for thousands of steps in the same budget (a 20-symbol copy task: BART 0.02 nats
    # after 250 steps, Marian 2.7, T5 2.3)
    "sotu-bart": {
        "d_model": 256,
        "encoder_layers": 3,
        "decoder_layers": 4,
        "encoder_attention_heads": 4,
        "decoder_attention_heads": 4,
        "encoder_ffn_dim": 768,
        "decoder_ffn_dim": 768,
        "max_position_embeddings": 128,
        "dropout": 0.0,
    },
}
SEQ2SEQ_SETTINGS = TrainSettings(epochs=5.0, batch_size=16, lr=5e-4, max_len=64, weight_decay=0.01, save_every=50)
VOCAB_SIZE = 4096
PAD, EOS = "<pad>", "</s>"
EVAL_PAIRS = 200  # test pairs scored by BLEU after training (all of them are scored by the pipeline)


def train_tokenizer(texts: list[str], vocab_size: int = VOCAB_SIZE):
    """A byte-level BPE tokenizer with T5-style special tokens (pad 0, end of sequence 1) that ends each input
    with the end-of-sequence token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", special_tokens=[(EOS, 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS, model_max_length=128)


def encode_pairs(tok, rows: list[dict], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Sources and targets as id arrays padded with -1 (each ends with the end-of-sequence token)."""
    src = [tok(r["source"])["input_ids"][:max_len] for r in rows]
    tgt = [tok(r["target"])["input_ids"][:max_len] for r in rows]

    def pad(seqs):
        out = np.full((len(seqs), max(len(s) for s in seqs)), -1, np.int64)
        for i, s in enumerate(seqs):
            out[i, : len(s)] = s
        return out

    return pad(src), pad(tgt)


def _batch(src: np.ndarray, tgt: np.ndarray, idx, device):
    import torch

    s, t = src[idx], tgt[idx]
    s = s[:, : int((s >= 0).sum(1).max())]
    t = t[:, : int((t >= 0).sum(1).max())]
    ids = torch.as_tensor(np.where(s >= 0, s, 0), device=device)
    mask = torch.as_tensor((s >= 0).astype(np.int64), device=device)
    labels = torch.as_tensor(np.where(t >= 0, t, -100), device=device)
    return ids, mask, labels


def heldout_loss(model, src: np.ndarray, tgt: np.ndarray, batch_size: int = 64) -> float:
    """Mean token cross-entropy of ``model`` on the pairs (teacher-forced)."""
    import torch

    from edgekit.training.device import device_of

    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(src), batch_size):
            ids, mask, labels = _batch(src, tgt, np.arange(i, min(i + batch_size, len(src))), device_of(model))
            logits = model(input_ids=ids, attention_mask=mask, labels=labels).logits
            loss = torch.nn.functional.cross_entropy(
                logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum"
            )
            total += float(loss)
            count += int((labels != -100).sum())
    return total / max(count, 1)


def bleu_of(model, tok, rows: list[dict], num_beams: int = 1, max_new_tokens: int = 96) -> dict:
    """BLEU and chrF (sacrebleu) of ``model``'s generations for ``rows`` (PyTorch, batched)."""
    import sacrebleu
    import torch

    hyps = []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(rows), 32):
            part = rows[i : i + 32]
            enc = tok([r["source"] for r in part], return_tensors="pt", padding=True)
            out = model.generate(**enc, num_beams=num_beams, do_sample=False, max_new_tokens=max_new_tokens)
            hyps.extend(tok.batch_decode(out, skip_special_tokens=True))
    refs = [[r["target"] for r in rows]]
    return {
        "bleu": round(sacrebleu.corpus_bleu(hyps, refs).score, 2),
        "chrf": round(sacrebleu.corpus_chrf(hyps, refs).score, 2),
    }


def train_seq2seq(
    base: str,
    data: str,
    out: Path,
    *,
    settings: TrainSettings = SEQ2SEQ_SETTINGS,
    progress: bool = True,
    resume: bool = False,
    overwrite: bool = False,
) -> dict:
    """An encoder-decoder from the built-in configuration ``base`` trained from scratch on the pairs ``data``."""
    from transformers import BartConfig, BartForConditionalGeneration, GenerationConfig

    from edgekit.training.device import device_of

    arch = SEQ2SEQ_BASES[base]
    key = {"base": base, "arch": arch, "data": _digest_files(*data_files(data)), "settings": asdict(settings)}
    hit = _cached_or_seeded(out, key, settings.seed)
    if hit is not None:
        return hit
    train_rows, test_rows = pairs(data)
    tok = train_tokenizer([r[k] for r in train_rows for k in ("source", "target")])
    src, tgt = encode_pairs(tok, train_rows, settings.max_len)
    test_src, test_tgt = encode_pairs(tok, test_rows, settings.max_len)
    config = BartConfig(
        **arch,
        vocab_size=len(tok),
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.eos_token_id,  # BART starts decoding at </s>
        forced_eos_token_id=None,
        architectures=["BartForConditionalGeneration"],
    )
    model = BartForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        do_sample=False,
        max_new_tokens=96,
    )

    def step_loss(m, idx):
        ids, mask, labels = _batch(src, tgt, idx, device_of(m))
        return m(input_ids=ids, attention_mask=mask, labels=labels).loss

    def fit(work: Path) -> dict:
        trainer = Trainer(model, step_loss, len(src), settings, work, progress=progress, desc="train seq2seq", key=key)
        history = trainer.fit(
            lambda: {"heldout_loss": round(heldout_loss(model, test_src, test_tgt), 4)}, resume=resume
        )
        scores = bleu_of(model.cpu(), tok, test_rows[:EVAL_PAIRS])
        return {
            "history": history,
            "heldout_loss": heldout_loss(model, test_src, test_tgt),
            **{f"test_{k}": v for k, v in scores.items()},
            "world_size": trainer.world,
            "device": str(trainer.device),
        }

    extra = {
        "train_pairs": len(train_rows),
        "test_pairs": len(test_rows),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "data": data,
    }
    return _publish(model, tok, fit, key, out, overwrite, extra)


def _decoder_layers(model):
    """(the module holding the decoder's layer list, the attribute name): BART/Marian ``layers``, T5 ``block``."""
    import torch

    base = getattr(model, "model", model)
    dec = getattr(base, "decoder", None)
    for attr in ("layers", "block"):
        if isinstance(getattr(dec, attr, None), torch.nn.ModuleList):
            return dec, attr
    return None, None


def student_from(teacher, decoder_layers: int):
    """A copy of ``teacher`` keeping its encoder and ``decoder_layers`` of its decoder layers (evenly taken,
    first and last kept; T5's relative position bias lives in the first and stays)."""
    import torch

    from edgekit.errors import RecipeError

    dec, attr = _decoder_layers(teacher)
    if dec is None:
        raise RecipeError("distill-seq2seq: the teacher has no decoder layer list (BART, Marian or T5 families)")
    n = len(getattr(dec, attr))
    if not 1 <= decoder_layers <= n:
        raise RecipeError(f"distill-seq2seq: decoder_layers must be 1..{n}")
    keep = sorted({int(round(x)) for x in np.linspace(0, n - 1, decoder_layers)})
    student = copy.deepcopy(teacher)
    sdec, _ = _decoder_layers(student)
    setattr(sdec, attr, torch.nn.ModuleList([getattr(sdec, attr)[i] for i in keep]))
    for new_idx, block in enumerate(getattr(sdec, attr)):
        for module in block.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_idx
    for cfg in {id(c): c for c in (student.config, getattr(sdec, "config", student.config))}.values():
        for key in ("decoder_layers", "num_decoder_layers"):
            if hasattr(cfg, key):
                setattr(cfg, key, len(keep))
        if cfg is not student.config and hasattr(cfg, "num_layers"):
            cfg.num_layers = len(keep)
    return student, keep


def distill_seq2seq(
    teacher_dir: Path, cfg, out: Path, *, progress: bool = True, resume: bool = False, work: Path | None = None
) -> dict:
    """A student with ``cfg.decoder_layers`` decoder layers distilled from the checkpoint at ``teacher_dir`` into
    the directory ``out`` (a checkpoint with the teacher's tokenizer); ``cfg`` is a distill-seq2seq stage."""
    import shutil

    import torch
    import torch.nn.functional as F
    from transformers import AutoTokenizer

    from edgekit.training.device import device_of
    from edgekit.training.loop import world

    s = cfg.train
    settings = TrainSettings(epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, max_len=s.max_len, save_every=50)
    seed_everything(settings.seed)
    teacher = load_seq2seq(teacher_dir)
    tok = AutoTokenizer.from_pretrained(str(teacher_dir), local_files_only=True, trust_remote_code=False)
    train_rows, test_rows = pairs(cfg.data)
    src, tgt = encode_pairs(tok, train_rows, settings.max_len)
    test_src, test_tgt = encode_pairs(tok, test_rows, settings.max_len)
    student, keep = student_from(teacher, cfg.decoder_layers)
    student.train()
    for p in teacher.parameters():
        p.requires_grad_(False)
    T, alpha = cfg.temperature, cfg.alpha

    def step_loss(m, idx):
        ids, mask, labels = _batch(src, tgt, idx, device_of(m))
        with torch.no_grad():
            t_logits = teacher.to(ids.device)(input_ids=ids, attention_mask=mask, labels=labels).logits
        out_ = m(input_ids=ids, attention_mask=mask, labels=labels)
        kept = (labels != -100).flatten()
        kl = F.kl_div(
            F.log_softmax(out_.logits.flatten(0, 1)[kept] / T, -1),
            F.log_softmax(t_logits.flatten(0, 1)[kept] / T, -1),
            log_target=True,
            reduction="batchmean",
        ) * (T * T)
        return alpha * kl + (1 - alpha) * out_.loss

    key = {"teacher": str(teacher_dir), "stage": cfg.model_dump(mode="json")}
    work = work or out / ".train-distill"
    trainer = Trainer(student, step_loss, len(src), settings, work, progress=progress, desc="distill seq2seq", key=key)
    history = trainer.fit(lambda: {"heldout_loss": round(heldout_loss(student, test_src, test_tgt), 4)}, resume=resume)
    student = student.cpu().eval()
    if world()[0] == 0:  # under torchrun, rank 0 writes
        student.save_pretrained(str(out), safe_serialization=True)
        tok.save_pretrained(out)
        student.generation_config.save_pretrained(str(out))
        shutil.rmtree(work, ignore_errors=True)
    return {
        "history": history,
        "decoder_layers_kept": keep,
        "heldout_loss": heldout_loss(student, test_src, test_tgt),
        "teacher_heldout_loss": heldout_loss(teacher, test_src, test_tgt),
        "parameters": int(sum(p.numel() for p in student.parameters())),
        "teacher_parameters": int(sum(p.numel() for p in teacher.parameters())),
        "device": str(trainer.device),
    }


def load_seq2seq(path: Path):
    """An encoder-decoder checkpoint (text or speech) in fp32 with eager attention (never the checkpoint's own
    code)."""
    import torch
    import transformers

    from edgekit.tasks import get_task, infer_task

    # the Auto class the checkpoint's task declares (AutoModelForSeq2SeqLM; Whisper: AutoModelForSpeechSeq2Seq)
    config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    auto = getattr(transformers, get_task(infer_task(config)).auto_class)
    model = auto.from_pretrained(
        str(path), local_files_only=True, trust_remote_code=False, dtype=torch.float32, attn_implementation="eager"
    )
    return model.eval()
