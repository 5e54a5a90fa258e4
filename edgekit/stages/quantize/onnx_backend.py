"""ONNX backend of the quantize stage: onnxruntime.quantization.

Dynamic: weights int8 per channel, activations quantized at run time; the
fused Attention and EmbedLayerNormalization ops become QAttention and
QEmbedLayerNormalization, so the word-embedding table is stored in int8.

fp16: every float tensor in float16 (inputs and outputs unchanged), for GPU
execution providers; ONNX Runtime's CPU provider runs it too, slowly.

Static: QDQ format, U8S8 (uint8 activations, int8 per-channel weights), only
MatMul/Gemm (quantizing the attention-mask Add/Where collapses the output),
calibrated on fixed-length padded text batches, embeddings stored in int8.
Nodes matching the config's ``exclude`` patterns stay in float: on MiniLM the
second FFN MatMul of each layer (its input is the GELU output, with outliers
that a uint8 range cannot hold) took mean cosine from 0.993 to 0.937.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from edgekit.errors import GateFailed, RecipeError
from edgekit.plugins import get_runtime
from edgekit.recipe.config import CalibrationConfig, QuantizeConfig
from edgekit.stages.quantize import candidate, exclude_patterns

_EMBEDDING_OPS = ("EmbedLayerNormalization", "Gather")
_DYNAMIC_OPS = ("MatMul", "Gemm", "Attention")
_STATIC_OPS = ("MatMul", "Gemm")


def _qtype(name: str):
    from onnxruntime.quantization import QuantType

    return {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}[name]


def op_types(config: QuantizeConfig) -> list[str]:
    if config.op_types is not None:
        return list(config.op_types)
    base = list(_DYNAMIC_OPS if config.method == "dynamic" else _STATIC_OPS)
    return base + (list(_EMBEDDING_OPS) if config.quantize_embeddings else [])


class _TextReader:
    """Calibration batches: fixed-length padded, as histogram methods need."""

    def __init__(self, ctx, specs, config: QuantizeConfig) -> None:
        c = config.calibration
        self._batches = ctx.calibration_batches(specs, c.samples, c.batch_size, c.seq_len)
        self._it = iter(self._batches)

    def get_next(self):
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self._batches)


def excluded_nodes(config: QuantizeConfig, model_path: Path) -> list[str]:
    """Names of the nodes matching any of the config's ``exclude`` patterns."""
    patterns = exclude_patterns(config)
    if not patterns:
        return []
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [n.name for n in graph.node if any(p.search(n.name) for p in patterns)]


@contextlib.contextmanager
def working_directory(path: str | Path):
    """Run a library call whose temporaries land in the current directory inside ``path`` instead."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _quantize_static(config: QuantizeConfig, src: Path, out: Path, ctx, excluded: list[str]) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    specs = get_runtime("onnxruntime").load(src, threads=ctx.threads).inputs
    reader = type("Reader", (_TextReader, CalibrationDataReader), {})(ctx, specs, config)
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[config.calibration.method]
    with tempfile.TemporaryDirectory() as tmp:
        # symbolic shape inference types the outputs of contrib ops (SkipLayerNormalization, ...);
        # without it the quantizer silently leaves activations in float
        pre = Path(tmp) / "pre.onnx"
        with working_directory(tmp):  # on failure ORT saves sym_shape_infer_temp.onnx (+ .data) in the cwd
            try:
                quant_pre_process(str(src), str(pre), skip_optimization=True)
            except Exception:  # noqa: BLE001 - symbolic inference stops (a bare Exception) or asserts on a graph
                # an unoptimized export (or a third party's graph) has no contrib ops: ONNX's own shape
                # inference types every tensor
                try:
                    quant_pre_process(str(src), str(pre), skip_optimization=True, skip_symbolic_shape=True)
                except Exception as err:  # noqa: BLE001 - the quantizer's own failure, on one line
                    raise GateFailed(
                        f"quantize (onnx static): ONNX Runtime's quantizer cannot prepare this graph "
                        f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else 'no message'})"
                    ) from None
        quantize_static(
            str(pre),
            str(out),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=config.per_channel,
            activation_type=_qtype(config.activation_type),
            weight_type=_qtype(config.weight_type),
            op_types_to_quantize=op_types(config),
            nodes_to_exclude=excluded,
            calibrate_method=method,
            extra_options={
                "CalibPercentile": config.calibration.percentile,
                "DefaultTensorType": onnx.TensorProto.FLOAT,
                "CalibTensorRangeSymmetric": False,
            },
        )


def _quantize_dynamic(config: QuantizeConfig, src: Path, out: Path, excluded: list[str]) -> None:
    import onnx
    from onnxruntime.quantization import quantize_dynamic

    quantize_dynamic(
        str(src),
        str(out),
        per_channel=config.per_channel,
        weight_type=_qtype(config.weight_type),
        op_types_to_quantize=op_types(config),
        nodes_to_exclude=excluded,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def _convert_fp16(src: Path, out: Path) -> None:
    """Weights and activations in float16, inputs and outputs kept as declared (for GPUs)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True), str(out))


METHODS = ("dynamic", "static", "fp16")
MODEL_FILE = "model.onnx"


def quantize(config: QuantizeConfig, src: Path, out: Path, ctx) -> dict:
    if config.fallback != "float":
        raise RecipeError("stage quantize: ONNX keeps excluded nodes in float only (fallback: float)")
    if config.method == "fp16":
        _convert_fp16(src, out)
        return {"scheme": ["float16 weights and activations; inputs and outputs as declared"]}
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        src = constants_as_initializers(src, Path(tmp))
        if config.per_channel:
            src = per_channel_opset(src, Path(tmp), notes)
            if notes and "per-tensor" in notes[-1]:
                config = config.model_copy(update={"per_channel": False})
        excluded = excluded_nodes(config, src)
        if config.method == "dynamic":
            _quantize_dynamic(config, src, out, excluded)
        else:
            _quantize_static(config, src, out, ctx, excluded)
    return {"quantized_op_types": op_types(config), "float_nodes": excluded, **({"notes": notes} if notes else {})}


PER_CHANNEL_OPSET = 13  # DequantizeLinear's per-channel ``axis`` arrived in opset 13


def per_channel_opset(src: Path, tmp: Path, notes: list[str]) -> Path:
    """``src``, or a copy in ``tmp`` converted to opset 13, where per-channel weights need it (a QDQ graph of
    an older opset with an ``axis`` on DequantizeLinear does not load). When ONNX's version converter cannot
    convert it, ``src`` as it is, and a note that its weights are quantized per tensor."""
    import onnx
    from onnx import version_converter

    model = onnx.load(str(src))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), PER_CHANNEL_OPSET)
    if opset >= PER_CHANNEL_OPSET:
        return src
    try:
        converted = version_converter.convert_version(model, PER_CHANNEL_OPSET)
        onnx.checker.check_model(converted)
    except Exception as err:  # noqa: BLE001 - the converter's own failure: per-tensor weights instead
        notes.append(f"opset {opset} could not be converted to {PER_CHANNEL_OPSET} ({type(err).__name__}): per-tensor")
        return src
    copy = tmp / f"opset{PER_CHANNEL_OPSET}-{src.name}"
    onnx.save(converted, str(copy))
    notes.append(f"opset {opset} converted to {PER_CHANNEL_OPSET} for per-channel weights")
    return copy


def constants_as_initializers(src: Path, tmp: Path) -> Path:
    """``src``, or a copy in ``tmp`` whose top-level ``Constant`` nodes are initializers.

    Some exporters (Paddle's, older TensorFlow ones) keep every weight in a Constant node; ONNX Runtime's
    quantizer only quantizes weights that are initializers, so it left those models' weights float (PP-OCR:
    0.99x the size after "int8"). The copy computes the same function."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    weights = [
        n for n in graph.node if n.op_type == "Constant" and [a.name for a in n.attribute] == ["value"] and n.output
    ]
    if not any(len(n.attribute[0].t.dims) >= 2 for n in weights):  # no weight matrix among them: as it is
        return src
    for node in weights:
        tensor = numpy_helper.from_array(numpy_helper.to_array(node.attribute[0].t), node.output[0])
        graph.initializer.append(tensor)
        graph.node.remove(node)
    copy = tmp / src.name
    onnx.save(model, str(copy))
    return copy


# --- the search stage's candidates ------------------------------------------------------

# the FFN output projection: BERT-style encoders (MiniLM) and ViT
FFN_OUTPUT = r"(layer\.\d+/output/dense|layers\.\d+/mlp/fc2)/MatMul"
_CAL = CalibrationConfig(samples=128)


def space() -> list[QuantizeConfig]:
    """From an fp32 artifact (best the fused one): dynamic int8 variants (per-channel/per-tensor weights,
    with and without the embedding tables, with Attention left in float), static QDQ with three calibration
    methods and both activation types (the FFN output projection kept in float, as measured on MiniLM), and
    fp16. The search adds dynamic int8 with the most sensitive layers kept in float (:func:`sensitivity`)."""
    return [
        candidate("dynamic", method="dynamic"),
        candidate("dynamic-per-tensor", method="dynamic", per_channel=False),
        candidate("dynamic-float-embeddings", method="dynamic", quantize_embeddings=False),
        candidate(
            "dynamic-float-attention",
            method="dynamic",
            op_types=["MatMul", "Gemm", "EmbedLayerNormalization", "Gather"],
        ),
        candidate("static-minmax", method="static", exclude=[FFN_OUTPUT], calibration=_CAL),
        candidate(
            "static-entropy",
            method="static",
            exclude=[FFN_OUTPUT],
            calibration=CalibrationConfig(samples=128, method="entropy"),
        ),
        candidate(
            "static-percentile",
            method="static",
            exclude=[FFN_OUTPUT],
            calibration=CalibrationConfig(samples=128, method="percentile"),
        ),
        candidate("static-s8s8", method="static", activation_type="int8", exclude=[FFN_OUTPUT], calibration=_CAL),
        candidate("static-all-matmul", method="static", calibration=_CAL),
        candidate("fp16", method="fp16"),
    ]


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
