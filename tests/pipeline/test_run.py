import json

import pytest

from edgekit.artifact import Artifact
from edgekit.errors import CalibrationError, ParityError, RecipeError
from edgekit.pipeline.run import compress
from edgekit.recipe.config import load_recipe
from tests.conftest import read_json
from tests.helpers import fast_recipe

RESULT_KEYS = {
    "name",
    "format",
    "precision",
    "runtime",
    "path",
    "size_bytes",
    "latency_ms",
    "throughput_per_s",
    "peak_rss_mb",
    "fidelity",
    "is_reference",
}


def test_output_layout_and_manifests(tiny_compressed):
    names = sorted(p.name for p in tiny_compressed.iterdir())
    assert names == [
        ".edgekit-output.json",
        "onnx-fp32",
        "onnx-fp32-opt",
        "onnx-int8-dynamic",
        "recipe.yaml",
        "report.json",
        "report.md",
    ]
    marker = json.loads((tiny_compressed / ".edgekit-output.json").read_text())  # what edgekit wrote, hashed
    assert marker["kind"] == "compress" and "onnx-int8-dynamic/model.onnx" in marker["files"]
    assert {"recipe.yaml", "report.json", "report.md", "onnx-fp32/manifest.json"} <= set(marker["files"])
    recipe = load_recipe(tiny_compressed / "recipe.yaml")
    fp32, opt, q = (Artifact.load(tiny_compressed / n) for n in ("onnx-fp32", "onnx-fp32-opt", "onnx-int8-dynamic"))
    assert q.meta["parent"]["digest"] == opt.digest and opt.meta["parent"]["digest"] == fp32.digest
    assert fp32.meta["parent"]["format"] == "hf-checkpoint"
    assert {a.meta["recipe_digest"] for a in (fp32, opt, q)} == {recipe.digest()}
    assert q.precision == "int8" and q.format == "onnx"
    assert "onnxruntime" in q.meta["tool_versions"] and "torch" in q.meta["tool_versions"]
    assert opt.meta["fused_operators"]["Attention"] == 2
    assert fp32.meta["validation"]["max_abs_diff"] < 1e-4


def test_report_contract(tiny_compressed):
    report = read_json(tiny_compressed / "report.json")
    assert report["schema_version"] == 1
    assert report["model"]["task"] == "feature-extraction"
    assert report["recipe"]["name"] == "ptq-dynamic"
    env = report["environment"]
    assert env["cpu"]["model"] and env["threads"] == 1
    assert {"torch", "onnxruntime", "edgekit"} <= set(env["versions"])
    rows = {r["name"]: r for r in report["results"]}
    assert set(rows) == {"pytorch-fp32", "onnx-fp32", "onnx-fp32-opt", "onnx-int8-dynamic"}
    for r in rows.values():
        assert RESULT_KEYS <= set(r)
        assert set(r["latency_ms"]) >= {"p50", "p90", "p99"}
        assert r["latency_ms"]["p50"] <= r["latency_ms"]["p90"] <= r["latency_ms"]["p99"]
    assert rows["pytorch-fp32"]["is_reference"] and rows["pytorch-fp32"]["fidelity"] == {"reference": True}
    assert rows["onnx-fp32"]["fidelity"]["cosine_mean"] > 0.99999
    assert rows["onnx-int8-dynamic"]["fidelity"]["cosine_mean"] > 0.99
    assert rows["onnx-int8-dynamic"]["size_bytes"] < rows["onnx-fp32"]["size_bytes"]
    assert "| onnx-int8-dynamic |" in (tiny_compressed / "report.md").read_text()


def test_classifier_report_has_label_agreement(tiny_cls_ckpt, tmp_path):
    res = compress(tiny_cls_ckpt, fast_recipe("ptq-dynamic"), tmp_path / "out", progress=False)
    rows = {r["name"]: r for r in res.report["results"]}
    assert rows["onnx-fp32"]["fidelity"]["label_agreement"] == 1.0
    assert rows["onnx-int8-dynamic"]["fidelity"]["label_agreement"] >= 0.9


def test_failed_stage_leaves_nothing_half_written(tiny_ckpt, tmp_path, monkeypatch):
    from edgekit.stages import optimize

    def boom(*a, **k):
        raise ParityError("optimize: injected failure")

    monkeypatch.setattr(optimize, "get_runtime", lambda name: type("R", (), {"load": boom})())
    out = tmp_path / "out"
    with pytest.raises(ParityError):
        compress(tiny_ckpt, fast_recipe("ptq-dynamic"), out, progress=False)
    # a run is all or nothing: not even the export that finished is kept; no staging dirs
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_input_errors_before_any_work(tiny_ckpt, tmp_path):
    (tmp_path / "empty.txt").write_text("")
    out = tmp_path / "out"
    with pytest.raises(CalibrationError):
        compress(tiny_ckpt, fast_recipe("ptq-static"), out, calibration=tmp_path / "empty.txt", progress=False)
    assert not out.exists()


def test_stage_input_must_name_an_earlier_artifact(tiny_ckpt, tmp_path):
    from edgekit.recipe.config import recipe_from_dict

    r = recipe_from_dict(
        {"name": "x", "stages": [{"kind": "export"}, {"kind": "quantize", "method": "dynamic", "input": "later"}]}
    )
    with pytest.raises(RecipeError, match="stages.1.input: no earlier artifact named 'later'"):
        compress(tiny_ckpt, r, tmp_path / "o", progress=False)


def test_branching_recipe_and_rerun_replaces(tiny_ckpt, tmp_path):
    from edgekit.recipe.config import recipe_from_dict

    r = recipe_from_dict(
        {
            "name": "branch",
            "stages": [
                {"kind": "export"},
                {"kind": "optimize"},
                {"kind": "quantize", "method": "dynamic", "input": "onnx-fp32", "name": "q-unfused"},
                {"kind": "quantize", "method": "dynamic", "input": "onnx-fp32-opt", "name": "q-fused"},
                {"kind": "bench", "runs": 2, "warmup": 0, "fidelity_samples": 4, "threads": 1, "reference": False},
            ],
        }
    )
    out = tmp_path / "o"
    for overwrite in (False, True):  # the second run replaces the first (only with overwrite)
        res = compress(tiny_ckpt, r, out, progress=False, overwrite=overwrite)
    assert res.artifacts["q-unfused"].meta["parent"]["name"] == "onnx-fp32"
    assert res.artifacts["q-fused"].meta["parent"]["name"] == "onnx-fp32-opt"
    assert all(not r_["is_reference"] for r_ in res.report["results"])
    assert json.loads((out / "report.json").read_text())["recipe"]["name"] == "branch"
