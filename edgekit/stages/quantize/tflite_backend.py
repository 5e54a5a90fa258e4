"""TFLite backend of the quantize stage: ai-edge-quantizer (AEQ).

* ``dynamic``: AEQ's dynamic int8 recipe (int8 weights, activations
  quantized at run time), every supported op, embeddings included.
* ``weight_only``: int8 weights, float compute.
* ``fp16``: weights cast to float16.
* ``static``: the selective scheme measured best on MiniLM: FULLY_CONNECTED
  ops static int8 (weights and activations, calibrated on fixed-length text),
  the ops matching ``exclude`` (by default the FFN output projection, whose
  input is the GELU output with outliers) dynamic int8 when ``fallback:
  dynamic``, the embedding tables int8, and LayerNorm, softmax and the mask
  bias left in float. Quantizing every op collapses the output (cosine
  0.30-0.34); FC-only without the exclusion gave cosine 0.952.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

from edgekit.plugins import get_runtime
from edgekit.recipe.config import CalibrationConfig, QuantizeConfig
from edgekit.stages.quantize import candidate, exclude_patterns

METHODS = ("dynamic", "static", "weight_only", "fp16")
MODEL_FILE = "model.tflite"


@contextlib.contextmanager
def _quiet():
    """AEQ prints progress bars to stderr and notes to stdout while it calibrates and quantizes."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def _calibration_data(config: QuantizeConfig, src: Path, ctx) -> dict:
    """One list of single-text samples per signature, each padded to that signature's bucket."""
    session = get_runtime("litert").load(src, threads=ctx.threads)
    c = config.calibration
    return {
        name: ctx.calibration_batches(session.inputs, c.samples, 1, seq or c.seq_len)
        for name, seq in session.signatures
    }


def op_scopes(model_path: Path) -> list[tuple[str | None, str]]:
    """(kind, scope) of every op of a .tflite as ai-edge-quantizer names them: ``FULLY_CONNECTED``..., and the
    output tensor names its scope regexes are matched against."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as tfl

    model = tfl.read_model(Path(model_path))
    codes = model.operatorCodes
    return [
        (tfl.TFL_OP_CODE_TO_NAME.get(codes[op.opcodeIndex].builtinCode), tfl.get_op_scope(op, graph.tensors))
        for graph in model.subgraphs
        for op in graph.operators
    ]


def matching_ops(scopes: list[tuple[str | None, str]], pattern: str, op_names: list[str]) -> int:
    """How many ops of the given kinds the quantizer's scope regex ``pattern`` selects (``re.search``, as
    ai-edge-quantizer applies it)."""
    import re

    return sum(1 for kind, scope in scopes if kind in op_names and re.search(pattern, scope))


def modern_opcodes(src: Path, tmp: Path) -> Path:
    """``src``, or a copy of it in ``tmp`` whose operator codes are in the field today's readers read.

    Flatbuffers written before TFLite 2.4 (MediaPipe's models, among many) keep an op's code in
    ``deprecated_builtin_code`` and leave ``builtin_code`` 0 (ADD). LiteRT's interpreter reads the larger
    of the two; ai-edge-quantizer reads ``builtin_code`` alone, takes every op for an ADD and quantizes
    nothing. The copy carries the code in both fields; nothing else changes."""
    import flatbuffers

    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        from tflite_runtime import schema_py_generated as schema  # type: ignore[no-redef]

    buf = src.read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(buf, 0))
    stale = [c for c in model.operatorCodes or [] if c.deprecatedBuiltinCode > c.builtinCode]
    if not stale:
        return src
    for code in stale:
        code.builtinCode = code.deprecatedBuiltinCode
    builder = flatbuffers.Builder(len(buf) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    fixed = tmp / src.name
    fixed.write_bytes(builder.Output())
    return fixed


def quantize(config: QuantizeConfig, src: Path, out: Path, ctx) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        return _quantize(config, modern_opcodes(Path(src), Path(tmp)), out, ctx)


def _quantize(config: QuantizeConfig, src: Path, out: Path, ctx) -> dict:
    from ai_edge_quantizer import quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import QuantGranularity
    from ai_edge_quantizer.qtyping import TFLOperationName as Op

    exclude_patterns(config)  # fail early on a bad pattern; AEQ takes them as strings
    granularity = QuantGranularity.CHANNELWISE if config.per_channel else QuantGranularity.TENSORWISE
    q = quantizer.Quantizer(str(src))
    scheme: list[str] = []
    if config.method == "dynamic":
        q.load_quantization_recipe(recipe.dynamic_wi8_afp32())
        scheme.append("all supported ops: dynamic int8")
    elif config.method == "weight_only":
        q.load_quantization_recipe(recipe.weight_only_wi8_afp32())
        scheme.append("all supported ops: int8 weights, float compute")
    elif config.method == "fp16":
        q.add_weight_only_config(".*", Op.ALL_SUPPORTED, 16, algorithm_key=AlgorithmName.FLOAT_CASTING)
        scheme.append("all supported ops: float16 weights")
    else:
        scopes = op_scopes(src)  # read once: the scheme counts the ops each rule takes
        ops = [getattr(Op, o) for o in (config.op_types or ["FULLY_CONNECTED"])]
        for op in ops:
            q.add_static_config(".*", op, activation_num_bits=8, weight_num_bits=8, weight_granularity=granularity)
            scheme.append(f"{op.name}: static int8")
        for pattern in config.exclude:
            for op in ops:
                if config.fallback == "dynamic":
                    q.add_dynamic_config(pattern, op, num_bits=8, granularity=granularity)
                else:
                    q.add_weight_only_config(pattern, op, 32, algorithm_key=AlgorithmName.NO_QUANTIZE)
            scheme.append(f"{pattern}: {config.fallback} ({matching_ops(scopes, pattern, [o.name for o in ops])} ops)")
        tables = matching_ops(scopes, ".*", [Op.EMBEDDING_LOOKUP.name]) if config.quantize_embeddings else 0
        if tables:  # text models; a ViT has none
            q.add_dynamic_config(".*", Op.EMBEDDING_LOOKUP, num_bits=8, granularity=granularity)
            scheme.append(f"EMBEDDING_LOOKUP: int8 table ({tables} ops)")
    with _quiet():
        if q.need_calibration:
            calib = q.calibrate(_calibration_data(config, src, ctx), num_threads=ctx.threads)
            result = q.quantize(calib, enable_progress_report=False)
        else:
            result = q.quantize(enable_progress_report=False)
        result.export_model(str(out), overwrite=True)
    return {"scheme": scheme}


# --- the search stage's candidates ------------------------------------------------------

# the FFN output projection: BERT-style encoders (MiniLM) and ViT, as ai-edge-quantizer scopes name it
FFN_OUTPUT = "BertOutput_output/.*Linear_dense|MLP_mlp/.*Linear_fc2"


def space() -> list[QuantizeConfig]:
    """From an fp32 artifact: AEQ dynamic int8, weight-only int8, fp16, and static int8 (fully-connected
    ops static, the FFN output projection dynamic or static)."""
    return [
        candidate("dynamic", method="dynamic"),
        candidate("weight-only", method="weight_only"),
        candidate(
            "static-ffn-output-dynamic",
            method="static",
            exclude=[FFN_OUTPUT],
            fallback="dynamic",
            calibration=CalibrationConfig(samples=64),
        ),
        candidate("static-all-fc", method="static", calibration=CalibrationConfig(samples=64)),
        candidate("fp16", method="fp16"),
    ]
