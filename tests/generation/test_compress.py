"""`edgekit compress` on a decoder: artifacts, parity records, the report and promotion; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_report(tiny_decoder_compressed):
    compressed = tiny_decoder_compressed
    out, report = compressed
    assert report["generative"] and report["model"]["task"] == "text-generation"
    rows = {r["name"]: r for r in report["rows"]}
    assert set(rows) == {"pytorch-fp32", "onnx-fp32", "onnx-int8", "onnx-int4-rtn", "tflite-fp32", "tflite-int8"}
    tfl = rows["tflite-fp32"]
    assert tfl["runtime"] == "litert" and tfl["parity"]["greedy_identical"] and tfl["greedy_exact_match"] == 1.0
    assert abs(tfl["perplexity"] / rows["pytorch-fp32"]["perplexity"] - 1) < 1e-3
    fp32 = rows["onnx-fp32"]
    assert abs(fp32["perplexity"] / rows["pytorch-fp32"]["perplexity"] - 1) < 1e-3
    assert fp32["top1_agreement"] > 0.999 and fp32["greedy_exact_match"] == 1.0
    assert fp32["parity"]["greedy_identical"]
    assert fp32["exporter"].startswith("onnxruntime-genai model builder") and fp32["engine"] == "onnxruntime-genai"
    for r in rows.values():
        assert r["decode_tokens_per_s"]["16"] > 0 and r["time_to_first_token_ms"]["64"] > 0
        assert r["peak_rss_mb"] > 10
    assert rows["onnx-int4-rtn"]["size_bytes"] < 0.6 * fp32["size_bytes"]
    promoted = [r for r in rows.values() if r["promoted"]]
    assert len(promoted) <= 1 and all(r["format"] in ("onnx", "tflite") and r["within_budget"] for r in promoted)
    for r in promoted:  # a quantized artifact is promoted only when faster than the fp32 export it comes from
        base = {"onnx": "onnx-fp32", "tflite": "tflite-fp32"}[r["format"]]
        assert r["name"] == base or r["decode_tokens_per_s"]["16"] > rows[base]["decode_tokens_per_s"]["16"]
    retimed = {n: r["retimed_decode_tokens_per_s"] for n, r in rows.items() if "retimed_decode_tokens_per_s" in r}
    if retimed:  # more than one candidate passed: the promoted one is the best re-timed median
        assert len(retimed) >= 2 and promoted and retimed[promoted[0]["name"]] == max(retimed.values()) > 0
        assert "Re-timed alternately, 1 rounds" in (out / "report.md").read_text()
    for name in ("onnx-fp32", "onnx-int8", "onnx-int4-rtn", "tflite-int8"):
        manifest = json.loads((out / name / "manifest.json").read_text())
        assert manifest["task"] == "text-generation" and "tokenizer.json" in manifest["files"]
    assert "decode tok/s" in (out / "report.md").read_text()


def test_promotion_follows_the_re_timing_not_the_first_pass(tmp_path):
    """The first pass ranks b over a; three alternating rounds in their own processes (here: their figures)
    rank a first, and a is promoted; the rounds alternate a, b, a, b, ..."""
    import numpy as np

    from edgekit.generation.pipeline import _promote, _retime
    from edgekit.recipe.config import GenerateBenchConfig

    bench = GenerateBenchConfig(kind="bench-generate", prompt_lens=[16], retime_rounds=3, max_perplexity_increase=0.1)
    rows = [
        {"name": n, "format": "onnx", "perplexity_increase": inc, "decode_tokens_per_s": {"16": v}}
        for n, v, inc in (("fp32", 100.0, 0.0), ("a", 150.0, 0.01), ("b", 160.0, 0.02), ("c", 500.0, 0.5))
    ]
    fp32_of = {"a": "fp32", "b": "fp32", "c": "fp32", "fp32": "fp32"}
    order = _promote(rows, fp32_of, bench, "16")
    assert order == ["b", "a", "fp32"] and [r["name"] for r in rows if r["promoted"]] == ["b"]
    seen, figures = [], {"a": iter([170.0, 150.0, 171.0]), "b": iter([140.0, 165.0, 139.0]), "fp32": iter([99.0] * 3)}

    def measure(spec, out):
        name = spec["path"]
        seen.append(name)
        assert spec["batch_sizes"] == [1] and spec["prompt_lens"] == [16] and "windows" not in spec
        return {"decode_tokens_per_s": {"16": next(figures[name])}}

    np.save(tmp_path / "prompts.npy", np.zeros((1, 4), np.int64))
    _retime(rows, {n: n for n in order}, bench, "16", measure, tmp_path, 1000)
    assert seen == ["b", "a", "fp32"] * 3
    by = {r["name"]: r for r in rows}
    assert by["a"]["retimed_decode_tokens_per_s"] == 170.0 and by["b"]["retimed_decode_tokens_per_s"] == 140.0
    assert [r["name"] for r in rows if r["promoted"]] == ["a"]


def test_generated_artifact_runs_without_torch(tiny_decoder_compressed):
    compressed = tiny_decoder_compressed
    from edgekit.generation.runtime import TextGenerator

    out, _ = compressed
    text = TextGenerator(out / "onnx-int4-rtn").generate("The economy", max_new_tokens=5)
    assert isinstance(text, str)
    lite = TextGenerator(out / "tflite-fp32")
    assert lite.engine_name == "python"
    onnx = TextGenerator(out / "onnx-fp32", engine="python")
    for prompt in ("The economy", "word " * 40):  # the second runs the 128-token prefill signature, padded
        assert lite.generate(prompt, max_new_tokens=12) == onnx.generate(prompt, max_new_tokens=12)


def _t5(d: Path) -> Path:
    from transformers import T5Config, T5ForConditionalGeneration

    T5ForConditionalGeneration(
        T5Config(vocab_size=64, d_model=32, d_ff=64, num_layers=1, num_heads=2, d_kv=16)
    ).save_pretrained(d)
    return d


def _remote_code(src: Path, d: Path) -> Path:
    import shutil

    shutil.copytree(src, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def _no_tokenizer(src: Path, d: Path) -> Path:
    import shutil

    shutil.copytree(src, d)
    (d / "tokenizer.json").unlink()
    return d


@pytest.mark.parametrize(
    "case, recipe, says",
    [
        ("seq2seq", "decoder", "does not apply to encoder-decoder models"),
        ("remote-code", "decoder", "needs the checkpoint's own Python code (auto_map, trust_remote_code)"),
        ("encoder-recipe", "ptq-static", "does not apply to decoder language models"),
        ("no-tokenizer", "decoder", "no tokenizer.json"),
    ],
)
def test_bad_decoder_input(case, recipe, says, tiny_decoder, tmp_path, run_cli):
    ckpt = {
        "seq2seq": lambda: _t5(tmp_path / "t5"),
        "remote-code": lambda: _remote_code(tiny_decoder, tmp_path / "remote"),
        "encoder-recipe": lambda: tiny_decoder,
        "no-tokenizer": lambda: _no_tokenizer(tiny_decoder, tmp_path / "notok"),
    }[case]()
    result = run_cli("compress", str(ckpt), "-r", recipe, "-o", str(tmp_path / "out"), "-q")
    assert result.exit_code == 2, result.stderr
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "out").exists()


def test_decoder_stage_on_an_encoder(tiny_ckpt, tmp_path, run_cli):
    (tmp_path / "r.yaml").write_text("version: 1\nname: x\nstages:\n  - kind: export\n  - kind: int4\n")
    result = run_cli("compress", str(tiny_ckpt), "-r", str(tmp_path / "r.yaml"), "-o", str(tmp_path / "out"), "-q")
    assert result.exit_code == 2
    assert "applies to generative models (text-generation and text2text-generation checkpoints) only" in result.stderr


def test_decoder_search_plan():
    """The default decoder recipe's search expands into every candidate, measured; its budget is the bench's."""
    from edgekit.errors import RecipeError
    from edgekit.generation.pipeline import SEARCH_SPACE, TFLITE_SEARCH_SPACE, plan_decoder
    from edgekit.recipe import load_recipe
    from edgekit.recipe.config import recipe_from_dict

    plan = plan_decoder(load_recipe("decoder"), {"architectures": ["LlamaForCausalLM"], "model_type": "llama"})
    names = [s.name for s in plan.steps]
    assert names[:3] == ["onnx-fp32", "tflite-fp32", "onnx-int8"]
    assert len(names) == 2 + len(SEARCH_SPACE) + len(TFLITE_SEARCH_SPACE) and not plan.skipped
    assert plan.bench.max_perplexity_increase == 0.03
    gpt2 = plan_decoder(load_recipe("decoder"), {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"})
    assert not any(s.name.startswith("tflite") for s in gpt2.steps)
    assert gpt2.skipped[0].startswith("tflite-fp32: litert-torch's decoder builder has rotary positions only")
    for arch in ("Qwen2ForCausalLM", "GemmaForCausalLM", "Phi3ForCausalLM"):
        assert plan_decoder(load_recipe("decoder"), {"architectures": [arch]}).steps[1].name == "tflite-fp32"
    longrope = {"architectures": ["Phi3ForCausalLM"], "rope_scaling": {"type": "longrope"}}
    assert "scaled rotary embeddings" in plan_decoder(load_recipe("decoder"), longrope).skipped[0]
    student = plan_decoder(load_recipe("decoder-distill-int4"))
    assert [s.kind for s in student.steps][0] == "distill" and student.steps[-1].kind == "int4"
    both = plan_decoder(load_recipe("decoder-distill-int8"))  # the checkpoint's own graphs beside its student's
    assert [s.name for s in both.steps] == [
        "onnx-fp32",
        "onnx-int8",
        "onnx-int4",
        "student",
        "student-onnx-fp32",
        "student-onnx-int8",
        "student-onnx-int4",
    ]
    assert both.bench.max_perplexity_increase == 0.02 and not both.skipped
    bad = {
        "version": 1,
        "name": "x",
        "stages": [
            {"kind": "export"},
            {"kind": "search", "budget": {"min_fidelity": 0.99}},
        ],
    }
    with pytest.raises(RecipeError, match="a decoder search's budget is max_perplexity_increase"):
        plan_decoder(recipe_from_dict(bad))


def test_perplexity_budget_on_an_encoder(tiny_ckpt, tmp_path, run_cli):
    (tmp_path / "r.yaml").write_text(
        "version: 1\nname: x\nstages:\n  - kind: export\n  - kind: search\n    budget:\n"
        "      max_perplexity_increase: 0.03\n"
    )
    result = run_cli("compress", str(tiny_ckpt), "-r", str(tmp_path / "r.yaml"), "-o", str(tmp_path / "out"), "-q")
    assert result.exit_code == 2 and "max_perplexity_increase applies to decoder language models" in result.stderr


@pytest.mark.slow  # ~30 s: a distillation run (pytest -m slow)
def test_distilled_decoder_chain(tiny_decoder, tmp_path):
    """distill-decoder keeps one of the teacher's layers, trains on its next-token distributions, and the student is
    exported (parity-checked), quantized and measured beside the teacher in one report."""
    from edgekit.pipeline.run import compress
    from edgekit.recipe import load_recipe

    (tmp_path / "r.yaml").write_text(
        "version: 1\nname: tiny-distill\nstages:\n"
        "  - kind: distill-decoder\n    name: student\n    layers: 1\n"
        "    train: {epochs: 0.002, batch_size: 4, lr: 0.001, max_len: 64}\n"
        "  - kind: export\n    name: student-onnx-fp32\n    input: student\n"
        "  - kind: quantize\n    name: student-onnx-int8\n    method: dynamic\n"
        "  - kind: bench-generate\n    prompt_lens: [8]\n    new_tokens: 4\n    runs: 1\n"
    )
    compress(tiny_decoder, load_recipe(str(tmp_path / "r.yaml")), tmp_path / "out", progress=False)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    rows = {r["name"]: r for r in report["rows"]}
    assert {"student", "student-onnx-fp32", "student-onnx-int8"} <= set(rows)
    manifest = json.loads((tmp_path / "out" / "student" / "manifest.json").read_text())
    assert manifest["training"]["layers_kept"] == [0]
    assert manifest["training"]["parameters"] < manifest["training"]["teacher_parameters"]
    assert not (tmp_path / "out" / ".train-student").exists()
