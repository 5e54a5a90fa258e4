"""feature-extraction: mean-pooled sentence embeddings (sentence-transformers encoders)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgekit.tasks import Task, mean_pool, register


@register
class Embeddings(Task):
    name = "feature-extraction"
    description = "mean-pooled sentence embeddings"
    output_name = "embeddings"
    ecosystem_outputs = ("last_hidden_state",)  # token embeddings: Optimum and sentence-transformers pool them
    api_method = "embed"
    endpoint = "/embed"
    response_key = "embeddings"

    def head(self, model_output, attention_mask):
        return mean_pool(model_output.last_hidden_state, attention_mask)

    def postprocessing(self, config: dict, files: Callable[[str], Any]) -> dict:
        modules = files("modules.json") or []  # sentence-transformers' pipeline: is there a Normalize step?
        normalize = any(str(m.get("type", "")).endswith("Normalize") for m in modules if isinstance(m, dict))
        return {"output": "embeddings", "pooling": "mean", "normalize": normalize}

    def check_postprocessing(self, post: dict, need: Callable[[bool, str], None]) -> None:
        need(post.get("output") == "embeddings", "postprocessing.output is not embeddings")

    def as_json(self, result) -> list[dict]:
        return [{"embedding": [round(float(x), 7) for x in v]} for v in result]

    def recorded(self, result, post: dict) -> np.ndarray:
        return np.asarray(result, dtype=np.float32)
