"""Quantization-aware training with the PyTorch 2 export flow (``torchao.quantization.pt2e``).

The task model is captured with ``torch.export`` (dynamic batch and sequence
axes), fake-quantized by ``prepare_qat_pt2e`` with the X86 Inductor
quantizer's QAT configuration (int8 per-channel symmetric weights, uint8
activations), fine-tuned with distillation from the fp32 teacher, converted
with ``convert_pt2e`` and exported by the dynamo ONNX exporter as a
QuantizeLinear/DequantizeLinear graph that ONNX Runtime fuses into int8
kernels. (``torch.ao.quantization.quantize_pt2e`` is gone in torch 2.13; this
is its successor.)
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import torch

from edgekit.errors import InternalError

_AXES = ("input_ids", "attention_mask", "token_type_ids")


class _Adapter(torch.nn.Module):
    """Calls the exported graph positionally; returns ``.logits`` like a transformers model."""

    def __init__(self, graph, names: list[str]) -> None:
        super().__init__()
        self.graph, self.names = graph, names
        self.dropout = True  # False: the graph stays in eval mode while it trains (no dropout)

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.dropout:  # gradients still flow; only dropout (the graph's train/eval switch) stays off
            self.graph.eval()
        return self

    def forward(self, output_hidden_states: bool = False, **batch):
        return SimpleNamespace(logits=self.graph(*(batch[n] for n in self.names)))


def _example(tokenizer, names: list[str]):
    enc = tokenizer(
        ["quantization aware training example", "a second, longer example sentence for export"],
        padding="max_length",
        max_length=16,
        truncation=True,
        return_tensors="pt",
    )
    return tuple(enc[n].to(torch.int64) for n in names)


def _dynamic(names: list[str], max_len: int):
    from torch.export import Dim

    batch, seq = Dim("batch", min=1, max=1024), Dim("sequence", min=2, max=max_len)
    return {n: {0: batch, 1: seq} for n in names}


def prepare(ckpt, qat: bool = True):
    """The checkpoint's task model, exported and fake-quantized for training (``qat``), or with observers
    only, for static post-training quantization with the same quantizer (``qat=False``)."""
    import copy

    from torch.export import export
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, prepare_qat_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    names = ckpt.input_names
    # a copy: the exported graph shares parameter storage with the module, and training must not
    # change the checkpoint's model (the fp32 reference and teacher of this run)
    module = copy.deepcopy(ckpt.task_module())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = export(
            module, _example(ckpt.tokenizer, names), dynamic_shapes=_dynamic(names, ckpt.max_length)
        ).module()
        quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config(is_qat=qat))
        prepared = prepare_qat_pt2e(graph, quantizer) if qat else prepare_pt2e(graph, quantizer)
    allow_exported_model_train_eval(prepared)
    return _Adapter(prepared, names)


def calibrate(adapter: _Adapter, batches) -> None:
    """Run ``batches`` through the prepared graph so its observers see real activation ranges."""
    with torch.no_grad():
        for b in batches:
            b = dict(b)
            b.pop("labels", None)
            adapter(**b)


def freeze_observers(adapter: _Adapter) -> int:
    """Stop every observer of a QAT graph from updating its range (fake quantization stays on); returns how many."""
    frozen = 0
    for m in adapter.graph.modules():
        if hasattr(m, "disable_observer") and m is not adapter.graph:
            m.disable_observer()
            frozen += 1
    return frozen


def export_onnx(adapter: _Adapter, ckpt, out: Path, opset: int) -> Path:
    """Convert the fake-quantized graph to Q/DQ and write it as ONNX."""
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    names = adapter.names
    move_exported_model_to_eval(adapter.graph)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = convert_pt2e(adapter.graph)
        program = torch.onnx.export(
            converted,
            _example(ckpt.tokenizer, names),
            dynamo=True,
            opset_version=opset,
            input_names=names,
            output_names=[ckpt.task_def.output_name],
            dynamic_shapes=_dynamic(names, ckpt.max_length),
            verbose=False,
        )
    if program is None:  # dynamo=True always returns the program
        raise InternalError("torch.onnx.export returned no program")
    program.save(str(out))
    return out
