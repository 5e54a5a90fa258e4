"""The shipped language-modelling corpus and the demo decoder's tokenizer (no hub downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.data.calibration import data_dir
from edgekit.errors import InputError

CORPORA = {"sotu": ("lm/sotu_train.txt", "lm/sotu_heldout.txt")}
BOS = EOS = "<|endoftext|>"


def corpus_files(name: str) -> tuple[Path, Path]:
    """(train, held-out) text files of a shipped corpus or a directory holding train.txt and heldout.txt."""
    if name in CORPORA:
        base = data_dir()
        return tuple(base / p for p in CORPORA[name])  # type: ignore[return-value]
    d = Path(name)
    if d.is_dir() and (d / "train.txt").is_file() and (d / "heldout.txt").is_file():
        return d / "train.txt", d / "heldout.txt"
    raise InputError(
        f"unknown corpus {name!r}: give {', '.join(CORPORA)} or a directory with train.txt and heldout.txt"
    )


def documents(path: Path) -> list[str]:
    """One document per non-empty line."""
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def train_tokenizer(texts: list[str], vocab_size: int = 4096):
    """A byte-level BPE tokenizer (GPT-2's scheme) trained on ``texts``; like GPT-2 it has no pad token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, model_max_length=512)


def token_stream(tokenizer, texts: list[str]) -> np.ndarray:
    """All ``texts`` as one id stream, each document followed by the end-of-text token."""
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        ids.append(eos)
    return np.asarray(ids, dtype=np.int64)


def blocks(stream: np.ndarray, length: int) -> np.ndarray:
    """Non-overlapping windows of ``length`` tokens (the tail that does not fill one is dropped)."""
    n = len(stream) // length
    return stream[: n * length].reshape(n, length)
