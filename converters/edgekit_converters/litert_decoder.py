"""Causal LM -> LiteRT (.tflite) with a KV cache, through litert-torch's generative API.

The checkpoint is rebuilt as litert-torch's decoder (``model_builder.build_decoder_only_model`` with a
``ModelConfig`` read from config.json; its loader maps the Hugging Face tensor names) and converted with
``converter.convert_to_tflite``: one ``prefill_<L>`` signature per prefill length (logits for every position)
and one ``decode`` signature, both reading and writing the KV cache tensors ``kv_cache_{k,v}_<layer>``
[1, kv_cache_max_len, kv_heads, head_dim]. ``quantize`` is litert-torch's recipe name (``none``,
``dynamic_int8``, ``dynamic_int4_block32``, ``dynamic_int4_block128``): weights are quantized by ai-edge-quantizer
during conversion. Architectures (what differs between them is in :data:`FAMILIES`, read from litert-torch's
own examples for each): Llama (SmolLM, TinyLlama), Qwen2 (query/key/value biases), Gemma (GeGLU with tanh GELU,
zero-centred RMSNorm, embeddings scaled by sqrt(hidden)) and Phi-3 (fused query/key/value and gate/up
projections), each with the default rotary embedding; others (GPT-2's learned positions and LayerNorm among
them) are refused before any work.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import types
from pathlib import Path

from edgekit_converters.onnx_decoder import DECODER_JSON

REQUIRES = ("litert_torch", "ai_edge_litert")
# what varies by architecture: activation names config.json may give, the FFN's activation, biases, norms
FAMILIES: dict[str, dict] = {
    "LlamaForCausalLM": {"acts": ("silu",), "act": "SILU"},
    "Qwen2ForCausalLM": {"acts": ("silu",), "act": "SILU", "qkv_bias": True},
    "GemmaForCausalLM": {
        "acts": ("gelu_pytorch_tanh", "gelu_tanh"),
        "act": "GELU_TANH",
        "zero_centered": True,
        "embedding_scale": True,
        "tied": True,
    },
    "Phi3ForCausalLM": {"acts": ("silu",), "act": "SILU_GLU", "fused": True},
}
ARCHITECTURES = tuple(FAMILIES)
PREFILL_LENS = (32, 128, 256)


def supported(config: dict) -> str | None:
    """Why this converter does not convert a checkpoint with this config.json (None: it does)."""
    from edgekit_runtimes.base import missing_modules

    missing = missing_modules(REQUIRES)
    if missing:
        return f"{', '.join(missing)} not installed"
    archs = config.get("architectures") or []
    if archs and archs[0] == "GPT2LMHeadModel":
        return "litert-torch's decoder builder has rotary positions only, not GPT-2's learned position table"
    if not archs or archs[0] not in FAMILIES:
        return f"litert-torch's generative export is wired here for {', '.join(ARCHITECTURES)} only"
    fam = FAMILIES[archs[0]]
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        return "scaled rotary embeddings (Llama 3, Phi-3 LongRoPE style) are not wired for LiteRT yet"
    if float(config.get("partial_rotary_factor") or rope.get("partial_rotary_factor") or 1.0) != 1.0:
        return "partial rotary embeddings are not wired for LiteRT yet"
    act = config.get("hidden_activation") or config.get("hidden_act") or fam["acts"][0]
    if act not in fam["acts"]:
        return f"the {act} activation of {archs[0]} is not wired for LiteRT yet"
    if config.get("attention_bias") or config.get("mlp_bias"):
        return "biases on the attention output or the MLP are not wired for LiteRT yet"
    if config.get("use_sliding_window"):
        return "sliding-window attention is not wired for LiteRT yet"
    return None


def _import_generative():
    """litert-torch's generative modules. One of them imports TensorFlow's flatbuffer schema module, which
    ai-edge-litert ships too; without TensorFlow installed the import is pointed at that copy for the moment
    it runs (TensorFlow is not installed for this, and nothing else sees the alias)."""
    if importlib.util.find_spec("tensorflow") is None and "litert_torch.generative.layers.lora" not in sys.modules:
        import ai_edge_litert.schema_py_generated as schema
        import litert_torch  # noqa: F401  (with torch._dynamo: before the alias exists)
        import torch._dynamo  # noqa: F401

        fake = ["tensorflow", "tensorflow.lite", "tensorflow.lite.python"]
        for name in fake:
            sys.modules[name] = types.ModuleType(name)
        sys.modules["tensorflow.lite.python.schema_py_generated"] = schema
        try:
            import litert_torch.generative.layers.lora  # noqa: F401
        finally:
            for name in [*fake, "tensorflow.lite.python.schema_py_generated"]:
                sys.modules.pop(name, None)
    import litert_torch.generative.layers.model_config as cfg
    from litert_torch.generative.utilities import converter, loader, model_builder
    from litert_torch.generative.utilities import export_config as ec

    return cfg, converter, model_builder, ec, loader


def model_config(cfg, c: dict):
    """litert-torch's ModelConfig for a config.json of one of :data:`FAMILIES`."""
    fam = FAMILIES[c["architectures"][0]]
    rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
    theta = float(c.get("rope_theta") or rope.get("rope_theta", 10000.0))
    head_dim = int(c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"])
    norm = cfg.NormalizationConfig(
        type=cfg.NormalizationType.RMS_NORM,
        epsilon=float(c.get("rms_norm_eps", 1e-6)),
        zero_centered=bool(fam.get("zero_centered", False)),
    )
    attn = cfg.AttentionConfig(
        num_heads=c["num_attention_heads"],
        head_dim=head_dim,
        num_query_groups=c.get("num_key_value_heads") or c["num_attention_heads"],
        rotary_base=theta,
        rotary_percentage=1.0,
        qkv_use_bias=bool(fam.get("qkv_bias", False)),
        qkv_transpose_before_split=bool(fam.get("fused", False)),  # Hugging Face's [q | k | v] fused layout
    )
    ff = cfg.FeedForwardConfig(
        type=cfg.FeedForwardType.SEQUENTIAL if fam.get("fused") else cfg.FeedForwardType.GATED,
        activation=cfg.ActivationConfig(getattr(cfg.ActivationType, fam["act"])),
        intermediate_size=c["intermediate_size"],
    )
    block = cfg.TransformerBlockConfig(
        attn_config=attn, ff_config=ff, pre_attention_norm_config=norm, post_attention_norm_config=norm
    )
    return cfg.ModelConfig(
        vocab_size=c["vocab_size"],
        num_layers=c["num_hidden_layers"],
        max_seq_len=c["max_position_embeddings"],
        embedding_dim=c["hidden_size"],
        embedding_scale=float(c["hidden_size"]) ** 0.5 if fam.get("embedding_scale") else None,
        block_configs=block,
        final_norm_config=norm,
        lm_head_share_weight_with_embedding=bool(fam.get("tied") or c.get("tie_word_embeddings", False)),
    )


def tensor_names(model_builder, loader, c: dict, tied: bool):
    """litert-torch's loader names for the checkpoint's tensors (Phi-3's fused projections are read whole)."""
    if FAMILIES[c["architectures"][0]].get("fused"):
        return loader.ModelLoader.TensorNames(
            ff_up_proj="model.layers.{}.mlp.gate_up_proj",
            ff_down_proj="model.layers.{}.mlp.down_proj",
            attn_fused_qkv_proj="model.layers.{}.self_attn.qkv_proj",
            attn_output_proj="model.layers.{}.self_attn.o_proj",
            pre_attn_norm="model.layers.{}.input_layernorm",
            post_attn_norm="model.layers.{}.post_attention_layernorm",
            embedding="model.embed_tokens",
            final_norm="model.norm",
            lm_head=None if tied else "lm_head",
        )
    return model_builder.TENSOR_NAMES if tied else model_builder.TENSOR_NAMES_WITH_SEPARATE_LM_HEAD


def convert(
    checkpoint: Path,
    out_dir: Path,
    quantize: str = "none",
    prefill_lens: tuple[int, ...] = PREFILL_LENS,
    kv_cache_max_len: int | None = None,
) -> Path:
    """Write ``out_dir/model.tflite`` and ``decoder.json``; returns the model path."""
    from edgekit_converters.base import quiet_export

    c = json.loads((checkpoint / "config.json").read_text())
    kv_max = int(kv_cache_max_len or c["max_position_embeddings"])
    lens = sorted({p for p in prefill_lens if p <= kv_max}) or [min(32, kv_max)]
    with quiet_export():
        cfg, converter, model_builder, ec, loader = _import_generative()
        mcfg = model_config(cfg, c)
        names = tensor_names(model_builder, loader, c, mcfg.lm_head_share_weight_with_embedding)
        model = model_builder.build_decoder_only_model(str(checkpoint), mcfg, names, mask_cache_size=kv_max)
        work = out_dir / ".convert"
        work.mkdir(parents=True, exist_ok=True)
        converter.convert_to_tflite(
            model,
            output_path=str(work),
            output_name_prefix="model",
            prefill_seq_len=lens,
            kv_cache_max_len=kv_max,
            quantize=quantize,
            config=mcfg,
            export_config=ec.ExportConfig(output_logits_on_prefill=True),
        )
    made = sorted(work.glob("*.tflite"))
    if len(made) != 1:
        from edgekit.errors import InternalError

        raise InternalError(f"litert-torch wrote {len(made)} .tflite files")
    shutil.move(str(made[0]), out_dir / "model.tflite")
    shutil.rmtree(work, ignore_errors=True)
    eos = c.get("eos_token_id")
    facts = {
        "num_layers": int(c["num_hidden_layers"]),
        "num_kv_heads": int(c.get("num_key_value_heads") or c["num_attention_heads"]),
        "head_dim": int(c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]),
        "vocab_size": int(c["vocab_size"]),
        "context_length": kv_max,
        "eos_token_ids": [eos] if isinstance(eos, int) else list(eos or []),
        "model_type": str(c.get("model_type", "")),
        "exporter": f"litert-torch generative ({quantize})",
        "prefill_lens": lens,
    }
    (out_dir / DECODER_JSON).write_text(json.dumps(facts, indent=2) + "\n")
    return out_dir / "model.tflite"
