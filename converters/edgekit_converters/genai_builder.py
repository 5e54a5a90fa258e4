"""Causal LM -> a fused ONNX decoder by ONNX Runtime GenAI's model builder (Llama, Qwen2, Phi-3, Gemma, ...).

The builder writes the graph ONNX Runtime GenAI runs: fused QKV, GroupQueryAttention with rotary positions,
SkipSimplifiedLayerNormalization; about 55 nodes for a 4-layer Llama, where a traced export has over 400
after ONNX Runtime's own optimizations, and per-token decode time on a small model is mostly per-node
overhead. edgekit builds at fp32 and quantizes the graph itself (:mod:`edgekit.generation.quantize`), so
each quantization choice is measured on it; ``precision`` int4/int8 builds the builder's own quantized graph.

Inputs ``input_ids``, ``attention_mask`` and ``past_key_values.N.key|value``; outputs ``logits`` and
``present.N.key|value``: the runtime (:class:`edgekit.generation.runtime.DecoderSession`) feeds what the graph
declares. ``decoder.json`` records the shape facts from the builder's ``genai_config.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from edgekit_converters.onnx_decoder import DECODER_JSON

REQUIRES = ("onnxruntime_genai",)


def supported(config: dict) -> str | None:
    """Why the builder does not build a checkpoint with this config.json (None: it does)."""
    from edgekit_runtimes.base import missing_modules

    if missing_modules(REQUIRES):
        return "onnxruntime-genai is not installed"
    import importlib

    builder = importlib.import_module("onnxruntime_genai.models.builder")
    text = Path(str(builder.__file__)).read_text(encoding="utf-8")  # the builder dispatches on these class names
    archs = config.get("architectures") or []
    if not archs or f'"{archs[0]}"' not in text:
        return f"the ONNX Runtime GenAI builder does not build {archs[0] if archs else 'this model'}"
    return None


def build(checkpoint: Path, out_dir: Path, precision: str = "fp32", extra: dict | None = None) -> Path:
    """Run the builder on ``checkpoint`` into ``out_dir`` (CPU), then write ``decoder.json``."""
    cache = out_dir.parent / f".{out_dir.name}-builder-cache"
    cmd = [
        sys.executable,
        "-m",
        "onnxruntime_genai.models.builder",
        "-i",
        str(checkpoint),
        "-o",
        str(out_dir),
        "-p",
        precision,
        "-e",
        "cpu",
        "-c",
        str(cache),
    ]
    if extra:
        cmd += ["--extra_options", *(f"{k}={v}" for k, v in extra.items())]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        from edgekit.errors import CheckpointError

        tail = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()][-1:]
        raise CheckpointError(
            f"{checkpoint}: the ONNX Runtime GenAI builder could not build it ({' '.join(tail)[:300]})"
        )
    if cache.exists():
        import shutil

        shutil.rmtree(cache, ignore_errors=True)
    cfg = json.loads((out_dir / "genai_config.json").read_text())["model"]
    dec = cfg["decoder"]
    eos = cfg.get("eos_token_id")
    facts = {
        "num_layers": int(dec["num_hidden_layers"]),
        "num_kv_heads": int(dec["num_key_value_heads"]),
        "head_dim": int(dec["head_size"]),
        "vocab_size": int(cfg["vocab_size"]),
        "context_length": int(cfg["context_length"]),
        "eos_token_ids": [eos] if isinstance(eos, int) else list(eos or []),
        "model_type": str(cfg.get("type", "")),
        "exporter": "onnxruntime-genai model builder",
    }
    (out_dir / DECODER_JSON).write_text(json.dumps(facts, indent=2) + "\n")
    return out_dir / "model.onnx"
