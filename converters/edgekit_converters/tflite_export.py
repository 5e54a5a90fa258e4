"""PyTorch -> TFLite with litert-torch (no TensorFlow needed).

One ``.tflite`` file holds one signature per sequence-length bucket
(``seq_64``, ``seq_128``, ...), each with static shape ``[1, L]`` and int32
token inputs bound by name; the weights are shared. The model is fed a
ready-made additive 4-D attention mask built from the 0/1 mask inside the
graph: left to transformers' own masking code, the graph gets GATHER_ND v5 and
a -3.4e38 fill, which older runtimes reject.
"""

from __future__ import annotations

from pathlib import Path

from edgekit_converters.base import Converter, quiet_export

MASK_FILL = -1e4


def signature_name(seq_len: int) -> str:
    return f"seq_{seq_len}"


def build_module(ckpt):
    """The task model with int32 token inputs and an additive 4-D mask."""
    import torch

    if ckpt.is_image:
        return _image_module(ckpt)
    inner = ckpt.task_module().model
    task = ckpt.task_def
    output_name = task.output_name
    takes_types = "token_type_ids" in ckpt.input_names

    class TFLiteTask(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = inner

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            mask = attention_mask.to(torch.float32)
            bias = (1.0 - mask)[:, None, None, :] * MASK_FILL
            kwargs = {"input_ids": input_ids.to(torch.int64), "attention_mask": bias}
            if takes_types and token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids.to(torch.int64)
            return {output_name: task.head(self.model(**kwargs), mask)}

    return TFLiteTask().eval()


IMAGE_SIGNATURE = "image"


def _image_module(ckpt):
    import torch

    inner = ckpt.task_module()
    output_name = ckpt.task_def.output_name

    class TFLiteImageTask(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.task = inner

        def forward(self, pixel_values):
            return {output_name: self.task(pixel_values)}

    return TFLiteImageTask().eval()


class TFLiteConverter(Converter):
    name = "tflite"
    format = "tflite"
    requires = ("litert_torch",)
    model_file = "model.tflite"
    runtime = "litert"
    unsupported = {  # noqa: RUF012 - a class-level declaration, never mutated
        "deberta-v2": "its relative-position attention does not survive litert-torch's conversion (cosine "
        "-0.38 to PyTorch on a random-weight model); export it to ONNX",
    }

    def export(self, ctx, config, out_dir: Path) -> Path:
        import torch

        with quiet_export():  # litert-torch prints progress lines and absl logs
            import litert_torch

            ckpt = ctx.checkpoint
            module = build_module(ckpt)
            converter = None
            if ckpt.is_image:  # one static signature: batch 1, the processor's image size
                sample = {"pixel_values": torch.zeros((1, *ckpt.tokenizer.pixel_shape))}
                converter = litert_torch.signature(IMAGE_SIGNATURE, module, sample_kwargs=sample)
            else:
                lengths = ctx.length_buckets() if config.seq_lens == "auto" else config.seq_lens
                for seq_len in sorted(set(lengths)):
                    sample = {
                        name: torch.ones((1, seq_len), dtype=torch.int32)
                        if name == "attention_mask"
                        else torch.zeros((1, seq_len), dtype=torch.int32)
                        for name in ckpt.input_names
                    }
                    sig = signature_name(seq_len)
                    converter = (
                        litert_torch.signature(sig, module, sample_kwargs=sample)
                        if converter is None
                        else converter.signature(sig, module, sample_kwargs=sample)
                    )
            if converter is None:  # the recipe schema requires at least one of seq_lens
                from edgekit.errors import InternalError

                raise InternalError("tflite export: no sequence length to convert")
            out = out_dir / self.model_file
            converter.convert().export(str(out))
        return out
