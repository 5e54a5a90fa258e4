"""Quantize stage: one algorithm config, one backend per artifact format.

The stage decides what to do from the config; the backend for the parent's
format does it (``onnx_backend`` for ONNX Runtime, ``tflite_backend`` for
ai-edge-quantizer). Each format names its backend module in its declaration
(:class:`edgekit.formats.Format` ``quantizer``); a backend module has
``METHODS``, ``MODEL_FILE`` and ``quantize(config, src, out, ctx)``, and may
have ``space()`` (the search stage's candidates, cheapest and most promising
first) and ``sensitivity(rows, model_path)`` (its float-fallback ranking).
Every result is checked against the PyTorch reference on held-out texts and
refused if its output collapsed.
"""

from __future__ import annotations

import re

import numpy as np

from edgekit import formats
from edgekit.errors import GateFailed, RecipeError
from edgekit.logs import quiet_logging
from edgekit.measure.fidelity import cosine_rows
from edgekit.plugins import runtime_for_format
from edgekit.recipe.config import QuantizeConfig
from edgekit.stages import StageResult, register, require_input

_PRECISION = {"dynamic": "int8", "static": "int8", "weight_only": "int8", "fp16": "fp16"}


def backend(fmt: str):
    """The quantize backend module for ``fmt`` models, as the format's declaration names it."""
    module = formats.get(fmt).quantize_backend()
    if module is None:
        raise RecipeError(f"stage quantize: no quantize backend for {fmt} models")
    return module


def quantizable() -> frozenset[str]:
    """The formats that have a quantize backend."""
    return frozenset(f.name for f in formats.all_formats() if f.quantizer)


def candidate(name: str, **kw) -> QuantizeConfig:
    """A quantize config named ``name`` (a search-space candidate)."""
    return QuantizeConfig(kind="quantize", name=name, **kw)


def exclude_patterns(config: QuantizeConfig) -> list[re.Pattern]:
    """The config's ``exclude`` patterns, compiled; a bad one is a recipe error."""
    try:
        return [re.compile(p) for p in config.exclude]
    except re.error as err:
        raise RecipeError(
            f"stage quantize: exclude pattern {err.pattern!r} is not a valid regular expression"
        ) from None


def sanity(session, ctx, floor: float, what: str) -> dict:
    """Cosine to the reference on held-out texts; a collapse below ``floor`` fails the stage."""
    coss = []
    for feeds in ctx.parity_feeds(session):
        coss.append(cosine_rows(ctx.reference_outputs(feeds), ctx.output_of(session.run(feeds), what)))
    cos = np.concatenate(coss)
    result = {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()), "floor": floor}
    if not np.isfinite(cos).all() or cos.mean() < floor:
        raise GateFailed(f"{what}: output collapsed (mean cosine {cos.mean():.4f} < floor {floor}); not promoted")
    return result


def _default_name(c: QuantizeConfig, fmt: str) -> str:
    return f"{fmt}-fp16" if c.method == "fp16" else f"{fmt}-{_PRECISION[c.method]}-{c.method}"


def methods(fmt: str) -> tuple[str, ...]:
    """The quantization methods the backend for ``fmt`` models has."""
    return backend(fmt).METHODS


def _refuses(config: QuantizeConfig, fmt: str) -> str | None:
    """Why ``config`` cannot quantize a ``fmt`` model: its method is not one the format's backend has."""
    if config.method not in methods(fmt):
        return f"method {config.method!r} is not available for {fmt} (choose from {', '.join(methods(fmt))})"
    if config.max_fidelity_drop is not None:
        if not getattr(backend(fmt), "ACCURACY_CONTROL", False) or config.method != "static":
            return "max_fidelity_drop (accuracy-controlled static int8) is available for OpenVINO static only"
        if config.max_fidelity_drop == "budget":
            return "max_fidelity_drop: budget takes a search budget's min_fidelity; in a quantize stage give a number"
    return None


@register(
    QuantizeConfig, _default_name, takes=quantizable(), precision=lambda c: _PRECISION[c.method], refuses=_refuses
)
def run_quantize(config: QuantizeConfig, parent, ctx, out_dir) -> StageResult:
    require_input(config, parent)
    module = backend(parent.format)
    out = out_dir / module.MODEL_FILE
    with quiet_logging():
        extra = module.quantize(config, parent.model_path, out, ctx)
    made = formats.get(parent.format).weights_precision(out)
    if made not in (_PRECISION[config.method], "unknown"):  # the backend found no op it quantizes
        ops = ", ".join(config.op_types) if config.op_types else "its default op types"
        raise GateFailed(
            f"quantize ({parent.format} {config.method}): nothing was quantized: the model is still {made} "
            f"({ops}; a convolutional model needs op_types with Conv / CONV_2D, or method static); not promoted"
        )
    try:
        session = runtime_for_format(parent.format).load(out, threads=ctx.threads)
    except Exception as err:  # noqa: BLE001 - the backend wrote a model its own runtime refuses
        raise GateFailed(
            f"quantize ({parent.format} {config.method}): the quantized model does not load "
            f"({str(err).splitlines()[0][:240]}); not promoted"
        ) from None
    validation = sanity(session, ctx, config.min_cosine, f"quantize ({parent.format} {config.method})")
    return StageResult(
        format=parent.format,
        precision=_PRECISION[config.method],
        model_file=module.MODEL_FILE,
        validation=validation,
        extra=extra,
        session=session,
    )
