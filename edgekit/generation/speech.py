"""Speech recognition on the device (ONNX Runtime and numpy, no torch): a WAV file in, its transcript out.

:class:`SpeechRecognizer` is an automatic-speech-recognition artifact (Whisper-style): the numpy log-mel
front end (:mod:`edgekit.generation.audio`), the encoder and KV-cache decoder of
:class:`edgekit.generation.seq2seq.Seq2SeqSession` (greedy, seeded sampling or beam search, from the
decoder prompt the export recorded: start, language and task tokens, no timestamps), and the tokenizer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from edgekit.generation.audio import LogMel
from edgekit.generation.runtime import text_pieces, tokenizer_and_defaults
from edgekit.generation.seq2seq import Seq2SeqOptions, open_seq2seq, stream


class SpeechRecognizer:
    """Audio (a 16-bit PCM WAV path at the model's sampling rate, or a 1-D float array) in, text out."""

    options = Seq2SeqOptions

    def __init__(self, model_dir: str | Path, threads: int = 2, providers: Sequence[str] | None = None) -> None:
        model_dir = Path(model_dir)
        self.session = open_seq2seq(model_dir, threads, providers)
        self.features = LogMel(model_dir)
        self.engine_name = "python"
        self._lock = threading.Lock()
        self.tokenizer, self.defaults = tokenizer_and_defaults(model_dir)

    @property
    def facts(self) -> dict:
        return self.session.facts

    def stream(self, audio, stats: dict | None = None, **options) -> Iterator[str]:
        """Pieces of the transcript as they are decoded (beam search: all at once at the end)."""
        opts = Seq2SeqOptions.from_dict(options)
        stats = stats if stats is not None else {}
        stats.update(completion_tokens=0, finish_reason="stop", prompt_tokens=0)
        feats = self.features(audio)
        with self._lock:
            yield from text_pieces(self.tokenizer, stream(self.session, feats, opts), opts, stats)

    def transcribe(self, audio, **options) -> str:
        return "".join(self.stream(audio, **options)).strip()

    generate = transcribe  # what `edgekit run --audio` and the generic generation paths call
