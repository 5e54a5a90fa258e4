"""What each task's exported model computes, and how its outputs are compared."""

from __future__ import annotations

from dataclasses import dataclass

TASKS = ("feature-extraction", "text-classification", "image-classification")
CLASSIFIERS = ("text-classification", "image-classification")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    output_name: str
    description: str


TASK_SPECS = {
    "feature-extraction": TaskSpec("feature-extraction", "embeddings", "mean-pooled sentence embeddings"),
    "text-classification": TaskSpec("text-classification", "logits", "class logits"),
    "image-classification": TaskSpec("image-classification", "logits", "class logits"),
}


def infer_task(config: dict) -> str:
    """Classification when the config names a sequence-classification head, else embeddings."""
    archs = config.get("architectures") or []
    if any(a.endswith("ForImageClassification") for a in archs):
        return "image-classification"
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return "text-classification"
    return "feature-extraction"


def mean_pool(hidden, attention_mask):
    """Mean of the token vectors the mask keeps (sentence-transformers' pooling)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def build_task_module(model, task: str):
    """Wrap a transformers model so its forward takes token tensors positionally
    and returns the one task output (mean-pooled embeddings or logits)."""
    import torch

    if task == "image-classification":
        class ImageTaskModule(torch.nn.Module):
            def __init__(self, inner) -> None:
                super().__init__()
                self.model = inner

            def forward(self, pixel_values):
                return self.model(pixel_values=pixel_values).logits

        return ImageTaskModule(model).eval()

    class TaskModule(torch.nn.Module):
        def __init__(self, inner, pooled: bool, takes_token_types: bool) -> None:
            super().__init__()
            self.model = inner
            self.pooled = pooled
            self.takes_token_types = takes_token_types

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if self.takes_token_types and token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            out = self.model(**kwargs)
            if not self.pooled:
                return out.logits
            return mean_pool(out.last_hidden_state, attention_mask)

    takes = getattr(model.config, "type_vocab_size", 0) > 0
    return TaskModule(model, task == "feature-extraction", takes).eval()
