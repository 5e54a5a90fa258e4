"""Post-training int8 quantization of ONNX models with onnxruntime.quantization.

Dynamic: weights int8 per channel, activations quantized at run time; the
fused Attention and EmbedLayerNormalization ops become QAttention and
QEmbedLayerNormalization, so the word-embedding table is stored in int8.

Static: QDQ format, U8S8 (uint8 activations, int8 per-channel weights), only
MatMul/Gemm (quantizing the attention-mask Add/Where collapses the output),
calibrated on fixed-length padded text batches, embeddings stored in int8.
Nodes matching the config's ``exclude`` patterns stay in float: on MiniLM the
second FFN MatMul of each layer (its input is the GELU output, with outliers
that a uint8 range cannot hold) took mean cosine from 0.993 to 0.937.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
import tempfile
from pathlib import Path

import numpy as np

from edgekit.errors import GateFailed, RecipeError
from edgekit.feeds import tokenize
from edgekit.fidelity import cosine_rows
from edgekit.plugins import get_runtime
from edgekit.recipe import QuantizeConfig
from edgekit.stages import StageResult, register

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
        texts = ctx.data.calibration[: config.calibration.samples]
        bs, seq = config.calibration.batch_size, config.calibration.seq_len
        self._batches = [
            tokenize(ctx.checkpoint.tokenizer, texts[i : i + bs], specs, seq, fixed=True)
            for i in range(0, len(texts), bs)
        ]
        self._it = iter(self._batches)

    def get_next(self):
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self._batches)


def excluded_nodes(config: QuantizeConfig, model_path: Path) -> list[str]:
    """Names of the nodes matching any of the config's ``exclude`` patterns."""
    if not config.exclude:
        return []
    import onnx

    try:
        patterns = [re.compile(p) for p in config.exclude]
    except re.error as err:
        raise RecipeError(f"stage quantize: exclude pattern {err.pattern!r} is not a valid regular expression") from None
    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [n.name for n in graph.node if any(p.search(n.name) for p in patterns)]


def _quantize_static(config: QuantizeConfig, src: Path, out: Path, ctx) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    specs = get_runtime("onnxruntime").load(src, threads=ctx.threads).inputs
    reader = type("Reader", (_TextReader, CalibrationDataReader), {})(ctx, specs, config)
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[config.calibration.method]
    with tempfile.TemporaryDirectory() as tmp:
        # symbolic shape inference types the outputs of contrib ops (SkipLayerNormalization, ...);
        # without it the quantizer silently leaves activations in float
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_optimization=True)
        quantize_static(
            str(pre), str(out), reader,
            quant_format=QuantFormat.QDQ,
            per_channel=config.per_channel,
            activation_type=_qtype(config.activation_type),
            weight_type=_qtype(config.weight_type),
            op_types_to_quantize=op_types(config),
            nodes_to_exclude=excluded_nodes(config, pre),
            calibrate_method=method,
            extra_options={"CalibPercentile": config.calibration.percentile,
                           "DefaultTensorType": onnx.TensorProto.FLOAT,
                           "CalibTensorRangeSymmetric": False},
        )


def _quantize_dynamic(config: QuantizeConfig, src: Path, out: Path) -> None:
    import onnx
    from onnxruntime.quantization import quantize_dynamic

    quantize_dynamic(
        str(src), str(out),
        per_channel=config.per_channel,
        weight_type=_qtype(config.weight_type),
        op_types_to_quantize=op_types(config),
        nodes_to_exclude=excluded_nodes(config, src),
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def _sanity(session, ctx, floor: float, what: str) -> dict:
    """Cosine to the reference on held-out texts; a collapse below ``floor`` fails the stage."""
    out_name = ctx.checkpoint.task_spec.output_name
    coss = []
    for feeds in ctx.parity_feeds(session.inputs):
        coss.append(cosine_rows(ctx.reference_outputs(feeds), session.run(feeds)[out_name]))
    cos = np.concatenate(coss)
    result = {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()), "floor": floor}
    if not np.isfinite(cos).all() or cos.mean() < floor:
        raise GateFailed(f"{what}: output collapsed (mean cosine {cos.mean():.4f} < floor {floor}); not promoted")
    return result


@contextmanager
def _quiet_logging():
    """onnxruntime.quantization logs advice through the root logger; keep it out of the user's terminal."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


@register(QuantizeConfig, lambda c: f"onnx-int8-{c.method}")
def run_quantize(config: QuantizeConfig, parent, ctx, out_dir) -> StageResult:
    if parent.format != "onnx":
        raise RecipeError(f"stage quantize reads ONNX, but its input {parent.name!r} is {parent.format}")
    out = out_dir / "model.onnx"
    with _quiet_logging():
        if config.method == "dynamic":
            _quantize_dynamic(config, parent.model_path, out)
        else:
            _quantize_static(config, parent.model_path, out, ctx)
    session = get_runtime("onnxruntime").load(out, threads=ctx.threads)
    validation = _sanity(session, ctx, config.min_cosine, f"quantize ({config.method})")
    return StageResult(format="onnx", precision="int8", model_file="model.onnx", validation=validation,
                       extra={"quantized_op_types": op_types(config),
                              "float_nodes": excluded_nodes(config, parent.model_path)})
