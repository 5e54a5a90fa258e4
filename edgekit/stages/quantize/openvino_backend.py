"""OpenVINO backend of the quantize stage: NNCF post-training quantization of an IR model.

* ``static``: ``nncf.quantize`` with the transformer model type (SmoothQuant, the attention
  and normalisation patterns NNCF keeps in float, fast bias correction), calibrated on the
  task's calibration texts, one text per sample padded to ``calibration.seq_len`` (as the
  ONNX backend's static path). ``activation_type: uint8`` is NNCF's mixed preset
  (asymmetric activations), ``int8`` its performance preset (symmetric); weights are
  symmetric int8, per channel unless ``per_channel: false``; ``calibration.method`` picks
  the activation range estimator (``minmax``: NNCF's default for the preset, ``percentile``:
  mean of per-sample quantiles, ``entropy``: NNCF's histogram estimator). Nodes matching
  ``exclude`` stay in float; ``quantize_embeddings: false`` keeps the embedding tables
  (Gather) in float. On MiniLM: mean cosine 0.9977 to fp32 (min 0.993) on 200 held-out
  texts with the defaults, 0.9989 with the FFN output projection kept in float.
* ``dynamic``: ``nncf.compress_weights`` int8 (asymmetric, per channel), no calibration;
  the CPU plugin quantizes the activations of those MatMuls at run time, per group of 32
  values (``DYNAMIC_QUANTIZATION_GROUP_SIZE``, recorded in the IR's runtime options so the
  artifact runs the same on every OpenVINO version). On MiniLM: mean cosine 0.9994 (min
  0.9987), about 1.7x faster than fp32 (static int8: about 2.4x).
* ``weight_only``: the same int8 weights, run-time activation quantization off (group size
  0 recorded): float compute, a smaller file; on a CPU it ran slower than fp32 (MiniLM).
* ``fp16``: the IR's weights stored in float16 (the CPU plugin computes in float32).

NNCF and OpenVINO are imported when a model is quantized, with their usage telemetry off
(:func:`edgekit_runtimes.openvino_cpu.telemetry_hidden`, and ``NNCF_CI`` for NNCF): edgekit sends
nothing anywhere and writes nothing under ``~/intel``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import sys
from pathlib import Path

from edgekit.data.feeds import tokenize
from edgekit.errors import RecipeError, RuntimeUnavailableError
from edgekit.plugins import get_runtime
from edgekit.recipe.config import CalibrationConfig, QuantizeConfig
from edgekit.stages.quantize import candidate, exclude_patterns
from edgekit_runtimes.openvino_cpu import import_openvino, telemetry_hidden

METHODS = ("static", "dynamic", "weight_only", "fp16")
REQUIRES = ("nncf",)  # importable modules this backend needs (a recipe with skip_unavailable leaves it out)
ACCURACY_CONTROL = True  # static int8 takes max_fidelity_drop (nncf.quantize_with_accuracy_control)
VALIDATION_TEXTS = 64  # held-out texts the accuracy control measures the mean cosine on
MODEL_FILE = "model.xml"
# the CPU plugin's run-time activation quantization of int8-weight MatMuls: values per scale (0: off)
DYNAMIC_GROUP = {"dynamic": "32", "weight_only": "0"}


def _nncf():
    """``nncf``, imported with its telemetry off."""
    if importlib.util.find_spec("nncf") is None:
        raise RuntimeUnavailableError(
            "stage quantize: OpenVINO models are quantized with NNCF, which is not installed here "
            "(pip install 'edgekit-ml[openvino-compress]')"
        )
    os.environ.setdefault("NNCF_CI", "1")  # NNCF reads it once, when first imported: no events are sent
    import_openvino()
    if "nncf" not in sys.modules:
        with telemetry_hidden():  # NNCF_CI alone still leaves a client id and usage counts under ~/intel
            import nncf  # noqa: F401
    import nncf
    import nncf.telemetry.decorator
    import nncf.telemetry.wrapper

    stub = nncf.telemetry.wrapper.NNCFTelemetryStub()
    nncf.telemetry.wrapper.telemetry = nncf.telemetry.decorator.telemetry = stub  # imported earlier without it
    return nncf


@contextlib.contextmanager
def _quiet():
    """NNCF logs every ignored node and draws progress bars while it calibrates."""
    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def _refuse_unsupported(config: QuantizeConfig) -> None:
    if config.fallback != "float":
        raise RecipeError("stage quantize: OpenVINO keeps excluded nodes in float only (fallback: float)")
    if config.op_types is not None:
        raise RecipeError(
            "stage quantize: NNCF picks the ops to quantize itself (op_types is not used for OpenVINO); "
            "keep nodes in float with exclude"
        )
    if config.method == "static" and config.weight_type != "int8":
        raise RecipeError("stage quantize: NNCF quantizes weights to signed int8 (weight_type: int8)")


def excluded_nodes(config: QuantizeConfig, model) -> list[str]:
    """Friendly names of the model's ops matching any of the config's ``exclude`` patterns (``re.search``)."""
    patterns = exclude_patterns(config)
    if not patterns:
        return []
    names = [op.get_friendly_name() for op in model.get_ordered_ops()]
    return [n for n in names if any(p.search(n) for p in patterns)]


def _range_estimator(cal: CalibrationConfig):
    from nncf.quantization.range_estimator import (
        AggregatorType,
        RangeEstimatorParameters,
        RangeEstimatorParametersSet,
        StatisticsCollectorParameters,
        StatisticsType,
    )

    if cal.method == "minmax":
        return None  # NNCF's default for the preset
    if cal.method == "entropy":
        return RangeEstimatorParametersSet.HISTOGRAM
    q = StatisticsCollectorParameters(
        statistics_type=StatisticsType.QUANTILE,
        aggregator_type=AggregatorType.MEAN,
        quantile_outlier_prob=1 - cal.percentile / 100,
    )
    return RangeEstimatorParameters(min=q, max=q)


def _calibration(config: QuantizeConfig, src: Path, ctx) -> list[dict]:
    """One sample per text, padded to ``calibration.seq_len``, typed as the model's inputs."""
    specs = get_runtime("openvino").load(src, threads=ctx.threads).inputs
    texts = ctx.data.calibration[: config.calibration.samples]
    tok, seq = ctx.checkpoint.tokenizer, config.calibration.seq_len
    return [tokenize(tok, [t], specs, seq, fixed=True) for t in texts]


def _quantize_static(nncf, config: QuantizeConfig, model, src: Path, ctx, excluded: list[str]):
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, QuantizationParameters

    samples = _calibration(config, src, ctx)
    ignored_types = [] if config.quantize_embeddings else ["Gather"]
    advanced = AdvancedQuantizationParameters(
        weights_quantization_params=QuantizationParameters(per_channel=config.per_channel),
        activations_range_estimator_params=_range_estimator(config.calibration),
    )
    preset = nncf.QuantizationPreset.PERFORMANCE if config.activation_type == "int8" else nncf.QuantizationPreset.MIXED
    if config.max_fidelity_drop is not None:
        validation, validate = _cosine_validation(src, ctx)
        return nncf.quantize_with_accuracy_control(
            model,
            nncf.Dataset(samples),
            nncf.Dataset(validation),
            validate,
            max_drop=float(config.max_fidelity_drop),
            drop_type=nncf.DropType.ABSOLUTE,
            preset=preset,
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(samples),
            ignored_scope=nncf.IgnoredScope(names=excluded, types=ignored_types, validate=False),
            advanced_quantization_parameters=advanced,
        )
    return nncf.quantize(
        model,
        nncf.Dataset(samples),
        preset=preset,
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(samples),
        ignored_scope=nncf.IgnoredScope(names=excluded, types=ignored_types, validate=False),
        advanced_parameters=advanced,
    )


def _cosine_validation(src: Path, ctx):
    """NNCF's validation set and metric for accuracy control: held-out texts at their own lengths, and the mean
    cosine of a model's first output to the fp32 model's (per text too, which NNCF ranks layers by)."""
    import numpy as np

    from edgekit.measure.fidelity import cosine_rows

    session = get_runtime("openvino").load(src, threads=ctx.threads)
    texts = ctx.data.heldout[:VALIDATION_TEXTS]
    feeds = [tokenize(ctx.checkpoint.tokenizer, [t], session.inputs, 128) for t in texts]
    name = session.outputs[0].name
    reference = [session.run(f)[name].reshape(1, -1) for f in feeds]

    def validate(compiled, data) -> tuple[float, list[float]]:
        request = compiled.create_infer_request()
        scores = []
        for ref, f in zip(reference, data):
            out = np.asarray(request.infer(f)[compiled.outputs[0]]).reshape(1, -1)
            scores.append(float(cosine_rows(ref.astype(np.float64), out.astype(np.float64))[0]))
        return float(np.mean(scores)), scores

    return feeds, validate


def quantize(config: QuantizeConfig, src: Path, out: Path, ctx) -> dict:
    _refuse_unsupported(config)
    get_runtime("openvino")  # without openvino: a one-line RuntimeUnavailableError
    ov = import_openvino()

    if config.method == "fp16":
        ov.save_model(ov.Core().read_model(str(src)), str(out), compress_to_fp16=True)
        return {"scheme": ["float16 weights; the CPU plugin computes in float32"]}
    nncf = _nncf()
    model = ov.Core().read_model(str(src))
    excluded = excluded_nodes(config, model)
    with _quiet():
        if config.method in DYNAMIC_GROUP:
            model = nncf.compress_weights(
                model,
                mode=nncf.CompressWeightsMode.INT8_ASYM,
                ignored_scope=nncf.IgnoredScope(names=excluded, validate=False),
            )
            group = DYNAMIC_GROUP[config.method]
            model.set_rt_info(group, ["runtime_options", "DYNAMIC_QUANTIZATION_GROUP_SIZE"])
            scheme = [
                "MatMul and embedding weights: int8 (asymmetric, per channel)",
                f"activations: int8 at run time, per group of {group} values"
                if group != "0"
                else "activations: float (run-time quantization off)",
            ]
        else:
            model = _quantize_static(nncf, config, model, src, ctx, excluded)
            preset = "performance (symmetric)" if config.activation_type == "int8" else "mixed (asymmetric)"
            scheme = [
                *(
                    [f"NNCF accuracy control: float layers until cosine drop <= {config.max_fidelity_drop}"]
                    if config.max_fidelity_drop is not None
                    else []
                ),
                f"NNCF transformer PTQ: int8 weights and activations, {preset} activations, "
                f"{config.calibration.method} ranges from {min(config.calibration.samples, len(ctx.data.calibration))} "
                "calibration texts",
                *([] if config.quantize_embeddings else ["embedding tables: float"]),
            ]
        ov.save_model(model, str(out), compress_to_fp16=False)
    if excluded:
        scheme.append(f"{len(excluded)} nodes kept in float (exclude)")
    return {"scheme": scheme, "float_nodes": excluded, "nncf": nncf.__version__}


# --- the search stage's candidates ------------------------------------------------------

# the FFN output projection: BERT-style encoders (MiniLM) and ViT, as the ONNX graph (and so the IR) names it
FFN_OUTPUT = r"(layer\.\d+/output/dense|layers\.\d+/mlp/fc2)/MatMul"
_CAL = CalibrationConfig(samples=128)


def space() -> list[QuantizeConfig]:
    """From an fp32 IR: NNCF static int8 with the mixed preset (the transformer default) and with the
    performance preset (symmetric activations), int8 weights with run-time activation quantization (higher
    fidelity, slower), and static int8 with the FFN output projection kept in float (its GELU outliers).
    Weight-only int8 is not tried: on a CPU it ran slower than fp32."""
    return [
        candidate("nncf-mixed", method="static", calibration=_CAL),
        candidate("nncf-performance", method="static", activation_type="int8", calibration=_CAL),
        candidate("dynamic", method="dynamic"),
        candidate("nncf-ffn-output-float", method="static", exclude=[FFN_OUTPUT], calibration=_CAL),
        candidate("nncf-accuracy-control", method="static", calibration=_CAL, max_fidelity_drop="budget"),
    ]
