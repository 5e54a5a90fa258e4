"""Tiny Transformer checkpoints built in code, for tests and examples (no downloads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.data.calibration import data_dir, load_texts
from edgekit.tasks import get_task


def make_tiny_checkpoint(
    directory: str | Path,
    *,
    task: str = "feature-extraction",
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 2,
    vocab_size: int = 600,
    num_labels: int = 3,
    seed: int = 0,
) -> Path:
    """Write a BERT checkpoint (config.json, model.safetensors, tokenizer) to ``directory``.

    The WordPiece tokenizer is trained on the shipped calibration texts, so
    real text maps to real tokens.
    """
    import torch
    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, BertTokenizer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        load_texts(data_dir() / "sotu_calibration.txt"),
        trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False),
    )
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = BertTokenizer(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )
    fast.save_pretrained(str(directory))

    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden_size * 4,
        max_position_embeddings=128,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    spec = get_task(task)
    if spec.labelled:  # a classification head: names for its labels
        config.num_labels = num_labels
        config.id2label = {i: f"label_{i}" for i in range(num_labels)}
        config.label2id = {v: k for k, v in config.id2label.items()}
    if spec.auto_class == "AutoModel":
        model = BertModel(config, add_pooling_layer=False)
        config.architectures = ["BertModel"]
    else:  # the task's head (sequence or token classification, question answering, ...)
        model = getattr(transformers, spec.auto_class).from_config(config)
    seeded_init(model, seed)
    model.eval().save_pretrained(str(directory), safe_serialization=True)
    return directory


def seeded_init(model, seed: int) -> None:
    """Set every parameter from one seeded generator, in name order, the way BERT initialises them
    (normal(0, 0.02) matrices and embeddings, zero biases, unit LayerNorm scales, a zero padding row).

    The weights then depend on the seed and the shapes alone, not on how a transformers release
    initialises modules, so the tiny model (and the CI gate's baseline) is the same on every install.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    pad = getattr(model.config, "pad_token_id", None)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("bias"):
                p.zero_()
            elif "LayerNorm" in name or "layernorm" in name:
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
                if name.endswith("word_embeddings.weight") and pad is not None:
                    p[pad].zero_()


def with_custom_op(src: str | Path, dst: str | Path, custom_code: str = "EdgekitMissingOp") -> Path:
    """Copy a .tflite model, turning its first operator into a custom op no runtime knows."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    buf = Path(src).read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))
    code = model.operatorCodes[0]
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = custom_code
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    Path(dst).write_bytes(bytes(builder.Output()))
    return Path(dst)


def make_tiny_vit(
    directory: str | Path,
    *,
    epochs: float = 15.0,
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 4,
    seed: int = 0,
) -> Path:
    """A tiny Vision Transformer trained briefly on scikit-learn's digits (seconds on a CPU)."""
    from dataclasses import replace

    from edgekit.data.datasets import load_dataset
    from edgekit.training.finetune import VISION_SETTINGS, train_image_classifier

    directory = Path(directory)
    arch = {
        "patch_size": 2,
        "hidden_size": hidden_size,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": hidden_size * 2,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    }
    train_image_classifier(
        "tiny",
        load_dataset("digits"),
        directory,
        arch=arch,
        progress=False,
        settings=replace(VISION_SETTINGS, epochs=epochs, lr=3e-3, seed=seed),
    )
    return directory


# Random-weight twins of the encoder families edgekit exports: config keys per model type (the rest as BERT's)
ARCHITECTURES: dict[str, dict] = {
    "bert": {},
    "roberta": {},
    "xlm-roberta": {},
    "distilbert": {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64},
    "albert": {"embedding_size": 16},
    "electra": {"embedding_size": 32},
    "deberta-v2": {},
    "modernbert": {"global_attn_every_n_layers": 1, "local_attention": 16},
    "mpnet": {},
}


def make_tiny_architecture(directory: str | Path, model_type: str, *, task: str = "feature-extraction") -> Path:
    """:func:`make_tiny_checkpoint`'s tokenizer with a random-weight (seeded) ``model_type`` model of the same
    vocabulary: 2 layers, hidden size 32, ``task``'s head."""
    import json

    import transformers

    ckpt = make_tiny_checkpoint(directory, task=task)
    vocab = json.loads((ckpt / "config.json").read_text())["vocab_size"]
    common = {
        "vocab_size": vocab,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 130,
        "pad_token_id": 0,
    }
    extra = ARCHITECTURES[model_type]
    if model_type == "distilbert":  # its own names for the same sizes
        common = {k: v for k, v in common.items() if k in ("vocab_size", "max_position_embeddings", "pad_token_id")}
    config = transformers.AutoConfig.for_model(model_type, **common, **extra)
    spec = get_task(task)
    if spec.labelled:
        config.num_labels = 3
        config.id2label = {i: f"label_{i}" for i in range(3)}
        config.label2id = {v: k for k, v in config.id2label.items()}
    model = getattr(transformers, spec.auto_class).from_config(config)
    seeded_init(model, 0)
    for f in ckpt.glob("model*.safetensors"):
        f.unlink()
    (ckpt / "config.json").unlink()
    model.eval().save_pretrained(str(ckpt), safe_serialization=True)
    return ckpt


# Decoder families the coverage table and tests build from configs (random weights, no downloads):
# (transformers config class, model class, extra config keys)
_GQA = {  # a 2-layer grouped-query-attention decoder (Llama-style sizes)
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 256,
}
DECODER_FAMILIES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", {"n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 256}),
    "llama": ("LlamaConfig", "LlamaForCausalLM", _GQA),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {**_GQA, "tie_word_embeddings": True}),
    "phi3": (
        "Phi3Config",
        "Phi3ForCausalLM",
        {**_GQA, "num_key_value_heads": 4, "original_max_position_embeddings": 256, "pad_token_id": None},
    ),
    "gemma": (
        "GemmaConfig",
        "GemmaForCausalLM",
        {**_GQA, "num_key_value_heads": 1, "head_dim": 16, "pad_token_id": None},
    ),
    # SmolLM: the Llama architecture, small, with tied embeddings
    "smollm": (
        "LlamaConfig",
        "LlamaForCausalLM",
        {
            **_GQA,
            "num_hidden_layers": 3,
            "num_key_value_heads": 1,
            "intermediate_size": 160,
            "tie_word_embeddings": True,
        },
    ),
}


def make_tiny_decoder(directory: str | Path, family: str = "llama", vocab_size: int = 512, seed: int = 0) -> Path:
    """A random-weight decoder of ``family`` (see DECODER_FAMILIES) with a byte-level BPE tokenizer trained on
    the shipped held-out text (no pad token, as GPT-2's), saved as a normal checkpoint."""
    import torch
    import transformers

    from edgekit.generation.corpus import corpus_files, documents, train_tokenizer

    d = Path(directory)
    tok = train_tokenizer(documents(corpus_files("sotu")[1]), vocab_size)
    cfg_name, model_name, extra = DECODER_FAMILIES[family]
    config = getattr(transformers, cfg_name)(
        vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **extra
    )
    torch.manual_seed(seed)
    model = getattr(transformers, model_name)(config).eval()
    model.config.architectures = [model_name]
    model.save_pretrained(str(d), safe_serialization=True)
    tok.save_pretrained(d)
    model.generation_config.save_pretrained(str(d))
    return d


# encoder-decoder families of the random-weight twins: config class, model class, config kwargs (small; eager)
_T5_SMALL = {"d_model": 64, "d_kv": 16, "d_ff": 128, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 4}
_ENC_DEC_SMALL: dict[str, Any] = {  # BART's, Marian's and Whisper's size fields
    "d_model": 64,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 4,
    "decoder_attention_heads": 4,
    "encoder_ffn_dim": 128,
    "decoder_ffn_dim": 128,
}
_BART_SMALL = {**_ENC_DEC_SMALL, "max_position_embeddings": 256}
SEQ2SEQ_FAMILIES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "t5": ("T5Config", "T5ForConditionalGeneration", _T5_SMALL),
    "mt5": ("MT5Config", "MT5ForConditionalGeneration", _T5_SMALL),
    "bart": ("BartConfig", "BartForConditionalGeneration", {**_BART_SMALL, "forced_eos_token_id": None}),
    "marian": ("MarianConfig", "MarianMTModel", _BART_SMALL),
}


def make_tiny_seq2seq(directory: str | Path, family: str = "t5", vocab_size: int = 512, seed: int = 0) -> Path:
    """A random-weight encoder-decoder of ``family`` (see SEQ2SEQ_FAMILIES) with a byte-level BPE tokenizer
    (pad 0, end of sequence 1) trained on the shipped held-out text, saved as a normal checkpoint. Weights are
    scaled up from the initialisation so that the random model's next-token distributions are not flat (beam
    search over near-ties would compare rounding, not the export)."""
    import torch
    import transformers

    from edgekit.generation.corpus import corpus_files, documents
    from edgekit.generation.text2text_train import train_tokenizer

    d = Path(directory)
    tok = train_tokenizer(documents(corpus_files("sotu")[1]), vocab_size)
    cfg_name, model_name, extra = SEQ2SEQ_FAMILIES[family]
    ids = {"pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id}
    start = tok.eos_token_id if family == "bart" else tok.pad_token_id  # BART starts decoding at </s>
    config = getattr(transformers, cfg_name)(
        vocab_size=len(tok), decoder_start_token_id=start, bos_token_id=tok.eos_token_id, **ids, **extra
    )
    torch.manual_seed(seed)
    model = getattr(transformers, model_name)(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(3.0)
    model.config.architectures = [model_name]
    model.generation_config = transformers.GenerationConfig(
        decoder_start_token_id=start, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    model.save_pretrained(str(d), safe_serialization=True)
    tok.save_pretrained(d)
    model.generation_config.save_pretrained(str(d))
    return d


# whisper-tiny's shape (39M parameters, 30 s windows, 51,865-token vocabulary), for timing at real scale
WHISPER_TINY_SHAPE: dict[str, Any] = {
    "d_model": 384,
    "encoder_layers": 4,
    "decoder_layers": 4,
    "encoder_attention_heads": 6,
    "decoder_attention_heads": 6,
    "encoder_ffn_dim": 1536,
    "decoder_ffn_dim": 1536,
    "vocab_size": 51865,
}


def make_tiny_whisper(
    directory: str | Path, mel_bins: int = 80, seconds: int = 6, seed: int = 0, shape: dict[str, Any] | None = None
) -> Path:
    """A random-weight Whisper checkpoint (speech recognition) saved as a normal one: its feature extractor's
    settings (``seconds`` of audio a window, ``mel_bins`` log-mel bins), a byte-level BPE tokenizer trained on
    the shipped held-out text (pad 0, end of sequence 1), and a generation config whose decoder prompt has two
    tokens (start, then a no-timestamps token) and that suppresses tokens (always, and at the first step), so
    tests see every part of Whisper's decoding. Weights are scaled up as in :func:`make_tiny_seq2seq`. ``shape``
    replaces the size fields (e.g. :data:`WHISPER_TINY_SHAPE`; a vocabulary larger than the tokenizer's is
    allowed: the extra ids decode to nothing)."""
    import torch
    from transformers import GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    from edgekit.generation.corpus import corpus_files, documents
    from edgekit.generation.text2text_train import train_tokenizer

    d = Path(directory)
    tok = train_tokenizer(documents(corpus_files("sotu")[1]), 512)
    fe = WhisperFeatureExtractor(feature_size=mel_bins, chunk_length=seconds)
    start, eos, no_timestamps = tok.pad_token_id, tok.eos_token_id, 3
    config = WhisperConfig(
        **{**_ENC_DEC_SMALL, "vocab_size": len(tok), **(shape or {})},
        num_mel_bins=mel_bins,
        max_source_positions=fe.nb_max_frames // 2,
        max_target_positions=128,
        pad_token_id=tok.pad_token_id,
        bos_token_id=eos,
        eos_token_id=eos,
        decoder_start_token_id=start,
        begin_suppress_tokens=[220],
        suppress_tokens=[5, 6],
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(3.0)
    model.config.architectures = ["WhisperForConditionalGeneration"]
    model.generation_config = GenerationConfig(
        decoder_start_token_id=start,
        eos_token_id=eos,
        pad_token_id=tok.pad_token_id,
        no_timestamps_token_id=no_timestamps,
        begin_suppress_tokens=[220],
        suppress_tokens=[5, 6],
    )
    model.save_pretrained(str(d), safe_serialization=True)
    model.generation_config.save_pretrained(str(d))
    tok.save_pretrained(d)
    fe.save_pretrained(str(d))
    return d
