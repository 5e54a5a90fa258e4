"""Structured pruning of BERT-style encoders, removed physically (fewer MACs, smaller files).

Importance is measured on data: for attention heads and FFN neurons the
first-order Taylor score |sum(activation x gradient)| of the task loss
(Michel et al. 2019; Molchanov et al. 2019), for whole layers the loss
increase when the layer is bypassed. Pruning keeps the same number of heads
and neurons in every layer, so the result is a plain BERT configuration
(``intermediate_size``, ``num_hidden_layers``) plus one extra key,
``edgekit_attention_heads``, that :func:`load_pruned` reads to rebuild the
narrower attention (``BertModel.prune_heads`` is gone in transformers 5.x:
the query/key/value rows and output-projection columns are sliced here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

import numpy as np

if TYPE_CHECKING:
    import torch

HEADS_KEY = "edgekit_attention_heads"


def _layer_holder(model):
    """(module, attribute) holding the transformer layers: BERT-style ``encoder.layer``, ViT-style ``layers``."""
    base = model.base_model
    return (base.encoder, "layer") if hasattr(base, "encoder") else (base, "layers")


def encoder_layers(model):
    holder, attr = _layer_holder(model)
    return getattr(holder, attr)


@dataclass(frozen=True)
class _Parts:
    """Where one layer keeps what pruning slices (BERT: attention.self.query ..., ViT: attention.q_proj ...)."""

    attn: torch.nn.Module  # the module with the q/k/v projections and the head counts
    qkv: tuple[str, str, str]
    out: torch.nn.Module  # holder of the attention output projection
    out_name: str
    head_size: int
    ffn_in: torch.nn.Module
    ffn_in_name: str
    ffn_out: torch.nn.Module
    ffn_out_name: str


def parts(layer) -> _Parts:
    att = layer.attention
    if hasattr(att, "self"):  # BERT family
        return _Parts(
            att.self,
            ("query", "key", "value"),
            att.output,
            "dense",
            att.self.attention_head_size,
            layer.intermediate,
            "dense",
            layer.output,
            "dense",
        )
    return _Parts(
        att,
        ("q_proj", "k_proj", "v_proj"),
        att,
        "o_proj",
        att.head_dim,  # ViT (transformers 5)
        layer.mlp,
        "fc1",
        layer.mlp,
        "fc2",
    )


@dataclass
class Importance:
    heads: np.ndarray  # [layers, heads]
    ffn: np.ndarray  # [layers, intermediate]
    layers: np.ndarray  # [layers] loss increase when bypassed


def measure_importance(model, batches: list[dict], loss_of: Callable, layer_scores: bool = True) -> Importance:
    """Taylor importance of heads and FFN neurons, and bypass sensitivity of layers, on ``batches``."""
    import torch

    layers = encoder_layers(model)
    n_layers = len(layers)
    first = parts(layers[0])
    head_size = first.head_size
    n_heads = getattr(first.attn, first.qkv[0]).out_features // head_size
    heads = np.zeros((n_layers, n_heads))
    ffn = np.zeros((n_layers, getattr(first.ffn_in, first.ffn_in_name).out_features))
    acts: dict = {}
    hooks = []

    def capture(key):
        def pre_hook(_module, args):
            x = args[0]
            x.retain_grad()
            acts[key] = x

        return pre_hook

    for i, layer in enumerate(layers):
        lp = parts(layer)
        hooks.append(getattr(lp.out, lp.out_name).register_forward_pre_hook(capture(("attn", i))))
        hooks.append(getattr(lp.ffn_out, lp.ffn_out_name).register_forward_pre_hook(capture(("ffn", i))))
    model.eval()
    try:
        for b in batches:
            model.zero_grad(set_to_none=True)
            loss_of(model, b).backward()
            for i in range(n_layers):
                a = acts[("attn", i)]
                score = (a * a.grad).detach().sum(dim=(0, 1)).view(n_heads, head_size).sum(-1).abs()
                heads[i] += score.numpy()
                f = acts[("ffn", i)]
                ffn[i] += (f * f.grad).detach().sum(dim=(0, 1)).abs().numpy()
    finally:
        for h in hooks:
            h.remove()
        model.zero_grad(set_to_none=True)
    sens = np.zeros(n_layers)
    if layer_scores:
        with torch.no_grad():
            base = float(np.mean([float(loss_of(model, b)) for b in batches]))
            for i, layer in enumerate(layers):
                original = layer.forward
                layer.forward = lambda hidden_states, *a, **k: hidden_states  # bypass: identity
                try:
                    sens[i] = float(np.mean([float(loss_of(model, b)) for b in batches])) - base
                finally:
                    layer.forward = original
    return Importance(heads, ffn, sens)


def _slice_linear(linear, rows=None, cols=None):
    import torch

    w = linear.weight.data
    b = linear.bias.data if linear.bias is not None else None
    if rows is not None:
        w, b = w[rows], (b[rows] if b is not None else None)
    if cols is not None:
        w = w[:, cols]
    new = torch.nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    new.weight.data = w.clone().contiguous()
    if b is not None:
        new.bias.data = b.clone().contiguous()
    return new


def prune_heads(layer, keep: list[int]) -> None:
    import torch

    lp = parts(layer)
    att, d = lp.attn, lp.head_size
    rows = torch.tensor([h * d + j for h in sorted(keep) for j in range(d)])
    for name in lp.qkv:
        setattr(att, name, _slice_linear(getattr(att, name), rows=rows))
    setattr(lp.out, lp.out_name, _slice_linear(getattr(lp.out, lp.out_name), cols=rows))
    # torch types Module.__setattr__'s value as Tensor | Module; it sets any value (these are ints)
    att.num_attention_heads = len(keep)  # type: ignore[assignment]
    if hasattr(att, "all_head_size"):
        att.all_head_size = len(keep) * d  # type: ignore[assignment]


def prune_ffn(layer, keep: list[int]) -> None:
    import torch

    idx = torch.tensor(sorted(keep))
    lp = parts(layer)
    setattr(lp.ffn_in, lp.ffn_in_name, _slice_linear(getattr(lp.ffn_in, lp.ffn_in_name), rows=idx))
    setattr(lp.ffn_out, lp.ffn_out_name, _slice_linear(getattr(lp.ffn_out, lp.ffn_out_name), cols=idx))


def keep_layers(model, keep: list[int]) -> None:
    import torch

    holder, attr = _layer_holder(model)
    setattr(holder, attr, torch.nn.ModuleList([getattr(holder, attr)[i] for i in sorted(keep)]))
    for i, layer in enumerate(getattr(holder, attr)):
        attn = parts(layer).attn
        if hasattr(attn, "layer_idx"):
            attn.layer_idx = i  # type: ignore[assignment]  # an int: torch types Module.__setattr__ too narrowly
    model.config.num_hidden_layers = len(keep)


def _count(target: float | int, total: int) -> int:
    """How many to keep: a ratio in (0, 1) of ``total`` is pruned, a whole number is kept."""
    if isinstance(target, float) and 0 < target < 1:
        return max(1, int(round(total * (1 - target))))
    return max(1, min(total, int(target)))


class PrunePlan(TypedDict):
    """What :func:`apply` kept, by original index."""

    layers: list[int]
    heads: dict[int, list[int]]  # layer -> the heads kept
    ffn: dict[int, int]  # layer -> how many FFN neurons kept


def apply(
    model,
    imp: Importance,
    *,
    heads: float | int | None = None,
    ffn: float | int | None = None,
    layers: float | int | list[int] | None = None,
) -> PrunePlan:
    """Prune in place; ``heads``/``ffn``/``layers`` are ratios to remove (0-1) or counts to keep.
    Returns what was kept, by original index."""
    n_layers, n_heads = imp.heads.shape
    kept_layers = list(range(n_layers))
    if layers is not None:
        if isinstance(layers, list):
            kept_layers = sorted(layers)
        else:
            k = _count(layers, n_layers)
            kept_layers = sorted(np.argsort(-imp.layers)[:k].tolist())
    plan: PrunePlan = {"layers": kept_layers, "heads": {}, "ffn": {}}
    k_heads = _count(heads, n_heads) if heads is not None else n_heads
    k_ffn = _count(ffn, imp.ffn.shape[1]) if ffn is not None else imp.ffn.shape[1]
    for i, layer in enumerate(encoder_layers(model)):
        if k_heads < n_heads:
            keep = sorted(np.argsort(-imp.heads[i])[:k_heads].tolist())
            prune_heads(layer, keep)
            plan["heads"][i] = keep
        if k_ffn < imp.ffn.shape[1]:
            keep = sorted(np.argsort(-imp.ffn[i])[:k_ffn].tolist())
            prune_ffn(layer, keep)
            plan["ffn"][i] = len(keep)
    if kept_layers != list(range(n_layers)):
        keep_layers(model, kept_layers)
    model.config.intermediate_size = k_ffn
    if k_heads < n_heads:
        setattr(model.config, HEADS_KEY, k_heads)
    return plan


def encoder_macs(config: dict, seq_len: int) -> int:
    """Multiply-accumulates of the transformer layers for one sequence of ``seq_len`` tokens (patches):
    the q/k/v/output projections, the two FFN matrices and the two attention products. Embeddings,
    layer norms and the head are left out (under 1% of the total at these sizes)."""
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head_dim = int(config.get("head_dim") or hidden // heads)
    kept = int(config.get(HEADS_KEY) or heads) * head_dim
    ffn = int(config["intermediate_size"])
    per_layer = seq_len * (3 * hidden * kept + kept * hidden + 2 * hidden * ffn) + 2 * seq_len * seq_len * kept
    return int(config["num_hidden_layers"]) * per_layer


def load_pruned(path, model_class, **kwargs):
    """Load a checkpoint whose attention was pruned to ``edgekit_attention_heads`` heads per layer."""
    from safetensors.torch import load_file
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(path), **{k: v for k, v in kwargs.items() if k == "attn_implementation"})
    k = getattr(config, HEADS_KEY)
    model = model_class.from_config(config, **{k2: v for k2, v in kwargs.items() if k2 == "attn_implementation"})
    for layer in encoder_layers(model):
        prune_heads(layer, list(range(k)))
    state = load_file(str(path / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("position_ids")]
    if missing or unexpected:
        raise ValueError(
            f"pruned checkpoint {path} does not match its config (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model.eval()
