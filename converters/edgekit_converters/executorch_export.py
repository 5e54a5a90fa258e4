"""PyTorch -> ExecuTorch (``model.pte``) lowered to the XNNPACK delegate, batch 1 with a dynamic sequence axis.

The task model is the one the TFLite export uses (int32 token inputs, the attention mask turned into an
additive bias inside the graph), captured with ``torch.export`` at batch 1 with the sequence axis dynamic up
to the model's positions (at most 512; XNNPACK's reshape takes one dynamic dimension, so the batch is
fixed: measured, a dynamic batch and sequence fail to lower), then
``to_edge_transform_and_lower`` with ``XnnpackPartitioner`` and ``to_executorch``. The quantize stage's
ExecuTorch backend goes through the same path with torchao's PT2E XNNPACK quantizer between capture and
lowering (:func:`lower`). ``model.json`` beside the program names its inputs and outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgekit_converters.base import Converter, quiet_export

MAX_SEQ = 512
EXAMPLE_SEQ = 32


def capture(ckpt):
    """The task module, example inputs and dynamic shapes for ``torch.export`` (text models only)."""
    import torch
    from torch.export import Dim

    from edgekit_converters.tflite_export import build_module

    module = build_module(ckpt)
    names = list(ckpt.input_names)
    example = tuple(
        torch.ones((1, EXAMPLE_SEQ), dtype=torch.int32)
        if n == "attention_mask"
        else torch.zeros((1, EXAMPLE_SEQ), dtype=torch.int32)
        for n in names
    )
    longest = min(MAX_SEQ, int(ckpt.max_positions or MAX_SEQ))
    seq = Dim("sequence", min=2, max=longest)
    dynamic = tuple({1: seq} for _ in names)
    return module, names, example, dynamic, longest


def lower(ckpt, out: Path, precision: str = "fp32", prepare=None) -> Path:
    """Capture the checkpoint's task model, optionally quantize it (``prepare(graph_module) -> converted
    graph module``, torchao PT2E), lower it to XNNPACK and write ``out`` (``model.pte``) and its
    ``model.json``."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from torch.export import export

    module, names, example, dynamic, longest = capture(ckpt)
    with quiet_export(), torch.no_grad():
        if prepare is not None:
            module = prepare(export(module, example, dynamic_shapes=dynamic).module(), names)
        program = export(module, example, dynamic_shapes=dynamic)
        outputs = {n: t.dim() for n, t in module(*example).items()}
        lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
    out.write_bytes(lowered.buffer)
    spec = {
        "inputs": [{"name": n, "dtype": "int32", "shape": [1, None]} for n in names],
        "outputs": [{"name": n, "dtype": "float32", "shape": [None] * rank} for n, rank in outputs.items()],
        "max_shape": {n: [1, longest] for n in names},
        "precision": precision,
        "delegate": "XnnpackBackend",
    }
    out.with_suffix(".json").write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    return out


class ExecuTorchConverter(Converter):
    name = "executorch"
    format = "executorch"
    requires = ("executorch",)
    model_file = "model.pte"
    runtime = "executorch"

    @classmethod
    def refusal(cls, ckpt) -> str | None:
        if ckpt.is_image:
            return "image models are not exported to ExecuTorch yet; export them to ONNX or TFLite"
        return super().refusal(ckpt)

    def export(self, ctx, config, out_dir: Path) -> Path:
        return lower(ctx.checkpoint, out_dir / self.model_file)
