"""LiteRT encoder-decoders (fixed shapes, the decoder over all its tokens each step) against PyTorch, per family
(random-weight twins): decoder logits over 12 teacher-forced steps, greedy and beam-4 outputs identical."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit_converters import litert_seq2seq

pytestmark = pytest.mark.skipif(litert_seq2seq.supported() is not None, reason="litert-torch is not installed")


@pytest.mark.slow  # ~30 s a family: two litert-torch conversions (pytest -m slow)
@pytest.mark.parametrize("family", ["bart", "marian", "mt5", "whisper"])
def test_family_converts_with_parity(tmp_path, family):
    from edgekit.generation.seq2seq import LiteRTSeq2SeqSession
    from edgekit.generation.seq2seq_pipeline import parity
    from edgekit.generation.text2text_train import load_seq2seq
    from edgekit.testing import make_tiny_seq2seq, make_tiny_whisper

    if family == "whisper":
        ckpt = make_tiny_whisper(tmp_path / family)
        rng = np.random.default_rng(0)
        model = load_seq2seq(ckpt)
        frames = 2 * model.config.max_source_positions
        sources: list = [rng.standard_normal((model.config.num_mel_bins, frames)).astype(np.float32) for _ in range(2)]
    else:
        ckpt = make_tiny_seq2seq(tmp_path / family, family)
        model = load_seq2seq(ckpt)
        sources = [list(np.arange(5, 5 + n) % 500) for n in (5, 9, 14, 20)]
    out = tmp_path / "tflite"
    litert_seq2seq.convert(model, out, decoder_lengths=(16, 32))
    assert isinstance(LiteRTSeq2SeqSession(out), LiteRTSeq2SeqSession)
    rec = parity(model, out, sources, 1e-4)  # raises ParityError past 1e-4 of the logit scale or on any other output
    assert rec["greedy_identical"] and rec["beam_identical"]
    assert rec["decoder_max_abs_diff"] <= 1e-4 * max(rec["logit_scale"], 1.0)
