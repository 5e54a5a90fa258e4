"""LiteRT decoders through litert-torch's generative converter, one family at a time (random-weight twins):
logits of the prefill and decode signatures against PyTorch, greedy continuations identical."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.testing import make_tiny_decoder
from edgekit_converters import litert_decoder


def test_which_families_convert():
    ok = {"architectures": ["Qwen2ForCausalLM"], "hidden_act": "silu"}
    assert litert_decoder.supported(ok) in (None, "litert_torch, ai_edge_litert not installed")
    if litert_decoder.supported(ok) is not None:
        pytest.skip("litert-torch is not installed")
    assert litert_decoder.supported({"architectures": ["GemmaForCausalLM"], "hidden_act": "gelu_pytorch_tanh"}) is None
    assert "gelu" in litert_decoder.supported({"architectures": ["Qwen2ForCausalLM"], "hidden_act": "gelu"})
    assert "sliding-window" in litert_decoder.supported({**ok, "use_sliding_window": True})
    assert "partial rotary" in litert_decoder.supported({**ok, "partial_rotary_factor": 0.5})
    assert "learned position" in litert_decoder.supported({"architectures": ["GPT2LMHeadModel"]})


@pytest.mark.slow  # ~20 s a family: a litert-torch conversion each (pytest -m slow)
@pytest.mark.parametrize("family", ["qwen2", "gemma", "phi3"])
def test_family_converts_with_parity(tmp_path, family):
    from edgekit.generation.pipeline import load_causal_lm, parity

    ckpt = make_tiny_decoder(tmp_path / family, family)
    assert litert_decoder.supported(json.loads((ckpt / "config.json").read_text())) is None
    out = tmp_path / "tflite"
    out.mkdir()
    litert_decoder.convert(ckpt, out, "none", kv_cache_max_len=256)
    rec = parity(load_causal_lm(ckpt), out, np.arange(3, 27), 1e-4)  # raises ParityError beyond 1e-4
    assert rec["greedy_identical"] and max(rec["prefill_max_abs_diff"], rec["decode_max_abs_diff"]) < 1e-5
