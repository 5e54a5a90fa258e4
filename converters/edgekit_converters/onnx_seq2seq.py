"""PyTorch encoder-decoder (T5, mT5, BART, Marian; Whisper) -> two ONNX graphs: an encoder and a decoder with a
KV cache.

``encoder.onnx``: ``input_ids`` [batch, source] and ``attention_mask`` [batch, source] in (speech models:
``input_features`` [batch, mel bins, frames], log-mel features of a fixed window);
``cross.N.key`` / ``cross.N.value`` [batch, heads, source, head_dim] out: every decoder layer's
cross-attention keys and values, computed once per input (the graph is the encoder plus each layer's
key/value projections of its output, nothing else of the decoder).

``decoder.onnx``: ``input_ids`` [batch, sequence] (the decoder's tokens), ``encoder_attention_mask``
[batch, source], ``past_key_values.N.key`` / ``.value`` [batch, heads, past, head_dim] and the cross
keys/values in (speech models take no source mask: every frame is read); ``logits`` [batch, sequence, vocab]
and ``present.N.key`` / ``.value`` out. The first step feeds the decoder prompt (the start token; Whisper
adds its language, task and no-timestamps tokens) with a past of length 0; each next step one token and
the presents.

Both graphs are traced (TorchScript exporter, eager attention). The decoder runs through transformers' own
``EncoderDecoderCache``, so any architecture whose attention reads a filled cross-attention cache exports
without per-model code; the encoder graph names each family's cross-attention projections (two spellings:
BART/Marian/Whisper, T5). The shape facts go in ``seq2seq.json`` beside the graphs.
"""

from __future__ import annotations

import json
from pathlib import Path

SEQ2SEQ_JSON = "seq2seq.json"
ENCODER, DECODER = "encoder.onnx", "decoder.onnx"


def _ids(value) -> list[int]:
    return [] if value is None else ([int(value)] if isinstance(value, int) else [int(v) for v in value])


def decoder_prompt(config, generation=None) -> list[int]:
    """The tokens decoding starts from: the decoder start token, then (Whisper) the language and task tokens of a
    multilingual model (English transcription, as ``generate(language="en", task="transcribe")``) and the
    no-timestamps token, or an older generation config's forced decoder ids."""
    start = getattr(generation, "decoder_start_token_id", None)
    start = config.decoder_start_token_id if start is None else start
    start = config.pad_token_id if start is None else start
    prompt = [int(start)]
    if generation is None or config.model_type != "whisper":
        return prompt
    if getattr(generation, "is_multilingual", False):
        prompt += [int(generation.lang_to_id["<|en|>"]), int(generation.task_to_id["transcribe"])]
    elif getattr(generation, "forced_decoder_ids", None):
        prompt += [int(tok) for _, tok in sorted(generation.forced_decoder_ids) if tok is not None]
        return prompt
    if getattr(generation, "no_timestamps_token_id", None) is not None:
        prompt.append(int(generation.no_timestamps_token_id))
    return prompt


def seq2seq_facts(config, generation=None) -> dict:
    """Layers, heads, head size, vocabulary, special tokens, the decoder prompt, suppressed tokens and lengths of a
    transformers encoder-decoder config (and its generation config)."""
    layers = int(getattr(config, "num_decoder_layers", None) or getattr(config, "decoder_layers", 0) or 0)
    heads = int(getattr(config, "num_heads", None) or getattr(config, "decoder_attention_heads", 0) or 0)
    d_model = int(config.d_model)
    head_dim = int(getattr(config, "d_kv", None) or d_model // heads)
    eos = config.eos_token_id
    prompt = decoder_prompt(config, generation)
    speech = config.model_type == "whisper"
    context = getattr(config, "max_position_embeddings", 0) or getattr(config, "n_positions", 0) or 512
    vocab = int(config.vocab_size)

    def suppressed(name: str) -> list[int]:
        value = getattr(generation, name, None) if generation is not None else None
        value = getattr(config, name, None) if value is None else value
        return [t for t in _ids(value) if 0 <= t < vocab]

    facts = {
        "num_layers": layers,
        "num_heads": heads,
        "head_dim": head_dim,
        "vocab_size": vocab,
        "decoder_start_token_id": prompt[0],
        "decoder_prompt": prompt,
        "eos_token_ids": _ids(eos),
        "pad_token_id": int(config.pad_token_id if config.pad_token_id is not None else 0),
        "context_length": int(config.max_target_positions if speech else context),
        "model_type": str(config.model_type),
        "input": "input_features" if speech else "input_ids",
        "suppress_tokens": suppressed("suppress_tokens"),
        "begin_suppress_tokens": suppressed("begin_suppress_tokens"),
    }
    if speech:
        facts["feature_shape"] = [int(config.num_mel_bins), 2 * int(config.max_source_positions)]
    return facts


def kv_names(layers: int) -> tuple[list[str], list[str], list[str]]:
    """(past, present, cross) tensor names, key then value per layer."""
    past = [f"past_key_values.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    present = [f"present.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    cross = [f"cross.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    return past, present, cross


def _cross_projections(model, layers: int) -> list[tuple]:
    """Each decoder layer's cross-attention key and value projections, in layer order (BART, mBART, Marian and
    Whisper name the module ``encoder_attn`` with ``k_proj``/``v_proj``; T5 and mT5 ``EncDecAttention`` with
    ``k``/``v``)."""
    found = [
        (m.k_proj, m.v_proj) if hasattr(m, "k_proj") else (m.k, m.v)
        for name, m in model.named_modules()
        if name.endswith((".encoder_attn", ".EncDecAttention"))
    ]
    if len(found) != layers:
        raise ValueError(f"found {len(found)} cross-attention modules for {layers} decoder layers")
    return found


def _encoder_module(model, layers: int, heads: int, head_dim: int):
    import torch

    class EncoderCross(torch.nn.Module):
        """The encoder, then each decoder layer's cross-attention keys and values: its key/value projections of
        the encoder output, split into heads as the attention's cache holds them. Nothing else of the decoder is
        in the graph (running a decoder step to fill the cache would keep the decoder's layers and embedding
        table in it, for the shapes they give the cache)."""

        def __init__(self, inner) -> None:
            super().__init__()
            self.model = inner
            self.projections = torch.nn.ModuleList(
                torch.nn.ModuleList(pair) for pair in _cross_projections(inner, layers)
            )

        def forward(self, source, attention_mask=None):
            masked = {} if attention_mask is None else {"attention_mask": attention_mask}
            hidden = self.model.get_encoder()(**{self.model.main_input_name: source}, **masked)[0]
            batch = hidden.shape[0]
            flat = []
            for key, value in self.projections:
                for proj in (key, value):
                    flat.append(proj(hidden).view(batch, -1, heads, head_dim).transpose(1, 2))
            return tuple(flat)

    return EncoderCross(model).eval()


def decoder_call(model, input_ids, mask, past, cross, layers: int, d_model: int):
    """The model's decoder over ``input_ids`` after the self-attention ``past`` (key, value per layer; empty:
    none), reading every layer's ``cross`` keys/values from a filled cross-attention cache (transformers' own
    ``EncoderDecoderCache``, so no per-family code); the model output, with the grown cache."""
    import torch
    from transformers import DynamicCache, EncoderDecoderCache

    self_cache, cross_cache = DynamicCache(), DynamicCache()
    for i in range(layers):
        if past:
            self_cache.update(past[2 * i], past[2 * i + 1], i)
        cross_cache.update(cross[2 * i], cross[2 * i + 1], i)
    cache = EncoderDecoderCache(self_cache, cross_cache)
    for i in range(layers):
        cache.is_updated[i] = True
    # the hidden states are only read for their shape: the cross keys/values are cached
    hidden = torch.zeros(input_ids.shape[0], cross[0].shape[2], d_model, dtype=cross[0].dtype)
    return model(
        encoder_outputs=(hidden,),
        decoder_input_ids=input_ids,
        past_key_values=cache,
        use_cache=True,
        **({} if mask is None else {"attention_mask": mask}),
    )


def _decoder_module(model, layers: int, d_model: int, masked: bool):
    import torch

    class DecoderStep(torch.nn.Module):
        """One decoder call over a filled cross cache and the past self-attention cache (``masked``: the source
        mask is the second input, as text encoders pad their batches)."""

        def __init__(self, inner) -> None:
            super().__init__()
            self.model = inner

        def forward(self, input_ids, *rest):
            mask = rest[0] if masked else None
            kv = rest[1:] if masked else rest
            past, cross = kv[: 2 * layers], kv[2 * layers :]
            out = decoder_call(self.model, input_ids, mask, past, cross, layers, d_model)
            flat = []
            for layer in out.past_key_values.self_attention_cache.layers:
                flat.extend((layer.keys, layer.values))
            return (out.logits, *flat)

    return DecoderStep(model).eval()


def share_tied_embedding(path: Path) -> bool:
    """Store a tied output projection once: the trace keeps the token embedding table [vocab, d] for the input's
    lookup and its transpose [d, vocab] for the logits' MatMul, two copies of one matrix (80 MB each at Whisper's
    vocabulary). When the MatMul's weight is exactly the table's transpose, the lookup reads the MatMul's weight
    instead (a Gather of its columns, then a transpose to [batch, sequence, d]) and the table is dropped; the
    outputs are bit for bit the same. Returns whether the graph changed."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load(str(path))
    inits = {i.name: i for i in m.graph.initializer}
    lookup = next(
        (n for n in m.graph.node if n.op_type == "Gather" and n.input[1] == "input_ids" and n.input[0] in inits),
        None,
    )
    if lookup is None or any(a.name == "axis" and a.i != 0 for a in lookup.attribute):
        return False
    table = numpy_helper.to_array(inits[lookup.input[0]])
    head = next(
        (
            n
            for n in m.graph.node
            if n.op_type == "MatMul"
            and n.input[1] in inits
            and list(inits[n.input[1]].dims) == [table.shape[1], table.shape[0]]
            and np.array_equal(numpy_helper.to_array(inits[n.input[1]]), table.T)
        ),
        None,
    )
    if head is None:
        return False
    columns = lookup.output[0] + "_columns"
    at = list(m.graph.node).index(lookup)
    m.graph.node.remove(lookup)
    m.graph.node.insert(at, helper.make_node("Transpose", [columns], [lookup.output[0]], perm=[1, 2, 0]))
    m.graph.node.insert(at, helper.make_node("Gather", [head.input[1], "input_ids"], [columns], axis=1))
    if not any(lookup.input[0] in n.input for n in m.graph.node):
        m.graph.initializer.remove(inits[lookup.input[0]])
    onnx.save(m, str(path))
    return True


def export_seq2seq(model, out_dir: Path, opset: int = 17) -> tuple[Path, Path]:
    """Trace ``model`` (eager attention) into ``out_dir/encoder.onnx`` and ``out_dir/decoder.onnx``."""
    import torch

    from edgekit_converters.base import quiet_export

    facts = seq2seq_facts(model.config, getattr(model, "generation_config", None))
    layers, heads, hd = facts["num_layers"], facts["num_heads"], facts["head_dim"]
    past_names, present_names, cross_names = kv_names(layers)
    speech = facts["input"] == "input_features"
    batch, seq, past_len = 2, 3, 4
    vocab = facts["vocab_size"]
    if speech:  # a fixed window of log-mel frames; the encoder halves it
        enc_args: tuple = (torch.randn(batch, *facts["feature_shape"]),)
        enc_inputs, source = ["input_features"], facts["feature_shape"][1] // 2
        enc_axes = {"input_features": {0: "batch"}, **{n: {0: "batch"} for n in cross_names}}
    else:
        source = 7
        mask = torch.ones(batch, source, dtype=torch.int64)
        mask[1, -2:] = 0  # a padded row: the mask must stay a graph input, not a folded constant
        enc_args = (torch.randint(3, vocab, (batch, source)), mask)
        enc_inputs = ["input_ids", "attention_mask"]
        enc_axes = {
            "input_ids": {0: "batch", 1: "source"},
            "attention_mask": {0: "batch", 1: "source"},
            **{n: {0: "batch", 2: "source"} for n in cross_names},
        }
    out_dir.mkdir(parents=True, exist_ok=True)
    enc_path, dec_path = out_dir / ENCODER, out_dir / DECODER
    with quiet_export(), torch.no_grad():
        torch.onnx.export(
            _encoder_module(model, layers, heads, hd),
            enc_args,
            str(enc_path),
            dynamo=False,
            opset_version=opset,
            input_names=enc_inputs,
            output_names=cross_names,
            dynamic_axes=enc_axes,
            do_constant_folding=True,
        )
        dec_ids = torch.randint(3, vocab, (batch, seq))
        past = [torch.randn(batch, heads, past_len, hd) for _ in past_names]
        cross = [torch.randn(batch, heads, source, hd) for _ in cross_names]
        dynamic = {"input_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}}
        dynamic.update({n: {0: "batch", 2: "past_sequence"} for n in past_names})
        dynamic.update({n: {0: "batch", 2: "total_sequence"} for n in present_names})
        dynamic.update({n: {0: "batch"} if speech else {0: "batch", 2: "source"} for n in cross_names})
        masked = [] if speech else ["encoder_attention_mask"]
        if masked:
            dynamic["encoder_attention_mask"] = {0: "batch", 1: "source"}
        torch.onnx.export(
            _decoder_module(model, layers, int(model.config.d_model), masked=not speech),
            (dec_ids, *enc_args[1:], *past, *cross),
            str(dec_path),
            dynamo=False,
            opset_version=opset,
            input_names=["input_ids", *masked, *past_names, *cross_names],
            output_names=["logits", *present_names],
            dynamic_axes=dynamic,
            do_constant_folding=True,
        )
    facts["tied_embedding_shared"] = share_tied_embedding(dec_path)
    (out_dir / SEQ2SEQ_JSON).write_text(json.dumps(facts, indent=2) + "\n")
    return enc_path, dec_path
