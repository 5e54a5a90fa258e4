"""Speech front end on the device (numpy only): 16-bit PCM WAV files in, Whisper's log-mel features out.

An automatic-speech-recognition artifact carries ``audio.json`` (sampling rate, FFT size, hop, the
samples one input holds) and ``mel_filters.npy`` (the mel filter bank, computed at export by transformers'
``WhisperFeatureExtractor`` and stored as a plain array: read with ``allow_pickle=False``). The features are
the feature extractor's: a Hann-windowed STFT (centred, reflect-padded), power spectrum, mel filters,
log10 floored at 1e-10, clamped to 8 below the maximum, then ``(x + 4) / 4``. Audio is padded with
silence or cut to the model's window (Whisper: 30 s). numpy and the standard library's ``wave`` are all
this needs; librosa or torchaudio would bring a large dependency to the device for one STFT.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np

from edgekit.errors import InputError

AUDIO_JSON = "audio.json"
MEL_FILTERS = "mel_filters.npy"


def write_frontend(checkpoint: Path, out: Path) -> dict:
    """Write ``audio.json`` and ``mel_filters.npy`` for the checkpoint's feature extractor
    (``preprocessor_config.json``) into ``out``; returns the facts."""
    from transformers import WhisperFeatureExtractor

    if not (Path(checkpoint) / "preprocessor_config.json").is_file():
        raise InputError(f"{checkpoint}: no preprocessor_config.json (the speech model's feature extractor settings)")
    fe = WhisperFeatureExtractor.from_pretrained(str(checkpoint))
    facts = {
        "sampling_rate": int(fe.sampling_rate),
        "n_fft": int(fe.n_fft),
        "hop_length": int(fe.hop_length),
        "n_samples": int(fe.n_samples),
        "frames": int(fe.nb_max_frames),
        "feature_size": int(fe.feature_size),
    }
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / MEL_FILTERS, np.asarray(fe.mel_filters, dtype=np.float64), allow_pickle=False)
    (out / AUDIO_JSON).write_text(json.dumps(facts, indent=2) + "\n")
    return facts


def read_wav(path: str | Path, sampling_rate: int) -> np.ndarray:
    """A PCM WAV file as float32 samples in [-1, 1] (channels averaged); it must be at ``sampling_rate``."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as w:
            rate, width, channels, n = w.getframerate(), w.getsampwidth(), w.getnchannels(), w.getnframes()
            raw = w.readframes(n)
    except FileNotFoundError:
        raise InputError(f"{path}: no such audio file") from None
    except (wave.Error, EOFError, OSError) as err:
        raise InputError(f"{path}: not a PCM WAV file ({err})") from None
    if width not in (1, 2, 4):
        raise InputError(f"{path}: {8 * width}-bit samples; edgekit reads 8-, 16- or 32-bit PCM WAV")
    if rate != sampling_rate:
        raise InputError(
            f"{path}: {rate} Hz audio; the model takes {sampling_rate} Hz (resample it first, e.g. "
            f"ffmpeg -i IN -ar {sampling_rate} -ac 1 OUT.wav)"
        )
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    else:
        dtype = np.int16 if width == 2 else np.int32
        x = np.frombuffer(raw, dtype).astype(np.float32) / float(np.iinfo(dtype).max + 1)
    x = x.reshape(-1, channels).mean(axis=1) if channels > 1 else x
    if x.size == 0:
        raise InputError(f"{path}: the audio is empty")
    return x.astype(np.float32)


class LogMel:
    """Whisper's log-mel features of an artifact's front end (``audio.json`` + ``mel_filters.npy``)."""

    def __init__(self, model_dir: Path) -> None:
        model_dir = Path(model_dir)
        for name in (AUDIO_JSON, MEL_FILTERS):
            if not (model_dir / name).is_file():
                raise InputError(f"{model_dir}: {name} is missing (a speech model's front end)")
        self.facts = json.loads((model_dir / AUDIO_JSON).read_text())
        self.filters = np.load(model_dir / MEL_FILTERS, allow_pickle=False)  # [n_fft // 2 + 1, mels]
        n_fft = int(self.facts["n_fft"])
        # the periodic Hann window (what transformers' window_function(n, "hann") returns)
        self.window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float64)
        self.rate = int(self.facts["sampling_rate"])

    def audio(self, source) -> np.ndarray:
        """Samples of a WAV path or of a 1-D float array (already at the model's rate)."""
        if isinstance(source, (str, Path)):
            return read_wav(source, self.rate)
        x = np.asarray(source, dtype=np.float32)
        if x.ndim != 1 or x.size == 0:
            raise InputError("audio must be a WAV file or a non-empty 1-D array of samples")
        return x

    def __call__(self, source) -> np.ndarray:
        """Features [1, mels, frames] of one input (padded with silence or cut to the model's window)."""
        f = self.facts
        x = self.audio(source)[: f["n_samples"]]
        x = np.pad(x, (0, f["n_samples"] - x.size)).astype(np.float64)
        n_fft, hop = int(f["n_fft"]), int(f["hop_length"])
        x = np.pad(x, n_fft // 2, mode="reflect")
        count = 1 + (x.size - n_fft) // hop
        frames = np.lib.stride_tricks.as_strided(x, (count, n_fft), (x.strides[0] * hop, x.strides[0]))
        power = np.abs(np.fft.rfft(frames * self.window, axis=1)) ** 2  # [frames, n_fft // 2 + 1]
        mel = np.maximum(power @ self.filters, 1e-10).T  # [mels, frames]
        log = np.log10(mel)[:, :-1]
        log = np.maximum(log, log.max() - 8.0)
        return ((log + 4.0) / 4.0).astype(np.float32)[None]
