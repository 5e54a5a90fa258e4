"""PyTorch encoder-decoder (T5, mT5, BART, Marian; Whisper) -> two LiteRT graphs with fixed shapes.

litert-torch has no encoder-decoder KV-cache path (its T5 example is hard-wired to t5-base), and a TFLite
signature has static shapes, so a self-attention cache that grows by one token a step does not map onto it.
This converter writes what does:

``encoder.tflite``, signature ``encode``: ``source`` [1, S] token ids (int32; S is ``source_length``) and
``attention_mask`` [1, S] in (speech models: ``source`` [1, mel bins, frames]); every decoder layer's
cross-attention keys and values out, as :mod:`edgekit_converters.onnx_seq2seq`'s encoder graph gives them
(the same module: the encoder plus each layer's key/value projections). Shorter sources are padded and masked.

``decoder.tflite``, one signature ``decode_<L>`` per decoder length L (``decoder_lengths``): the decoder's
tokens so far [1, L] (padded at the end), the source mask and the cross keys/values in, ``logits``
[1, L, vocab] out. There is no self-attention cache: each step runs the decoder over every token so far, in
the smallest signature that holds them (the causal mask keeps the padding from touching earlier positions).
That costs O(L^2) per output instead of O(L), which is what the static shapes buy; the ONNX export keeps
the cache. Both graphs are written in float32; the seq2seq pipeline's ``quantize`` stage runs edgekit's TFLite
quantize backend on each.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from edgekit_converters.onnx_seq2seq import SEQ2SEQ_JSON, _encoder_module, decoder_call, seq2seq_facts

REQUIRES = ("litert_torch", "ai_edge_litert", "ai_edge_quantizer")  # the last for the quantize stage
ENCODER_TFLITE, DECODER_TFLITE = "encoder.tflite", "decoder.tflite"
DECODER_LENGTHS = (16, 32, 64, 128)
SOURCE_LENGTH = 128


def supported() -> str | None:
    """Why this converter cannot run here (None: it can)."""
    from edgekit_runtimes.base import missing_modules

    missing = missing_modules(REQUIRES)
    return f"{', '.join(missing)} not installed" if missing else None


def _decoder_module(model, layers: int, d_model: int, masked: bool):
    import torch

    class DecoderFull(torch.nn.Module):
        """The decoder over all its tokens at once, reading the encoder's cross keys/values from a filled
        cross-attention cache (no self-attention past; the cache it grows is not returned)."""

        def __init__(self, inner) -> None:
            super().__init__()
            self.model = inner

        def forward(self, input_ids, *rest):
            mask = rest[0] if masked else None
            cross = rest[1:] if masked else rest
            return decoder_call(self.model, input_ids, mask, (), cross, layers, d_model).logits

    return DecoderFull(model).eval()


def convert(
    model,
    out_dir: Path,
    source_length: int = SOURCE_LENGTH,
    decoder_lengths: tuple[int, ...] = DECODER_LENGTHS,
) -> tuple[Path, Path]:
    """Write ``out_dir/encoder.tflite``, ``out_dir/decoder.tflite`` and ``seq2seq.json`` for ``model`` (eager
    attention), in float32 (edgekit's TFLite quantize backend quantizes them)."""
    import tempfile

    import torch

    from edgekit_converters.base import quiet_export

    facts = seq2seq_facts(model.config, getattr(model, "generation_config", None))
    layers, heads, hd = facts["num_layers"], facts["num_heads"], facts["head_dim"]
    speech = facts["input"] == "input_features"
    lens = sorted({n for n in decoder_lengths if n <= facts["context_length"]}) or [facts["context_length"]]
    if speech:
        enc_sample: dict = {"source": torch.zeros(1, *facts["feature_shape"])}
        source = facts["feature_shape"][1] // 2
    else:
        source = min(int(source_length), int(facts["context_length"]))
        enc_sample = {
            "source": torch.zeros(1, source, dtype=torch.int32),
            "attention_mask": torch.ones(1, source, dtype=torch.int32),
        }
    out_dir.mkdir(parents=True, exist_ok=True)
    enc_path, dec_path = out_dir / ENCODER_TFLITE, out_dir / DECODER_TFLITE
    with quiet_export(), torch.no_grad(), tempfile.TemporaryDirectory() as tmp:
        import litert_torch

        encoder = _encoder_module(model, layers, heads, hd)
        raw_enc, raw_dec = Path(tmp) / ENCODER_TFLITE, Path(tmp) / DECODER_TFLITE
        litert_torch.signature("encode", encoder, sample_kwargs=enc_sample).convert().export(str(raw_enc))
        decoder = _decoder_module(model, layers, int(model.config.d_model), masked=not speech)
        cross = tuple(torch.zeros(1, heads, source, hd) for _ in range(2 * layers))
        mask = () if speech else (torch.ones(1, source, dtype=torch.int32),)
        converter = None
        for n in lens:
            args = (torch.zeros(1, n, dtype=torch.int32), *mask, *cross)
            converter = (
                litert_torch.signature(f"decode_{n}", decoder, sample_args=args)
                if converter is None
                else converter.signature(f"decode_{n}", decoder, sample_args=args)
            )
        assert converter is not None
        converter.convert().export(str(raw_dec))
        for raw, path in ((raw_enc, enc_path), (raw_dec, dec_path)):
            shutil.move(str(raw), path)
    facts.update(
        format="tflite",
        source_length=source,
        decoder_lengths=lens,
        exporter="litert-torch, fixed shapes, no self-attention cache",
    )
    (out_dir / SEQ2SEQ_JSON).write_text(json.dumps(facts, indent=2) + "\n")
    return enc_path, dec_path
