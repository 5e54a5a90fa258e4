"""PyTorch causal LM -> ONNX with a KV cache (one graph for prefill and decode).

Inputs: ``input_ids`` [batch, sequence], ``attention_mask`` [batch, past + sequence], ``position_ids``
[batch, sequence] and ``past_key_values.N.key`` / ``.value`` [batch, kv_heads, past, head_dim] per layer;
outputs: ``logits`` [batch, sequence, vocab] and ``present.N.key`` / ``.value`` [batch, kv_heads,
past + sequence, head_dim]: the names Optimum and ONNX Runtime GenAI use. A prefill runs with a past of
length 0; each decode step feeds one token and the previous step's presents. The graph's shape facts
(layers, heads, head size, vocabulary, context) go in ``decoder.json`` beside it, so the device side
needs no config parsing and no torch.
"""

from __future__ import annotations

import json
from pathlib import Path

DECODER_JSON = "decoder.json"


def decoder_facts(config) -> dict:
    """Layers, KV heads, head size, vocabulary and context length of a transformers causal-LM config."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = int(getattr(text, "num_attention_heads", 0) or text.n_head)
    hidden = int(getattr(text, "hidden_size", 0) or text.n_embd)
    layers = int(getattr(text, "num_hidden_layers", 0) or text.n_layer)
    kv = int(getattr(text, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(text, "head_dim", None) or hidden // heads)
    context = int(getattr(text, "max_position_embeddings", 0) or getattr(text, "n_positions", 0) or 2048)
    eos = getattr(text, "eos_token_id", None)
    return {
        "num_layers": layers,
        "num_kv_heads": kv,
        "head_dim": head_dim,
        "vocab_size": int(text.vocab_size),
        "context_length": context,
        "eos_token_ids": [eos] if isinstance(eos, int) else list(eos or []),
        "model_type": str(getattr(text, "model_type", "")),
    }


def kv_names(layers: int) -> tuple[list[str], list[str]]:
    past = [f"past_key_values.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    present = [f"present.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    return past, present


def cache_wrapper(model, layers: int):
    """``model`` as a module taking flat past tensors and returning logits plus flat present tensors."""
    import torch
    from transformers import DynamicCache

    class KVCacheModule(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.model = inner

        def forward(self, input_ids, attention_mask, position_ids, *past):
            cache = DynamicCache(config=self.model.config)
            for i in range(layers):
                cache.update(past[2 * i], past[2 * i + 1], i)
            out = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=cache,
                use_cache=True,
            )
            flat = []
            for layer in out.past_key_values.layers:
                flat.extend((layer.keys, layer.values))
            return (out.logits, *flat)

    return KVCacheModule(model).eval()


def export_decoder(model, out_dir: Path, opset: int = 17, past_len: int = 3) -> Path:
    """Trace ``model`` (eager attention) with a past of ``past_len`` tokens into ``out_dir/model.onnx``."""
    import torch

    from edgekit_converters.base import quiet_export

    facts = decoder_facts(model.config)
    layers, kv, hd = facts["num_layers"], facts["num_kv_heads"], facts["head_dim"]
    past_names, present_names = kv_names(layers)
    batch, seq = 2, 4
    ids = torch.randint(0, facts["vocab_size"], (batch, seq))
    mask = torch.ones(batch, past_len + seq, dtype=torch.int64)
    pos = torch.arange(past_len, past_len + seq).unsqueeze(0).expand(batch, -1).contiguous()
    past = [torch.randn(batch, kv, past_len, hd) for _ in past_names]
    dynamic = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "total_sequence"},
        "position_ids": {0: "batch", 1: "sequence"},
        "logits": {0: "batch", 1: "sequence"},
    }
    for n in past_names:
        dynamic[n] = {0: "batch", 2: "past_sequence"}
    for n in present_names:
        dynamic[n] = {0: "batch", 2: "total_sequence"}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.onnx"
    module = cache_wrapper(model, layers)
    with quiet_export(), torch.no_grad():
        torch.onnx.export(
            module,
            (ids, mask, pos, *past),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=["input_ids", "attention_mask", "position_ids", *past_names],
            output_names=["logits", *present_names],
            dynamic_axes=dynamic,
            do_constant_folding=True,
        )
    (out_dir / DECODER_JSON).write_text(json.dumps(facts, indent=2) + "\n")
    return path
