"""int8 and int4 decoder quantization: the graphs use the kernels they should and stay close to fp32."""

from __future__ import annotations

import numpy as np
import onnx
import pytest


def _ops(path):
    m = onnx.load(str(path / "model.onnx"))
    return m, {n.op_type for n in m.graph.node}


def _mean_logprob(d, ids):
    from edgekit.generation.runtime import DecoderSession

    return float(DecoderSession(d).token_logprobs(ids).mean())


@pytest.mark.parametrize("algorithm", ["rtn", "hqq"])
def test_int4(tiny_decoder_onnx, tmp_path, algorithm):
    from edgekit.generation.quantize import quantize_int4

    out = quantize_int4(
        tiny_decoder_onnx, tmp_path / algorithm, algorithm=algorithm, block_size=32, accuracy_level=4
    ).parent
    m, ops = _ops(out)
    nbits = [n for n in m.graph.node if n.op_type == "MatMulNBits"]
    assert len(nbits) >= 2 * 7 + 1  # q, k, v, o, gate, up, down per layer, and the LM head
    for n in nbits:
        attrs = {a.name: a.i for a in n.attribute}
        assert attrs["bits"] == 4 and attrs["block_size"] == 32 and attrs["accuracy_level"] == 4
    assert (out / "model.onnx").stat().st_size < 0.5 * (tiny_decoder_onnx / "model.onnx").stat().st_size
    ids = np.arange(3, 131).reshape(2, 64)
    assert abs(_mean_logprob(out, ids) - _mean_logprob(tiny_decoder_onnx, ids)) < 0.05


def test_int8(tiny_decoder_onnx, tmp_path):
    from edgekit.generation.quantize import quantize_int8

    out = quantize_int8(tiny_decoder_onnx, tmp_path / "int8").parent
    _, ops = _ops(out)
    assert "DynamicQuantizeMatMul" in ops or "MatMulInteger" in ops
    ids = np.arange(3, 131).reshape(2, 64)
    assert abs(_mean_logprob(out, ids) - _mean_logprob(tiny_decoder_onnx, ids)) < 0.02


def test_8bit_weight_only(tiny_decoder_onnx, tmp_path):
    """bits 8: MatMulNBits at 8 bits (what ONNX Runtime GenAI's builder calls int8), closer to fp32 than 4 bits."""
    from edgekit.generation.quantize import quantize_int4

    out8 = quantize_int4(tiny_decoder_onnx, tmp_path / "b8", bits=8).parent
    out4 = quantize_int4(tiny_decoder_onnx, tmp_path / "b4", bits=4).parent
    m, _ = _ops(out8)
    assert {a.i for n in m.graph.node if n.op_type == "MatMulNBits" for a in n.attribute if a.name == "bits"} == {8}
    ids = np.arange(3, 131).reshape(2, 64)
    ref = _mean_logprob(tiny_decoder_onnx, ids)
    assert abs(_mean_logprob(out8, ids) - ref) < abs(_mean_logprob(out4, ids) - ref) + 1e-6
