"""ExecuTorch backend of the quantize stage: torchao's PT2E flow with ExecuTorch's XNNPACK quantizer.

An XNNPACK-delegated ``.pte`` cannot be quantized after the fact: its weights are packed inside the delegate.
So the stage goes back to the checkpoint the fp32 program was exported from (the recipe's PyTorch model),
captures it as the export did, quantizes the graph, and lowers it again (:func:`edgekit_converters.
executorch_export.lower`); the result is checked against PyTorch like every quantized artifact.

* ``dynamic``: int8 per-channel weights of the linear layers, activations quantized at run time (XNNPACK's
  dynamically quantized fully-connected kernels); two texts run through the graph so the weight observers
  record their scales, no activation calibration.
* ``static``: int8 weights and activations, calibrated on the calibration texts (``calibration.samples``,
  padded to ``calibration.seq_len``).

A model file (an ``.pte`` edgekit did not export) has no checkpoint behind it and is refused.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import RecipeError
from edgekit.recipe.config import CalibrationConfig, QuantizeConfig
from edgekit.stages.quantize import candidate

METHODS = ("dynamic", "static")
MODEL_FILE = "model.pte"
REQUIRES = ("executorch",)


def quantize(config: QuantizeConfig, src: Path, out: Path, ctx) -> dict:
    if getattr(ctx, "checkpoint", None) is None:
        raise RecipeError(
            "quantize (executorch): an ExecuTorch program is quantized from the checkpoint it was exported from; "
            "a .pte file on its own cannot be (its weights are packed inside the XNNPACK delegate)"
        )
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from edgekit_converters.executorch_export import lower

    dynamic = config.method == "dynamic"
    # linear layers only: quantizing every op (the mask bias, softmax, LayerNorm) collapsed MiniLM (cosine 0.30)
    quantizer = XNNPACKQuantizer().set_module_type(
        torch.nn.Linear, get_symmetric_quantization_config(is_per_channel=config.per_channel, is_dynamic=dynamic)
    )
    c = config.calibration
    ckpt = ctx.checkpoint

    def prepare(graph, names: list[str]):
        from edgekit_runtimes.base import TensorSpec

        prepared = prepare_pt2e(graph, quantizer)
        specs = [TensorSpec(n, "int32", (1, None)) for n in names]
        # static: calibrate; dynamic: one pass, which the weight observers need to record their scales
        samples = 2 if dynamic else c.samples
        for feeds in ctx.calibration_batches(specs, samples, 1, c.seq_len):  # the program's batch is 1
            prepared(*(torch.from_numpy(feeds[n]) for n in names))
        return convert_pt2e(prepared)

    lower(ckpt, out, precision="int8", prepare=prepare)
    scheme = "linear layers: int8 per-channel weights, " + (
        "activations quantized at run time" if dynamic else f"static int8 activations ({c.samples} texts)"
    )
    return {"scheme": [scheme], "quantizer": "torchao PT2E, ExecuTorch XNNPACKQuantizer"}


def space() -> list[QuantizeConfig]:
    """From an fp32 program: dynamic int8 (linear layers), then static int8 calibrated on 64 texts."""
    return [
        candidate("dynamic", method="dynamic"),
        candidate("static", method="static", calibration=CalibrationConfig(samples=64)),
    ]
