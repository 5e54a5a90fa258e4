"""Labelled speech for speech recognisers, from audio the project ships (no hub downloads).

``sotu-speech``: 20 held-out State of the Union sentences spoken by eSpeak NG (16 kHz mono WAV; built by
``calibration_data/build_speech.py``, listed in ``calibration_data/MANIFEST``). A directory with a
``test.jsonl`` (objects with ``audio``, a WAV file inside that directory, and ``text``) is a user's own
set. Scored by word error rate (jiwer) after lower-casing and removing punctuation.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.data.calibration import data_dir
from edgekit.errors import InputError
from edgekit.generation.text2text_data import read_jsonl

BUILTIN = {"sotu-speech": "speech"}


def speech_rows(name: str) -> list[dict]:
    """Test rows ``{"audio": Path, "target": str}`` of a built-in set or of a directory with test.jsonl."""
    d = data_dir() / BUILTIN[name] if name in BUILTIN else Path(name)
    index = d / "test.jsonl"
    if not index.is_file():
        raise InputError(
            f"unknown speech data {name!r}: give {', '.join(BUILTIN)} or a directory with test.jsonl "
            "(objects with audio, a WAV file in that directory, and text)"
        )
    root = d.resolve()
    rows = []
    for row in read_jsonl(index, ("audio", "text")):
        audio = (d / row["audio"]).resolve()
        if root not in audio.parents or not audio.is_file():
            raise InputError(f"{index}: {row['audio']} is not a file inside {d}")
        rows.append({"audio": audio, "target": row["text"]})
    return rows


def word_error_rate(hypotheses: list[str], references: list[str]) -> float:
    """Corpus word error rate in percent (jiwer) after lower-casing and removing punctuation."""
    import jiwer

    norm = jiwer.Compose(
        [
            jiwer.ToLowerCase(),
            jiwer.RemovePunctuation(),
            jiwer.RemoveMultipleSpaces(),
            jiwer.Strip(),
            jiwer.ReduceToListOfListOfWords(),
        ]
    )
    # an empty hypothesis is all deletions: jiwer refuses empty strings after normalisation, so give it a word
    # that matches nothing
    hyps = [h if h.strip(" .,!?;:") else "\u2205" for h in hypotheses]
    return 100.0 * jiwer.wer(references, hyps, reference_transform=norm, hypothesis_transform=norm)
