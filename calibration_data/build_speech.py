"""Rebuild the shipped speech test set: held-out State of the Union sentences spoken by eSpeak NG.

Usage (needs the espeak-ng program, Debian package espeak-ng 1.51, and scipy; run from this folder):
    python build_speech.py

Takes the first N sentences of ``sotu_heldout.txt`` (never used to calibrate) of 6 to 12 words, speaks
each with espeak-ng's default English voice at 160 words per minute, resamples the 22,050 Hz output to
16 kHz mono 16-bit PCM and writes ``speech/NN.wav`` plus ``speech/test.jsonl`` ({"audio", "text"}).
The speech is synthetic (one voice, no noise): it measures whether an exported speech recogniser keeps
the PyTorch model's transcripts, not how well a model hears people.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

N = 20
RATE = 16000
WPM = 160


def speak(text: str, out: Path) -> float:
    from scipy.signal import resample_poly

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", "en", "-s", str(WPM), "-w", str(raw), text], check=True)
        with wave.open(str(raw), "rb") as w:
            rate = w.getframerate()
            x = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float64)
    y = resample_poly(x, RATE, rate)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.clip(np.round(y), -32768, 32767).astype("<i2").tobytes())
    return len(y) / RATE


def main() -> None:
    here = Path(__file__).resolve().parent
    out = here / "speech"
    out.mkdir(exist_ok=True)
    lines = (here / "sotu_heldout.txt").read_text(encoding="utf-8").splitlines()
    chosen = [s for s in lines if 6 <= len(s.split()) <= 12][:N]
    rows = []
    for i, text in enumerate(chosen):
        seconds = speak(text, out / f"{i:02d}.wav")
        rows.append({"audio": f"{i:02d}.wav", "text": text, "seconds": round(seconds, 2)})
    (out / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} clips, {sum(r['seconds'] for r in rows):.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
