"""automatic-speech-recognition: Whisper-style encoder-decoders: audio in (log-mel features), text out.

Compressed by the encoder-decoder pipeline (:mod:`edgekit.generation.seq2seq_pipeline`) like
text2text-generation; what differs is declared here: the encoder reads log-mel features of a fixed audio
window (computed in numpy on the device, :mod:`edgekit.generation.audio`), the test set is labelled
speech (``sotu-speech``, shipped), and the metric is the word error rate (lower is better). Served by
:class:`edgekit.generation.speech.SpeechRecognizer` (``transcribe``; ``edgekit run ARTIFACT --audio F.wav``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.tasks import register
from edgekit.tasks.text2text_generation import EncoderDecoderTask


@register
class SpeechRecognition(EncoderDecoderTask):
    name = "automatic-speech-recognition"
    description = "log-mel audio features into an encoder, a decoder with a KV cache; a transcript"
    modality = "audio"
    output_name = "logits"
    architectures = ("WhisperForConditionalGeneration",)
    auto_class = "AutoModelForSpeechSeq2Seq"
    api_method = "transcribe"
    request_field = "audio"
    headline_key = "wer"
    headline_label = "word error rate on test speech"
    budget_key = "wer"
    seq2seq_data = "sotu-speech"
    metrics = ("wer",)
    lower_is_better = True
    distillable = False  # no training speech is shipped
    not_served = (
        "serving and bundling speech recognition models are not supported yet: run the artifact folder "
        "(its manifest hashes every file) with edgekit run FOLDER --audio FILE.wav or edgekit.load_generator"
    )

    def test_rows(self, data: str) -> list[dict]:
        from edgekit.generation.speech_data import speech_rows

        return speech_rows(data)

    def sources(self, ckpt, rows: list[dict]) -> list:
        """Log-mel features [mel bins, frames] of each row's audio (transformers' WhisperFeatureExtractor on the
        build machine; the device computes the same in numpy)."""
        from transformers import WhisperFeatureExtractor

        from edgekit.generation.audio import read_wav

        fe = WhisperFeatureExtractor.from_pretrained(str(ckpt.path))
        feats = []
        for r in rows:
            x = read_wav(r["audio"], fe.sampling_rate)
            feats.append(fe(x, sampling_rate=fe.sampling_rate, return_tensors="np").input_features[0])
        return [np.asarray(f, np.float32) for f in feats]

    def score(self, tokenizer, outputs: list[list[int]], rows: list[dict]) -> dict[str, Any]:
        from edgekit.generation.speech_data import word_error_rate

        hyps = [tokenizer.decode(o, skip_special_tokens=True) for o in outputs]
        return {"wer": round(word_error_rate(hyps, [r["target"] for r in rows[: len(hyps)]]), 3)}
