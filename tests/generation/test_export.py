"""KV-cache ONNX export of six decoder families (random weights): prefill and decode parity with PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.testing import DECODER_FAMILIES


@pytest.mark.parametrize("family", sorted(DECODER_FAMILIES))
def test_export_parity(family, tmp_path):
    from edgekit.generation.pipeline import load_causal_lm, parity
    from edgekit.testing import make_tiny_decoder
    from edgekit_converters.onnx_decoder import export_decoder

    ckpt = make_tiny_decoder(tmp_path / family, family)
    model = load_causal_lm(ckpt)
    export_decoder(model, tmp_path / "onnx")
    prompt = np.arange(3, 27, dtype=np.int64)
    record = parity(model, tmp_path / "onnx", prompt, atol=1e-4)
    assert record["greedy_identical"]
    assert record["prefill_max_abs_diff"] < 1e-4 * max(record["logit_scale"], 1)
    assert record["decode_max_abs_diff"] < 1e-4 * max(record["logit_scale"], 1)


def test_parity_catches_a_wrong_graph(tiny_decoder, tmp_path):
    """A graph exported from other weights fails parity with a typed error (exit 3)."""
    from edgekit.errors import ParityError
    from edgekit.generation.pipeline import load_causal_lm, parity
    from edgekit.testing import make_tiny_decoder
    from edgekit_converters.onnx_decoder import export_decoder

    other = load_causal_lm(make_tiny_decoder(tmp_path / "other", "llama", seed=1))
    export_decoder(other, tmp_path / "onnx")
    with pytest.raises(ParityError) as err:
        parity(load_causal_lm(tiny_decoder), tmp_path / "onnx", np.arange(3, 27), atol=1e-4)
    assert err.value.exit_code == 3
