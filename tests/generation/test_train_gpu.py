"""The generative models train on an NVIDIA GPU: the demo decoder and encoder-decoder from scratch (one and two
epochs of the shipped data), and their distilled students (a quarter epoch each). Skips without CUDA.
That the trainer hands a model back on the CPU is tests/training/test_loop_gpu.py's check."""

from __future__ import annotations

import math

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")]


def test_decoder_and_its_student_train_on_the_gpu(tmp_path, monkeypatch):
    from edgekit.generation.train import VOCAB_SIZE, distill_decoder, train_decoder
    from edgekit.recipe.config import DistillDecoderConfig, TrainConfig
    from edgekit.training.loop import TrainSettings

    monkeypatch.delenv("EDGEKIT_TRAIN_DEVICE", raising=False)
    settings = TrainSettings(epochs=1.0, batch_size=16, lr=2e-3, max_len=256, save_every=10**6)
    rec = train_decoder("sotu-llama", "sotu", tmp_path / "teacher", settings=settings, progress=False)
    assert rec["device"].startswith("cuda")
    # an untrained model is about as perplexed as the vocabulary is large (a quarter epoch on the CPU: 805; the
    # shipped six epochs: 86)
    assert math.isfinite(rec["heldout_perplexity"]) and rec["heldout_perplexity"] < VOCAB_SIZE / 8

    cfg = DistillDecoderConfig(
        kind="distill-decoder", layers=2, ffn_keep=0.5, train=TrainConfig(epochs=0.25, batch_size=16, lr=1e-3)
    )
    st = distill_decoder(tmp_path / "teacher", cfg, tmp_path / "student", progress=False)
    assert st["device"].startswith("cuda")
    assert st["parameters"] < 0.7 * st["teacher_parameters"]
    assert st["heldout_perplexity"] < 2 * st["teacher_heldout_perplexity"]
    assert not (tmp_path / "student" / ".train-distill").exists()


def test_encoder_decoder_and_its_student_train_on_the_gpu(tmp_path, monkeypatch):
    from edgekit.generation.text2text_train import distill_seq2seq, load_seq2seq, train_seq2seq
    from edgekit.recipe.config import DistillSeq2SeqConfig, TrainConfig
    from edgekit.training.loop import TrainSettings

    monkeypatch.delenv("EDGEKIT_TRAIN_DEVICE", raising=False)
    settings = TrainSettings(epochs=2.0, batch_size=32, lr=1e-3, max_len=64, save_every=10**6)
    rec = train_seq2seq("sotu-bart", "sotu-punct", tmp_path / "teacher", settings=settings, progress=False)
    assert rec["device"].startswith("cuda") and math.isfinite(rec["test_bleu"])
    # an untrained model's loss is about log(vocabulary) (half an epoch on the CPU: 6.55 of 8.3)
    vocab = load_seq2seq(tmp_path / "teacher").config.vocab_size
    assert rec["heldout_loss"] < 0.6 * math.log(vocab)

    cfg = DistillSeq2SeqConfig(
        kind="distill-seq2seq", decoder_layers=1, train=TrainConfig(epochs=0.25, batch_size=32, lr=5e-4, max_len=64)
    )
    st = distill_seq2seq(tmp_path / "teacher", cfg, tmp_path / "student", progress=False)
    assert st["device"].startswith("cuda") and st["decoder_layers_kept"] == [0]
    assert st["parameters"] < st["teacher_parameters"]
    assert st["heldout_loss"] < 2 * st["teacher_heldout_loss"] + 0.5
