"""`edgekit compress` on model files edgekit did not make: the file is the first artifact and, on its own
runtime, the parity reference; stages that need a checkpoint are refused before any work."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.artifact import Artifact
from edgekit.pipeline.run import compress
from edgekit.recipe.config import recipe_from_dict
from tests.foreign_models import legacy_fc_tflite, mlp_onnx, picky_onnx

BENCH = {"kind": "bench", "runs": 3, "warmup": 1, "threads": 1}
ROOT = Path(__file__).resolve().parents[2]


def recipe(*stages: dict, name: str = "file"):
    return recipe_from_dict({"version": 1, "name": name, "stages": [*stages, BENCH]}, name)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_onnx_file_dynamic_and_static_int8_checked_against_the_file(tmp_path):
    model = mlp_onnx(tmp_path / "mlp.onnx")
    before = digest(model)
    r = recipe(
        {"kind": "export", "format": "onnx", "name": "onnx-fp32"},
        {"kind": "quantize", "method": "dynamic", "name": "dyn"},
        {"kind": "quantize", "method": "static", "input": "onnx-fp32", "name": "static", "calibration": {"samples": 8}},
    )
    result = compress(model, r, tmp_path / "out", progress=False)
    assert digest(model) == before and sorted(result.artifacts) == ["dyn", "static"]  # the file: read, never moved
    rows = {row["name"]: row for row in result.report["results"]}
    assert rows["onnx-fp32"]["is_reference"] and rows["onnx-fp32"]["path"] == str(model)
    assert rows["onnx-fp32"]["fidelity"] == {"reference": True}
    for name in ("dyn", "static"):
        art = Artifact.load(tmp_path / "out" / name)
        assert art.precision == "int8" and art.meta["parent"] == {
            "name": "onnx-fp32",
            "digest": before,
            "format": "onnx",
        }
        assert art.size_bytes < model.stat().st_size / 2  # 8-bit weights: under half of the fp32 file
        f = rows[name]["fidelity"]
        assert 0.98 <= f["cosine_min"] <= f["cosine_mean"] <= 1 + 1e-6, f
    assert result.report["model"]["task"] is None and result.report["model"]["digest"] == before
    assert "synthesized" in result.report["settings"]["inputs"]
    assert (tmp_path / "out" / "report.md").is_file() and (tmp_path / "out" / "dyn" / "selfcheck.npz").is_file()


@pytest.mark.parametrize("method", ["dynamic", "static"])
def test_weights_in_constant_nodes_of_an_old_opset_are_quantized_per_channel(tmp_path, method):
    import onnx

    model = mlp_onnx(tmp_path / "paddle-like.onnx", opset=11, constants=True)
    stage = {"kind": "quantize", "method": method, "per_channel": True, "calibration": {"samples": 8}}
    result = compress(model, recipe(stage), tmp_path / "out", progress=False)
    (art,) = result.artifacts.values()
    assert art.size_bytes < model.stat().st_size / 2  # the Constant-node weights went to int8
    assert art.meta["notes"] == ["opset 11 converted to 13 for per-channel weights"]
    graph = onnx.load(str(art.model_path)).graph
    assert not [n for n in graph.node if n.op_type == "Constant" and n.attribute[0].t.dims]
    row = next(r for r in result.report["results"] if r["name"] == art.name)
    assert row["fidelity"]["cosine_min"] >= 0.98


def test_int8_that_quantized_nothing_is_not_promoted(tmp_path, run_cli):
    model = mlp_onnx(tmp_path / "mlp.onnx")
    (tmp_path / "conv.yaml").write_text(
        "version: 1\nname: conv-only\nstages:\n  - kind: quantize\n    method: dynamic\n    op_types: [Conv]\n"
    )
    res = run_cli("compress", str(model), "-r", str(tmp_path / "conv.yaml"), "-o", str(tmp_path / "out"), "-q")
    assert res.exit_code == 3
    assert "nothing was quantized: the model is still fp32 (Conv;" in res.stderr
    assert not (tmp_path / "out").exists()  # a failed run leaves nothing behind


def test_tflite_file_with_legacy_opcodes_is_quantized(tmp_path, run_cli):
    model = legacy_fc_tflite(tmp_path / "fc.tflite")
    out = tmp_path / "out"
    res = run_cli("compress", str(model), "-r", "tflite-dynamic", "-o", str(out), "--json")
    assert res.exit_code == 0, res.stderr
    report = json.loads(res.output)
    rows = {row["name"]: row for row in report["results"]}
    int8 = rows["tflite-int8-dynamic"]
    assert rows["tflite-fp32"]["is_reference"] and int8["precision"] == "int8" and int8["runtime"] == "litert"
    assert int8["fidelity"]["cosine_mean"] >= 0.99
    assert int8["size_bytes"] < model.stat().st_size * 0.6  # the FC weights went to int8: ops were seen as FC


def test_a_file_is_calibrated_checked_and_timed_on_the_given_inputs(tmp_path, run_cli):
    model = mlp_onnx(tmp_path / "mlp.onnx")
    x = np.random.default_rng(5).standard_normal((4, 64)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    out = tmp_path / "out"
    res = run_cli(
        "compress", str(model), "-r", str(ROOT / "benchmarks/recipes/file-onnx-static.yaml"),
        "--inputs", str(tmp_path / "in.npz"), "-o", str(out), "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    report = json.loads(res.output)
    assert report["settings"]["inputs"] == "the given inputs"
    assert all(r["input_shapes"] == {"x": [4, 64]} for r in report["results"])


def test_stated_inputs_reach_the_stages(tmp_path, run_cli):
    model = picky_onnx(tmp_path / "picky.onnx")
    res = run_cli("compress", str(model), "-r", "ptq-dynamic", "-o", str(tmp_path / "o1"), "-q")
    assert res.exit_code == 2 and "--shape NAME=" in res.stderr  # refused before any stage ran
    assert not (tmp_path / "o1").exists()


@pytest.mark.parametrize(
    ("recipe_name", "message"),
    [
        ("distill", "needs a Hugging Face checkpoint, not a model file (ONNX)"),
        ("search-int8", "stages.2 (export) needs a Hugging Face checkpoint"),
        ("onnx-tflite", "needs a Hugging Face checkpoint"),
    ],
)
def test_stages_that_need_a_checkpoint_are_refused_at_plan_time(tmp_path, run_cli, recipe_name, message):
    model = mlp_onnx(tmp_path / "mlp.onnx")
    res = run_cli("compress", str(model), "-r", recipe_name, "-o", str(tmp_path / "out"), "-q")
    assert res.exit_code == 2 and message in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_file_only_options_are_refused_where_they_do_not_apply(tmp_path, run_cli, tiny_ckpt):
    model = mlp_onnx(tmp_path / "mlp.onnx")
    res = run_cli("compress", str(model), "--task", "feature-extraction", "-o", str(tmp_path / "a"), "-q")
    assert res.exit_code == 2 and "a model file takes no --task" in res.stderr
    res = run_cli("compress", str(tiny_ckpt), "--shape", "x=1", "-o", str(tmp_path / "b"), "-q")
    assert res.exit_code == 2 and "a checkpoint brings its own" in res.stderr


def test_an_int8_file_is_not_quantized_again(tmp_path, run_cli):
    model = mlp_onnx(tmp_path / "mlp.onnx")
    first = compress(model, recipe({"kind": "quantize", "method": "dynamic"}), tmp_path / "out", progress=False)
    int8 = next(iter(first.artifacts.values())).model_path
    res = run_cli("compress", str(int8), "-o", str(tmp_path / "again"), "-q")
    assert res.exit_code == 2 and "its weights are int8, not fp32" in res.stderr


@pytest.mark.slow  # 14-23 s on 2 cores; the default run stays under 10 minutes
def test_python_api_and_cli_bench_settings(tmp_path, run_cli):
    import edgekit

    model = mlp_onnx(tmp_path / "mlp.onnx")
    quick = tmp_path / "quick.yaml"  # ptq-dynamic's stages, timed briefly
    quick.write_text(
        "version: 1\nname: quick\nstages:\n  - {kind: export, name: onnx-fp32}\n  - {kind: optimize}\n"
        "  - {kind: quantize, method: dynamic, name: onnx-int8-dynamic}\n"
        "  - {kind: bench, runs: 3, warmup: 1, threads: 2, batch_size: 1}\n"
    )
    report = edgekit.compress(model, str(quick), tmp_path / "api", threads=1, batch_size=3)
    assert report["settings"]["threads"] == 1 and report["settings"]["batch_size"] == 3
    assert report["settings"]["runs"] == 3  # what was not replaced stays the recipe's
    assert {r["name"] for r in report["results"]} == {"onnx-fp32", "onnx-fp32-opt", "onnx-int8-dynamic"}
    assert all(r["input_shapes"] == {"x": [3, 64]} for r in report["results"])
    assert (tmp_path / "api" / "onnx-int8-dynamic" / "manifest.json").is_file()
    res = run_cli("compress", str(model), "-r", str(quick), "-t", "1", "-b", "2", "-o", str(tmp_path / "cli"), "--json")
    assert res.exit_code == 0, res.stderr
    cli = json.loads(res.output)
    assert cli["settings"]["batch_size"] == 2 and cli["results"][0]["input_shapes"] == {"x": [2, 64]}
    bad = run_cli("compress", str(model), "-t", "0", "-o", str(tmp_path / "bad"), "-q")
    assert bad.exit_code == 2 and "--threads" in bad.stderr


def test_with_bench_validates_and_adds_a_bench_stage():
    from edgekit.errors import RecipeError
    from edgekit.recipe.config import BenchConfig, load_recipe

    r = load_recipe("ptq-dynamic")
    assert r.with_bench() is r
    changed = r.with_bench(threads=4, seq_len=None)
    assert changed.bench_config().threads == 4 and changed.bench_config().seq_len == r.bench_config().seq_len
    bare = recipe_from_dict({"version": 1, "name": "b", "stages": [{"kind": "quantize", "method": "dynamic"}]}, "b")
    assert isinstance(bare.with_bench(batch_size=2).stages[-1], BenchConfig)
    with pytest.raises(RecipeError, match="threads"):
        r.with_bench(threads=0)


def test_a_text_model_file_is_calibrated_and_scored_on_texts_with_its_tokenizer(tmp_path, run_cli, tiny_compressed):
    """An ONNX encoder from elsewhere (here: a plain export) with its tokenizer: static int8 calibrated on the
    shipped texts, every artifact scored on the held-out texts like a checkpoint's."""
    import shutil

    model = tmp_path / "encoder.onnx"
    shutil.copyfile(tiny_compressed / "onnx-fp32" / "model.onnx", model)
    tok = tiny_compressed / "onnx-fp32"  # the folder carries the checkpoint's tokenizer files
    out = tmp_path / "out"
    res = run_cli(
        "compress", str(model), "-r", "ptq-static", "--tokenizer", str(tok), "-s", "32", "-o", str(out), "--json"
    )
    assert res.exit_code == 0, res.stderr
    report = json.loads(res.output)
    assert "through the given tokenizer" in report["settings"]["inputs"] and report["settings"]["heldout"]
    rows = {r["name"]: r for r in report["results"]}
    f = rows["onnx-int8-static"]["fidelity"]
    assert (
        f["samples"] == report["settings"]["fidelity_samples"]
        and 0.95 <= f["cosine_min"] <= f["cosine_mean"] <= 1 + 1e-6
    )  # held-out texts, not noise
    assert rows["onnx-fp32-opt"]["fidelity"]["cosine_min"] > 0.9999
    bad = run_cli(
        "compress", str(model), "--tokenizer", str(tok), "--shape", "input_ids=1,8", "-o", str(tmp_path / "b")
    )
    assert bad.exit_code == 2 and "not with --shape" in bad.stderr
    bad = run_cli("compress", str(model), "--calibration", str(tmp_path / "x.txt"), "-o", str(tmp_path / "c"))
    assert bad.exit_code == 2 and "give the model's --tokenizer too" in bad.stderr


def test_search_on_a_model_file_measures_candidates_against_the_file(tmp_path):
    """`search` takes a model file: each candidate's fidelity is to the fp32 file on its own runtime (over the
    inputs synthesized from its specs), its latency is timed beside the file's; the report keeps every trial
    whether or not one passed (a tiny MLP's int8 may well not beat its fp32: then exit 3, report written)."""
    from edgekit.stages.search import SearchFailed

    model = mlp_onnx(tmp_path / "mlp.onnx", hidden=512)
    r = recipe({"kind": "search", "budget": {"min_fidelity": 0.98}, "max_trials": 3, "runs": 20})
    try:
        result = compress(model, r, tmp_path / "out", progress=False)
        assert "search-best" in result.artifacts and result.artifacts["search-best"].precision == "int8"
    except SearchFailed as err:
        assert "no candidate of" in err.message
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    search = report["search"]
    assert search["eval_key"] is None and search["metric"] == "cosine_mean"
    measured = [t for t in search["trials"] if t["verdict"] != "error"]
    assert measured and all(t["target"] == "onnx-fp32" and t["fp32_p50_ms"] > 0 for t in measured)
    dynamic = next(t for t in measured if t["candidate"].startswith("dynamic"))
    assert 0.98 <= dynamic["fidelity"]["cosine_min"] <= dynamic["fidelity"]["cosine_mean"] <= 1 + 1e-6
    assert dynamic["fidelity"]["samples"] == 4  # one row per synthesized parity batch (batch 1, four seeds)
    assert dynamic["verdict"] in ("pass", "slower than fp32")


def test_an_accuracy_budget_on_a_model_file_is_refused(tmp_path, run_cli):
    model = mlp_onnx(tmp_path / "mlp.onnx")
    spec = tmp_path / "r.yaml"
    spec.write_text(
        "version: 1\nname: s\nstages:\n  - kind: search\n    budget: {max_accuracy_drop: 1}\n  - kind: bench\n"
    )
    res = run_cli("compress", str(model), "-r", str(spec), "-o", str(tmp_path / "out"), "-q")
    assert res.exit_code == 2 and "min_fidelity" in res.stderr, res.stderr
    assert not (tmp_path / "out").exists()
