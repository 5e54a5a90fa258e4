"""Speech recognition (Whisper): the numpy log-mel front end against transformers', WAV reading, export parity
with the decoder prompt and suppressed tokens, the compress chain scored by word error rate, run --audio, and
the one-line refusals."""

from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

RECIPE = """
version: 1
name: tiny-speech
stages:
  - kind: export
    name: onnx-fp32
    format: onnx
  - kind: quantize
    name: onnx-int8
    input: onnx-fp32
    method: dynamic
  - kind: bench-seq2seq
    samples: 4
    timed: 1
    runs: 1
    num_beams: [1, 2]
    max_new_tokens: 8
    decode_tokens: 4
    max_metric_drop: 100
"""


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory) -> Path:
    from edgekit.testing import make_tiny_whisper

    return make_tiny_whisper(tmp_path_factory.mktemp("speech") / "whisper")


@pytest.fixture(scope="session")
def tiny_whisper_compressed(tiny_whisper, tmp_path_factory) -> tuple[Path, dict]:
    from edgekit.pipeline.run import compress
    from edgekit.recipe import load_recipe

    tmp = tmp_path_factory.mktemp("speech-compress")
    (tmp / "r.yaml").write_text(RECIPE)
    compress(tiny_whisper, load_recipe(str(tmp / "r.yaml")), tmp / "out", progress=False)
    return tmp / "out", json.loads((tmp / "out" / "report.json").read_text())


def _clip(i: int = 1) -> Path:
    from edgekit.generation.speech_data import speech_rows

    return speech_rows("sotu-speech")[i]["audio"]


@pytest.mark.parametrize("mels, seconds", [(80, 6), (128, 30)])
def test_log_mel_matches_transformers(mels, seconds, tmp_path):
    """The device's numpy features equal WhisperFeatureExtractor's on a shipped clip (padded to the window) and on
    audio longer than the window (cut)."""
    from transformers import WhisperFeatureExtractor

    from edgekit.generation.audio import LogMel, read_wav, write_frontend

    fe = WhisperFeatureExtractor(feature_size=mels, chunk_length=seconds)
    fe.save_pretrained(str(tmp_path))
    write_frontend(tmp_path, tmp_path)
    front = LogMel(tmp_path)
    speech = read_wav(_clip(), 16000)
    long = np.tile(speech, 1 + 16000 * seconds // speech.size)
    for x in (speech, long):
        ref = fe(x, sampling_rate=16000, return_tensors="np").input_features
        got = front(x)
        assert got.shape == ref.shape == (1, mels, 100 * seconds)
        assert np.abs(got - ref).max() < 1e-4


def test_wav_reading(tmp_path):
    """16-bit and 8-bit PCM, stereo averaged; another rate or a file that is not WAV is one InputError."""
    from edgekit.errors import InputError
    from edgekit.generation.audio import read_wav

    def write(name, rate, width, channels, frames: bytes) -> Path:
        with wave.open(str(tmp_path / name), "wb") as w:
            w.setnchannels(channels)
            w.setsampwidth(width)
            w.setframerate(rate)
            w.writeframes(frames)
        return tmp_path / name

    stereo = np.array([[16384, -16384], [8192, 8192]], "<i2").tobytes()
    assert read_wav(write("s.wav", 16000, 2, 2, stereo), 16000).tolist() == [0.0, 0.25]
    assert read_wav(write("b.wav", 16000, 1, 1, bytes([128, 192])), 16000).tolist() == [0.0, 0.5]
    with pytest.raises(InputError, match="44100 Hz audio; the model takes 16000 Hz"):
        read_wav(write("r.wav", 44100, 2, 1, stereo), 16000)
    (tmp_path / "t.wav").write_text("not audio")
    with pytest.raises(InputError, match="not a PCM WAV file"):
        read_wav(tmp_path / "t.wav", 16000)


def test_word_error_rate():
    from edgekit.generation.speech_data import word_error_rate

    assert word_error_rate(["The cat sat."], ["the cat sat"]) == 0.0
    assert word_error_rate(["the cat", ""], ["the cat sat", "a dog"]) == pytest.approx(60.0)  # 3 of 5 words
    assert word_error_rate(["the big cat sat"], ["the cat sat"]) == pytest.approx(100 / 3)


def test_speech_rows_are_confined(tmp_path):
    """A test set's audio must lie inside its directory (no ../ or absolute paths)."""
    from edgekit.errors import InputError
    from edgekit.generation.speech_data import speech_rows

    rows = speech_rows("sotu-speech")
    assert len(rows) == 20 and all(r["audio"].is_file() and r["target"] for r in rows)
    shutil.copy(rows[0]["audio"], tmp_path / "a.wav")
    (tmp_path / "test.jsonl").write_text(json.dumps({"audio": "a.wav", "text": "x"}) + "\n")
    assert speech_rows(str(tmp_path))[0]["audio"] == (tmp_path / "a.wav").resolve()
    (tmp_path / "test.jsonl").write_text(json.dumps({"audio": "../../etc/passwd", "text": "x"}) + "\n")
    with pytest.raises(InputError, match="is not a file inside"):
        speech_rows(str(tmp_path))


def test_whisper_export_matches_pytorch(tiny_whisper, tmp_path):
    """The encoder (log-mel in, cross K/V out) and decoder give PyTorch's logits from the two-token prompt on; greedy
    and beam outputs equal transformers' generation loop with the suppressed tokens, and greedy equals Whisper's own
    generate()."""
    import torch

    from edgekit.generation.seq2seq import Seq2SeqOptions, Seq2SeqSession, stream
    from edgekit.generation.seq2seq_measure import _Torch
    from edgekit.generation.text2text_train import load_seq2seq
    from edgekit.tasks import get_task
    from edgekit_converters.onnx_seq2seq import export_seq2seq

    model = load_seq2seq(tiny_whisper)
    export_seq2seq(model, tmp_path)
    sess = Seq2SeqSession(tmp_path)
    assert sess.prompt == [0, 3] and sess.features and not sess.masked
    assert sess.facts["suppress_tokens"] == [5, 6] and sess.facts["begin_suppress_tokens"] == [220]
    assert sess.facts["tied_embedding_shared"]  # the output projection is the embedding table: stored once
    ref_gen = _Torch("", 0, model=model)
    ckpt = type("C", (), {"path": tiny_whisper})()
    feats = get_task("automatic-speech-recognition").sources(ckpt, [{"audio": _clip(i)} for i in range(3)])
    beams_same = 0
    for x in feats:
        cross, mask = sess.encode(x[None])
        past, dec, fed = sess.empty_past(1), list(sess.prompt), list(sess.prompt)
        for _ in range(6):
            with torch.no_grad():
                ref = model(input_features=torch.from_numpy(x[None]), decoder_input_ids=torch.tensor([dec])).logits
            got, past = sess.step(np.array([fed]), mask, past, cross)
            assert np.abs(got[0, -1] - ref[0, -1].numpy()).max() < 1e-4 * max(1.0, float(ref.abs().max()))
            dec.append(int(ref[0, -1].argmax()))
            fed = dec[-1:]
        greedy = list(stream(sess, x, Seq2SeqOptions(max_new_tokens=10)))
        assert 220 not in greedy[:1] and not {5, 6} & set(greedy)
        assert greedy == ref_gen.generate(x, 1, 10)
        with torch.no_grad():  # Whisper's own generate() starts from the same prompt (start, no timestamps)
            own = model.generate(torch.from_numpy(x[None]), max_new_tokens=10, return_dict_in_generate=True)
        own_ids = own.sequences[0].tolist()
        assert own_ids[:2] == sess.prompt and greedy == [t for t in own_ids[2:] if t != 1]
        beams_same += list(stream(sess, x, Seq2SeqOptions(max_new_tokens=10, num_beams=3))) == ref_gen.generate(
            x, 3, 10
        )
    assert beams_same == 3


def test_compress_speech_report(tiny_whisper_compressed):
    """Parity checked at export, every artifact scored by word error rate beside fp32's, the front end shipped and
    hashed with the graphs."""
    out, report = tiny_whisper_compressed
    assert report["model"]["task"] == "automatic-speech-recognition"
    assert report["settings"]["data"] == "sotu-speech" and report["settings"]["metric"] == "wer"
    rows = {r["name"]: r for r in report["rows"]}
    assert set(rows) == {"pytorch-fp32", "onnx-fp32", "onnx-int8"}
    assert rows["onnx-fp32"]["parity"]["greedy_identical"] and rows["onnx-fp32"]["parity"]["beam_identical"]
    assert rows["onnx-fp32"]["wer"] == rows["pytorch-fp32"]["wer"] and rows["onnx-fp32"]["beam_exact_match"] == 1.0
    for r in rows.values():
        assert r["wer_fp32"] == rows["pytorch-fp32"]["wer"] >= 0
        assert r["metric_drop"] == pytest.approx(r["wer"] - r["wer_fp32"], abs=1e-3)  # an error rate's rise
    manifest = json.loads((out / "onnx-int8" / "manifest.json").read_text())
    assert {"audio.json", "mel_filters.npy", "encoder.onnx", "decoder.onnx"} <= set(manifest["files"])
    md = (out / "report.md").read_text()
    assert "| wer | Δ |" in md and "wer on 4 test pairs of `sotu-speech`" in md


def test_run_audio(tiny_whisper_compressed, tmp_path, run_cli):
    """run --audio transcribes on ONNX Runtime what the artifact's recogniser transcribes; text prompts, other
    rates, serving and bundling are one-line exit-2 refusals."""
    from edgekit.generation.serve import load_generator

    out, _ = tiny_whisper_compressed
    art = out / "onnx-int8"
    r = run_cli("run", str(art), "--audio", str(_clip()), "--max-new-tokens", "8", "--num-beams", "2")
    assert r.exit_code == 0, r.stderr
    got = json.loads(r.output)
    gen, _ = load_generator(art)
    assert got["text"] == gen.transcribe(_clip(), max_new_tokens=8, num_beams=2)
    assert got["completion_tokens"] >= 1 and got["audio"] == str(_clip())
    with wave.open(str(tmp_path / "r.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(3200))
    for args, says in [
        (["run", str(art), "--generate", "hello"], "transcribes --audio FILE.wav"),
        (["run", str(art), "--audio", str(tmp_path / "r.wav")], "8000 Hz audio; the model takes 16000 Hz"),
        (["serve", str(art), "--port", "1"], "serving and bundling speech recognition models are not supported"),
        (["bundle", str(out), "-o", str(tmp_path / "b")], "serving and bundling speech recognition models"),
    ]:
        r = run_cli(*args)
        assert r.exit_code == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    "case, says",
    [
        ("no-preprocessor", "no preprocessor_config.json"),
        ("distill", "distill-seq2seq does not apply to automatic-speech-recognition"),
        ("bleu", "automatic-speech-recognition is scored by wer, not bleu"),
    ],
)
def test_bad_speech_input(case, says, tiny_whisper, tmp_path, run_cli):
    """One line on stderr, exit 2, nothing written."""
    ckpt, recipe = tiny_whisper, "seq2seq"
    if case == "no-preprocessor":
        ckpt = tmp_path / "w"
        shutil.copytree(tiny_whisper, ckpt)
        (ckpt / "preprocessor_config.json").unlink()
    elif case == "distill":
        recipe = "seq2seq-distill-int8"
    else:
        recipe = str(tmp_path / "r.yaml")
        Path(recipe).write_text(
            "version: 1\nname: b\nstages:\n  - kind: export\n  - kind: bench-seq2seq\n    metric: bleu\n"
        )
    r = run_cli("compress", str(ckpt), "-r", recipe, "-o", str(tmp_path / "out"), "-q")
    assert r.exit_code == 2, r.stderr
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "out").exists()


def test_multilingual_prompt_is_whispers(tiny_whisper, tmp_path):
    """A multilingual model's export starts from Whisper's own init tokens for English transcription (start,
    <|en|>, <|transcribe|>, <|notimestamps|>) and its greedy transcript is Whisper's generate(language="en")."""
    import torch

    from edgekit.generation.seq2seq import Seq2SeqOptions, Seq2SeqSession, stream
    from edgekit.generation.text2text_train import load_seq2seq
    from edgekit.tasks import get_task
    from edgekit_converters.onnx_seq2seq import export_seq2seq

    model = load_seq2seq(tiny_whisper)
    gen = model.generation_config
    gen.is_multilingual = True
    gen.lang_to_id = {"<|en|>": 7, "<|de|>": 8}
    gen.task_to_id = {"transcribe": 9, "translate": 10}
    export_seq2seq(model, tmp_path)
    sess = Seq2SeqSession(tmp_path)
    ckpt = type("C", (), {"path": tiny_whisper})()
    x = get_task("automatic-speech-recognition").sources(ckpt, [{"audio": _clip(0)}])[0]
    with torch.no_grad():
        own = (
            model.generate(
                torch.from_numpy(x[None]),
                max_new_tokens=8,
                language="en",
                task="transcribe",
                return_dict_in_generate=True,
            )
            .sequences[0]
            .tolist()
        )
    assert sess.prompt == own[:4] == [0, 7, 9, 3]
    assert list(stream(sess, x, Seq2SeqOptions(max_new_tokens=8))) == [t for t in own[4:] if t != 1]
