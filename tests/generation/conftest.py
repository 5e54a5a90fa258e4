from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_decoder(tmp_path_factory) -> Path:
    """A random-weight 2-layer Llama-style decoder with a byte-level BPE tokenizer (no pad token)."""
    from edgekit.testing import make_tiny_decoder

    return make_tiny_decoder(tmp_path_factory.mktemp("decoder") / "llama", "llama")


@pytest.fixture(scope="session")
def tiny_decoder_onnx(tiny_decoder, tmp_path_factory) -> Path:
    """Its KV-cache ONNX export, with the tokenizer beside it."""
    import shutil

    from edgekit.generation.pipeline import load_causal_lm
    from edgekit_converters.onnx_decoder import export_decoder

    out = tmp_path_factory.mktemp("decoder-onnx")
    export_decoder(load_causal_lm(tiny_decoder), out)
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        if (tiny_decoder / name).is_file():
            shutil.copy2(tiny_decoder / name, out / name)
    return out


RECIPE = """
version: 1
name: tiny-decoder
stages:
  - kind: export
    name: onnx-fp32
    format: onnx
  - kind: quantize
    name: onnx-int8
    input: onnx-fp32
    method: dynamic
  - kind: int4
    name: onnx-int4-rtn
    input: onnx-fp32
  - kind: export
    name: tflite-fp32
    input: pytorch-fp32
    format: tflite
    seq_lens: [32]  # one prefill signature (longer prompts are prefilled in chunks): a faster conversion
  - kind: quantize
    name: tflite-int8
    input: tflite-fp32
    method: dynamic
  - kind: bench-generate
    prompt_lens: [16, 64]
    new_tokens: 8
    runs: 1
    perplexity_tokens: 1024
    window: 128
    continuations: 2
    continuation_tokens: 8
    max_perplexity_increase: 0.5
    retime_rounds: 1
"""


@pytest.fixture(scope="session")
def tiny_decoder_compressed(tiny_decoder, tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("decoder-compress")
    from edgekit.pipeline.run import compress
    from edgekit.recipe import load_recipe

    (tmp / "r.yaml").write_text(RECIPE)
    result = compress(tiny_decoder, load_recipe(str(tmp / "r.yaml")), tmp / "out", progress=False)
    return tmp / "out", json.loads((tmp / "out" / "report.json").read_text()) | {"_returned": result.report["promoted"]}
