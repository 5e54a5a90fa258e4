"""PyTorch -> ONNX with dynamic batch and sequence axes."""

from __future__ import annotations

import warnings
from pathlib import Path

from edgekit_converters.base import Converter


class OnnxConverter(Converter):
    name = "onnx"
    format = "onnx"
    requires = ("onnx", "onnxscript")
    model_file = "model.onnx"
    runtime = "onnxruntime"
    ecosystem_outputs = True

    def export(self, ctx, config, out_dir: Path) -> Path:
        import torch

        ckpt = ctx.checkpoint
        task = ckpt.task_def
        module = task.wrap(ckpt.model, ecosystem=True)
        names = ckpt.input_names
        if ckpt.is_image:
            from edgekit.data.images import sample_images

            args = (ckpt.tokenizer(sample_images(ckpt.tokenizer, 2), return_tensors="pt")["pixel_values"],)
            dynamic = {"pixel_values": {0: "batch"}}
        else:
            enc = ckpt.tokenizer(
                ["edgekit export example", "a second, longer example sentence for the exporter"],
                padding="max_length",
                max_length=16,
                truncation=True,
                return_tensors="pt",
            )
            args = tuple(enc[n].to(torch.int64) for n in names)
            dynamic = {n: {0: "batch", 1: "sequence"} for n in names}
        out = out_dir / self.model_file
        dynamic[task.output_name] = {0: "batch"}
        for extra in task.ecosystem_outputs:  # per-token outputs (last_hidden_state): batch and sequence axes
            dynamic[extra] = dict(dynamic[names[0]]) if not ckpt.is_image else {0: "batch"}
        # The TorchScript exporter is used on purpose: ONNX Runtime's transformer
        # optimizer fuses its graph fully (Attention, EmbedLayerNormalization);
        # on the dynamo exporter's graph it fused neither (measured on MiniLM).
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                args,
                str(out),
                dynamo=False,
                opset_version=config.opset,
                input_names=names,
                output_names=[task.output_name, *task.ecosystem_outputs],
                dynamic_axes=dynamic,
                do_constant_folding=True,
            )
        return out
