"""Encoder-decoders (text2text-generation): export parity per family, transformers' beam search reproduced on
ONNX Runtime, the compress chain (per-part quantization, BLEU, promotion), run/serve/bundle, bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

RECIPE = """
version: 1
name: tiny-seq2seq
skip_unavailable: true
stages:
  - kind: export
    name: onnx-fp32
    format: onnx
  - kind: export
    name: tflite-fp32
    input: pytorch-fp32
    format: tflite
    seq_lens: [16]  # one decoder signature: 16 tokens, the prompt's included
  - kind: quantize
    name: tflite-int8
    input: tflite-fp32
    method: dynamic
  - kind: quantize
    name: onnx-int8
    input: onnx-fp32
    method: dynamic
  - kind: int4
    name: onnx-int4
    input: onnx-fp32
  - kind: bench-seq2seq
    samples: 6
    timed: 2
    runs: 1
    num_beams: [1, 2]
    max_new_tokens: 12
    decode_tokens: 6
    max_metric_drop: 100
"""


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory) -> Path:
    from edgekit.testing import make_tiny_seq2seq

    return make_tiny_seq2seq(tmp_path_factory.mktemp("seq2seq") / "t5", "t5")


@pytest.fixture(scope="session")
def tiny_t5_compressed(tiny_t5, tmp_path_factory) -> tuple[Path, dict]:
    from edgekit.pipeline.run import compress
    from edgekit.recipe import load_recipe

    tmp = tmp_path_factory.mktemp("seq2seq-compress")
    (tmp / "r.yaml").write_text(RECIPE)
    compress(tiny_t5, load_recipe(str(tmp / "r.yaml")), tmp / "out", progress=False)
    return tmp / "out", json.loads((tmp / "out" / "report.json").read_text())


def _hf_generate(model, ids: list[int], **kw) -> list[int]:
    import torch

    from edgekit.generation.seq2seq_measure import _Torch

    runner = _Torch("", 0, model=model)
    runner.base.update({k: v for k, v in kw.items() if k in runner.base})
    beams = kw.get("num_beams", 1)
    with torch.no_grad():
        return runner.generate(ids, beams, kw.get("max_new_tokens", 12))


@pytest.mark.parametrize("family", ["t5", "mt5", "bart", "marian"])
def test_export_matches_pytorch(family, tmp_path):
    """Each family's two graphs give PyTorch's logits step by step, and its greedy and beam outputs."""
    import torch

    from edgekit.generation.seq2seq import Seq2SeqOptions, Seq2SeqSession, stream
    from edgekit.generation.text2text_train import load_seq2seq
    from edgekit.testing import make_tiny_seq2seq
    from edgekit_converters.onnx_seq2seq import export_seq2seq

    ckpt = make_tiny_seq2seq(tmp_path / family, family)
    model = load_seq2seq(ckpt)
    export_seq2seq(model, tmp_path / "onnx")
    sess = Seq2SeqSession(tmp_path / "onnx")
    # the tied output projection is stored once (the twins tie it); the graph's logits are still PyTorch's below
    assert sess.facts["tied_embedding_shared"] is model.config.tie_word_embeddings is True
    rng = np.random.default_rng(0)
    beams_same = 0
    for _ in range(4):
        ids = [int(x) for x in rng.integers(3, 500, int(rng.integers(5, 30)))] + [1]
        cross, mask = sess.encode(np.asarray([ids]))
        past, dec = sess.empty_past(1), [sess.start]
        for _ in range(6):
            with torch.no_grad():
                ref = model(input_ids=torch.tensor([ids]), decoder_input_ids=torch.tensor([dec])).logits[0, -1]
            got, past = sess.step(np.array([[dec[-1]]]), mask, past, cross)
            assert np.abs(got[0, -1] - ref.numpy()).max() < 1e-4 * max(1.0, float(ref.abs().max()))
            dec.append(int(ref.argmax()))
        greedy = list(stream(sess, ids, Seq2SeqOptions(max_new_tokens=12)))
        assert greedy == _hf_generate(model, ids, max_new_tokens=12)
        beam = list(stream(sess, ids, Seq2SeqOptions(max_new_tokens=12, num_beams=4)))
        beams_same += beam == _hf_generate(model, ids, max_new_tokens=12, num_beams=4)
    assert beams_same == 4


@pytest.mark.parametrize(
    "options",
    [
        {"num_beams": 3, "length_penalty": 2.0, "no_repeat_ngram_size": 2},
        {"num_beams": 4, "length_penalty": 0.5, "early_stopping": True},
        {"num_beams": 2, "early_stopping": "never"},
    ],
)
def test_beam_search_options_match_transformers(options, tiny_t5, tmp_path):
    from edgekit.generation.seq2seq import Seq2SeqOptions, Seq2SeqSession, beam_search
    from edgekit.generation.text2text_train import load_seq2seq
    from edgekit_converters.onnx_seq2seq import export_seq2seq

    model = load_seq2seq(tiny_t5)
    export_seq2seq(model, tmp_path)
    sess = Seq2SeqSession(tmp_path)
    rng = np.random.default_rng(1)
    for _ in range(4):
        ids = [int(x) for x in rng.integers(3, 500, 12)] + [1]
        got = beam_search(sess, ids, Seq2SeqOptions(max_new_tokens=10, **options))
        assert got == _hf_generate(model, ids, max_new_tokens=10, **options)


def test_compress_report(tiny_t5_compressed):
    """Every artifact measured end to end at each beam width and scored by BLEU against PyTorch fp32's; the
    fp32 exports (ONNX and LiteRT) reproduce PyTorch's beams."""
    out, report = tiny_t5_compressed
    rows = {r["name"]: r for r in report["rows"]}
    assert set(rows) == {"pytorch-fp32", "onnx-fp32", "tflite-fp32", "tflite-int8", "onnx-int8", "onnx-int4"}
    assert report["kind"] == "seq2seq" and report["model"]["task"] == "text2text-generation"
    for r in rows.values():
        assert set(r["end_to_end_ms"]) == {"1", "2"} and all(v > 0 for v in r["end_to_end_ms"].values())
        assert r["encoder_ms"] > 0 and r["decode_tokens_per_s"] > 0 and r["peak_rss_mb"] > 0
        assert 0 <= r["bleu"] <= 100 and r["bleu_fp32"] == rows["pytorch-fp32"]["bleu"]
        assert 0 <= r["rouge2"] <= r["rouge_l"] <= r["rouge1"] <= 100  # rows carry ROUGE beside BLEU
    assert rows["onnx-fp32"]["beam_exact_match"] == 1.0 and rows["onnx-fp32"]["metric_drop"] == 0
    assert rows["onnx-fp32"]["parity"]["beam_identical"] and rows["onnx-fp32"]["parity"]["greedy_identical"]
    assert rows["onnx-int8"]["schemes"] == {"encoder": "int8", "decoder": "int8"}
    assert rows["onnx-int8"]["size_bytes"] < rows["onnx-fp32"]["size_bytes"] / 1.8
    lite = rows["tflite-fp32"]
    assert lite["runtime"] == "litert" and lite["parity"]["beam_identical"] and lite["parity"]["greedy_identical"]
    assert lite["parity"]["decoder_max_abs_diff"] < 1e-4 * lite["parity"]["logit_scale"]
    assert lite["beam_exact_match"] == 1.0 and lite["metric_drop"] == 0 and not report["recipe"]["skipped"]
    assert {"encoder.tflite", "decoder.tflite", "tokenizer.json"} <= set(
        json.loads((out / "tflite-fp32" / "manifest.json").read_text())["files"]
    )
    q = rows["tflite-int8"]
    assert q["runtime"] == "litert" and q["precision"] == "int8" and q["size_bytes"] < 0.75 * lite["size_bytes"]
    assert not q["promoted"] and not lite["promoted"]  # promotion is over the ONNX artifacts
    assert sum(r["promoted"] for r in rows.values()) <= 1
    md = (out / "report.md").read_text()
    assert "ms/request beam 2" in md and "onnx-int8" in md


def test_run_generate_bundle_and_check(tiny_t5_compressed, tmp_path, run_cli):
    out, _ = tiny_t5_compressed
    r = run_cli("run", str(out / "onnx-fp32"), "--generate", "the state of the union", "--num-beams", "2")
    assert r.exit_code == 0, r.stderr
    beam = json.loads(r.output)
    assert beam["artifact"] == "onnx-fp32" and beam["completion_tokens"] >= 1
    r = run_cli("run", str(out / "tflite-int8"), "--generate", "the state of the union", "--max-new-tokens", "4")
    assert r.exit_code == 0 and json.loads(r.output)["artifact"] == "tflite-int8", r.stderr
    r = run_cli("bundle", str(out), "-a", "onnx-int8", "-o", str(tmp_path / "b"))
    assert r.exit_code == 0, r.stderr
    r = run_cli("run", str(tmp_path / "b"), "--check")
    assert r.exit_code == 0 and json.loads(r.output)["check"]["reproduced"] == 3, r.output + r.stderr
    r = run_cli("run", str(tmp_path / "b"), "--generate", "we the people", "--options", '{"num_beams": 0}')
    assert r.exit_code == 2 and "num_beams must be an integer >= 1" in r.stderr


def test_serve_generate(tiny_t5_compressed):
    from edgekit.generation.serve import load_generator, make_app

    out, _ = tiny_t5_compressed
    gen, manifest = load_generator(out / "onnx-int8")
    app = make_app(gen, manifest)

    def call(path, body):
        data = json.dumps(body).encode()
        status: dict = {}
        env = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "CONTENT_LENGTH": str(len(data))}
        env["wsgi.input"] = io.BytesIO(data)
        chunks = b"".join(app(env, lambda s, h: status.update(code=int(s.split()[0]))))
        return status["code"], chunks.decode()

    code, body = call("/generate", {"prompt": "we the people", "max_new_tokens": 8, "num_beams": 2})
    assert code == 200 and json.loads(body)["text"] == gen.generate("we the people", max_new_tokens=8, num_beams=2)
    code, body = call("/generate", {"prompt": "we the people", "max_new_tokens": 8, "stream": True})
    events = [e[6:] for e in body.split("\n\n") if e.startswith("data: ")]
    assert code == 200 and events[-1] == "[DONE]"
    assert "".join(json.loads(e)["text"] for e in events[:-1]) == gen.generate("we the people", max_new_tokens=8)
    code, body = call("/generate", {"prompt": "x", "length_penalty": "long"})
    assert code == 400 and "length_penalty" in body


def test_litert_generation_limits(tiny_t5_compressed):
    """A LiteRT encoder-decoder generates as far as its longest decoder signature and says so past it."""
    from edgekit.errors import InputError
    from edgekit.generation.seq2seq import LiteRTSeq2SeqSession, Text2TextGenerator

    out, _ = tiny_t5_compressed
    lite, onnx = Text2TextGenerator(out / "tflite-fp32"), Text2TextGenerator(out / "onnx-fp32")
    assert isinstance(lite.session, LiteRTSeq2SeqSession) and lite.session.target_limit == 16  # the recipe's
    text = "we the people of the united states"
    assert lite.generate(text, max_new_tokens=15, num_beams=2) == onnx.generate(text, max_new_tokens=15, num_beams=2)
    with pytest.raises(InputError, match=r"max_new_tokens 20 is more than this model generates \(at most 15\)"):
        lite.generate(text, max_new_tokens=20)
    with pytest.raises(InputError, match="the model takes at most 128"):
        lite.generate("word " * 300, max_new_tokens=4)


@pytest.mark.parametrize(
    "case, recipe, says",
    [
        ("decoder-recipe", "decoder", "does not apply to encoder-decoder models"),
        ("tflite-int4", "tflite.yaml", "a LiteRT encoder-decoder takes quantize (method dynamic"),
        ("no-tokenizer", "seq2seq", "no tokenizer.json"),
        ("bad-budget", "perplexity.yaml", "an encoder-decoder search's budget is max_metric_drop"),
    ],
)
def test_bad_seq2seq_input(case, recipe, says, tiny_t5, tmp_path, run_cli):
    """One line on stderr, exit 2, nothing written."""
    import shutil

    (tmp_path / "tflite.yaml").write_text(
        "version: 1\nname: t\nstages:\n  - kind: export\n    format: tflite\n  - kind: int4\n"
    )
    (tmp_path / "perplexity.yaml").write_text(
        "version: 1\nname: p\nstages:\n  - kind: export\n  - kind: search\n    budget:\n"
        "      max_perplexity_increase: 0.1\n"
    )
    if case == "no-tokenizer":
        ckpt = tmp_path / "notok"
        shutil.copytree(tiny_t5, ckpt)
        (ckpt / "tokenizer.json").unlink()
    else:
        ckpt = tiny_t5
    rec = str(tmp_path / recipe) if recipe.endswith(".yaml") else recipe
    r = run_cli("compress", str(ckpt), "-r", rec, "-o", str(tmp_path / "out"), "-q")
    assert r.exit_code == 2, r.stderr
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "out").exists()


def test_text2text_metrics():
    """BLEU/chrF (sacrebleu) and ROUGE-1/2/L F1 (rouge-score) of decoded outputs, in points."""
    from edgekit.tasks import get_task

    class Words:  # token ids are word indexes: decoding joins the words
        vocab = ["the", "cat", "sat", "on", "mat"]

        def decode(self, ids, skip_special_tokens=True):
            return " ".join(self.vocab[i] for i in ids)

    task = get_task("text2text-generation")
    rows = [{"target": "the cat sat on the mat"}]
    assert task.score(Words(), [[0, 1, 2, 3, 0, 4]], rows) == {
        "bleu": 100.0,
        "chrf": 100.0,
        "rouge1": 100.0,
        "rouge2": 100.0,
        "rouge_l": 100.0,
    }
    half = task.score(Words(), [[0, 1, 2]], rows)  # 3 of 6 words, 2 of 5 bigrams, in order
    assert half["rouge1"] == half["rouge_l"] == pytest.approx(200 / 3, abs=1e-3)
    assert half["rouge2"] == pytest.approx(100 * 2 * 0.4 / 1.4, abs=1e-3) and half["bleu"] < 50


def test_options_are_per_model_kind():
    """Beam options an encoder-decoder takes are refused by a decoder (its beam search does not apply them)."""
    from edgekit.errors import InputError
    from edgekit.generation.runtime import GenerationOptions
    from edgekit.generation.seq2seq import Seq2SeqOptions

    assert Seq2SeqOptions.from_dict({"num_beams": 4, "length_penalty": 2.0}).length_penalty == 2.0
    with pytest.raises(InputError, match="unsupported generation option"):
        GenerationOptions.from_dict({"length_penalty": 2.0})
    with pytest.raises(InputError, match="early_stopping"):
        Seq2SeqOptions.from_dict({"early_stopping": "sometimes"})


def test_punctuation_pairs():
    from edgekit.generation.text2text_data import pairs, passages, strip_punctuation

    assert strip_punctuation('Mr. Speaker, "we\'ll" win -- well-being (now)!') == "mr speaker we'll win well-being now"
    text = "Mr. Smith went to Washington. He spoke. " + "Word " * 30 + "end. Short one here."
    got = passages(text)
    assert got[0].startswith("Mr. Smith went to Washington. He spoke.") and got[-1] == "Short one here."
    train, test = pairs("sotu-punct")
    assert len(train) > 10000 and len(test) > 300
    assert all(r["source"] == strip_punctuation(r["target"]) for r in test[:50])


@pytest.mark.slow  # ~20 s: a distillation run (pytest -m slow)
def test_distilled_student_chain(tmp_path):
    """distill-seq2seq keeps the encoder and one decoder layer, trains on the teacher's distributions, and the
    student is exported (parity-checked), quantized and measured beside the teacher in one report."""
    from edgekit.pipeline.run import compress
    from edgekit.recipe import load_recipe
    from edgekit.testing import make_tiny_seq2seq

    teacher = make_tiny_seq2seq(tmp_path / "bart", "bart")
    (tmp_path / "r.yaml").write_text(
        "version: 1\nname: tiny-distill\nstages:\n"
        "  - kind: distill-seq2seq\n    name: student\n    decoder_layers: 1\n"
        "    train: {epochs: 0.003, batch_size: 8, lr: 0.001, max_len: 48}\n"
        "  - kind: export\n    name: student-onnx-fp32\n    input: student\n"
        "  - kind: quantize\n    name: student-onnx-int8\n    method: dynamic\n"
        "  - kind: bench-seq2seq\n    samples: 4\n    timed: 1\n    runs: 1\n    num_beams: [1, 2]\n"
        "    max_new_tokens: 8\n    decode_tokens: 4\n    max_metric_drop: 100\n"
    )
    compress(teacher, load_recipe(str(tmp_path / "r.yaml")), tmp_path / "out", progress=False)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    rows = {r["name"]: r for r in report["rows"]}
    assert set(rows) == {"pytorch-fp32", "student", "student-onnx-fp32", "student-onnx-int8"}
    cfg = json.loads((tmp_path / "out" / "student" / "config.json").read_text())
    assert cfg["decoder_layers"] == 1 and cfg["encoder_layers"] == 2
    assert rows["student-onnx-fp32"]["parity"]["beam_identical"]
    assert rows["student-onnx-fp32"]["size_bytes"] < rows["pytorch-fp32"]["size_bytes"] * 1.6
    manifest = json.loads((tmp_path / "out" / "student" / "manifest.json").read_text())
    assert manifest["training"]["decoder_layers_kept"] == [0]
    assert manifest["training"]["parameters"] < manifest["training"]["teacher_parameters"]
