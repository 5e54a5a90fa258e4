"""The candidates the search tries, per format, cheapest and most promising first.

ONNX (from an fp32 artifact, best the fused one): dynamic int8 variants
(per-channel/per-tensor weights, with and without the embedding tables, with
Attention left in float), static QDQ with three calibration methods and both
activation types (the FFN output projection kept in float, as measured on
MiniLM), fp16, and, added during the search, dynamic int8 with the k most
sensitive layers kept in float (NNCF / AIMET style fallback, sensitivity from
the per-layer error of the first dynamic candidate).

TFLite (from an fp32 artifact): AEQ dynamic int8, weight-only int8, fp16, and
static int8 (fully-connected ops static, the FFN output projection dynamic or
static).
"""

from __future__ import annotations

import re

from edgekit.recipe.config import CalibrationConfig, QuantizeConfig

# the FFN output projection: BERT-style encoders (MiniLM) and ViT
FFN_OUTPUT_ONNX = r"(layer\.\d+/output/dense|layers\.\d+/mlp/fc2)/MatMul"
FFN_OUTPUT_TFLITE = "BertOutput_output/.*Linear_dense|MLP_mlp/.*Linear_fc2"
_CAL = CalibrationConfig(samples=128)


def _q(name: str, **kw) -> QuantizeConfig:
    return QuantizeConfig(kind="quantize", name=name, **kw)


def onnx_space() -> list[QuantizeConfig]:
    return [
        _q("dynamic", method="dynamic"),
        _q("dynamic-per-tensor", method="dynamic", per_channel=False),
        _q("dynamic-float-embeddings", method="dynamic", quantize_embeddings=False),
        _q(
            "dynamic-float-attention",
            method="dynamic",
            op_types=["MatMul", "Gemm", "EmbedLayerNormalization", "Gather"],
        ),
        _q("static-minmax", method="static", exclude=[FFN_OUTPUT_ONNX], calibration=_CAL),
        _q(
            "static-entropy",
            method="static",
            exclude=[FFN_OUTPUT_ONNX],
            calibration=CalibrationConfig(samples=128, method="entropy"),
        ),
        _q(
            "static-percentile",
            method="static",
            exclude=[FFN_OUTPUT_ONNX],
            calibration=CalibrationConfig(samples=128, method="percentile"),
        ),
        _q("static-s8s8", method="static", activation_type="int8", exclude=[FFN_OUTPUT_ONNX], calibration=_CAL),
        _q("static-all-matmul", method="static", calibration=_CAL),
        _q("fp16", method="fp16"),
    ]


def tflite_space() -> list[QuantizeConfig]:
    return [
        _q("dynamic", method="dynamic"),
        _q("weight-only", method="weight_only"),
        _q(
            "static-ffn-output-dynamic",
            method="static",
            exclude=[FFN_OUTPUT_TFLITE],
            fallback="dynamic",
            calibration=CalibrationConfig(samples=64),
        ),
        _q("static-all-fc", method="static", calibration=CalibrationConfig(samples=64)),
        _q("fp16", method="fp16"),
    ]


SPACES = {"onnx": onnx_space, "tflite": tflite_space}


def fallback_candidates(ranked_nodes: list[str], count: int) -> list[QuantizeConfig]:
    """Dynamic int8 keeping the 1, 2, 4, ... most sensitive nodes in float (``count`` candidates)."""
    out: list[QuantizeConfig] = []
    k = 1
    while len(out) < count and k <= len(ranked_nodes):
        names = ranked_nodes[:k]
        out.append(_q(f"dynamic-float-top{k}", method="dynamic", exclude=[f"^{re.escape(n)}$" for n in names]))
        k *= 2
    return out


def sensitivity(rows: list[dict], model_path) -> list[str]:
    """Quantizable nodes (MatMul, Gemm, Attention) ranked by the SNR they lose: output SNR below
    the SNR of their input, from a per-layer diff of a quantized candidate against fp32."""
    import onnx

    snr = {r["tensor"]: r["snr_db"] for r in rows}
    graph = onnx.load(str(model_path), load_external_data=False).graph
    drops = []
    for node in graph.node:
        if node.op_type not in ("MatMul", "Gemm", "Attention") or not node.output or node.output[0] not in snr:
            continue
        before = snr.get(node.input[0], float("inf"))
        if before == float("inf"):
            before = max((v for v in snr.values() if v != float("inf")), default=0.0)
        drops.append((before - snr[node.output[0]], node.name))
    return [name for _, name in sorted(drops, reverse=True)]
