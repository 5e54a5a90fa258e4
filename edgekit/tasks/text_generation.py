"""text-generation: decoder language models (GPT-2, Llama, Qwen2, Phi-3, Gemma, SmolLM-style).

A generative task is not one forward pass: it is compressed by the generative pipeline
(:mod:`edgekit.generation.pipeline`: a KV-cache export, int8 / int4 weight quantization, prefill and
decode measured on the target runtime, perplexity on held-out text) and served by ``generate``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from edgekit.tasks import Task, register


class GeneratedText(Task):
    """What every generated-text task shares: text out (``generate``), served on ``/generate``, bundles that
    carry the generation config. Not registered itself."""

    generative = True
    trainable = False  # the encoder training stages do not apply; generative tasks have their own distillation
    api_method = "generate"
    endpoint = "/generate"
    request_field = "prompt"
    response_key = "text"
    not_served: ClassVar[str] = ""  # why serve and bundles refuse this task (empty: they take it)

    def postprocessing(self, config: dict, files: Callable[[str], Any]) -> dict:
        return {"output": "text", "generation": files("generation_config.json") or {}}

    def check_postprocessing(self, post: dict, need: Callable[[bool, str], None]) -> None:
        need(post.get("output") == "text", "postprocessing.output is not text")

    def as_json(self, result) -> list[dict]:
        return [{"text": t} for t in result]

    def recorded(self, result, post: dict) -> np.ndarray:
        return np.asarray([[len(t)] for t in result], dtype=np.float32)


@register
class TextGeneration(GeneratedText):
    name = "text-generation"
    description = "next-token logits with a KV cache; generated text"
    output_name = "logits"
    architectures = ("ForCausalLM", "LMHeadModel")
    auto_class = "AutoModelForCausalLM"
    compressor = "edgekit.generation.pipeline:compress_decoder"
    default_recipe = "decoder"
    headline_key = "perplexity"
    headline_label = "perplexity on held-out text"
    budget_key = "perplexity"
