"""`edgekit bundle DIR` without -a: the fastest promotable artifact per format, within the recipe's budgets."""

import copy
import json
import shutil

import pytest

from edgekit.errors import InputError
from edgekit.pipeline.bundling import recipe_budgets, select_artifacts
from tests.conftest import read_json

SEARCH_RECIPE = """\
version: 1
name: searched
stages:
  - kind: export
    format: onnx
  - kind: search
    targets: [onnx-fp32]
    budget:
      min_fidelity: {min_fidelity}
"""


def _row(base: dict, name: str, fmt: str, p50: float, cosine: float, **extra) -> dict:
    row = copy.deepcopy(base)
    row.pop("promotable", None)
    row.pop("not_promoted_because", None)
    row.update(name=name, format=fmt, precision="int8" if "int8" in name else "fp32", **extra)
    row["latency_ms"] = {**row["latency_ms"], "p50": p50, "p90": p50, "p99": p50}
    row["fidelity"] = {"samples": 24, "cosine_mean": cosine, "cosine_min": cosine}
    return row


@pytest.fixture
def run_dir(tiny_compressed, tmp_path):
    """A compress output's report, its rows rewritten: ONNX fp32 1.0 ms, fp32-opt 0.9 ms, int8 0.5 ms
    (cosine 0.999), a TFLite int8 row at 0.4 ms that the run did not promote and a TFLite fp32 at 2 ms."""
    report = read_json(tiny_compressed / "report.json")
    onnx_row = next(r for r in report["results"] if r["name"] == "onnx-fp32")
    ref = next(r for r in report["results"] if r["format"] == "hf-checkpoint")
    report["results"] = [
        ref,
        _row(onnx_row, "onnx-fp32", "onnx", 1.0, 1.0, promotable=True),
        _row(onnx_row, "onnx-fp32-opt", "onnx", 0.9, 1.0, promotable=True),
        _row(onnx_row, "onnx-int8-dynamic", "onnx", 0.5, 0.999, promotable=True),
        _row(
            onnx_row,
            "tflite-int8",
            "tflite",
            0.4,
            0.998,
            promotable=False,
            not_promoted_because="slower than its parent tflite-fp32",
        ),
        _row(onnx_row, "tflite-fp32", "tflite", 2.0, 1.0, promotable=True),
    ]
    (tmp_path / "report.json").write_text(json.dumps(report))
    return tmp_path


def test_fastest_promotable_per_format(run_dir):
    sel = select_artifacts(run_dir)
    assert sel.names == ["onnx-int8-dynamic", "tflite-fp32"]  # fastest first: the default variant
    text = "\n".join(sel.lines())
    assert "picked onnx-int8-dynamic: the fastest promotable ONNX artifact" in text
    assert "picked tflite-fp32: the fastest promotable TFLite artifact" in text
    assert "tflite-int8: not promotable, slower than its parent tflite-fp32" in text
    assert "onnx-fp32-opt: slower, p50 0.90 ms" in text


def test_the_recipe_budget_leaves_out_what_it_does_not_allow(run_dir):
    (run_dir / "recipe.yaml").write_text(SEARCH_RECIPE.format(min_fidelity=0.9995))
    assert recipe_budgets(run_dir, read_json(run_dir / "report.json")) == {"min_fidelity": 0.9995}
    sel = select_artifacts(run_dir)
    assert sel.names == ["onnx-fp32-opt", "tflite-fp32"]
    assert any("onnx-int8-dynamic: outside the budget, fidelity 0.9990 below" in x for x in sel.passed_over)
    assert "within the recipe's budgets" in sel.picked[0]


def test_nothing_promotable_is_bad_input_naming_why(run_dir):
    (run_dir / "recipe.yaml").write_text(SEARCH_RECIPE.format(min_fidelity=0.99999))
    report = read_json(run_dir / "report.json")
    for r in report["results"]:
        if r["format"] != "hf-checkpoint":
            r["fidelity"]["cosine_mean"] = 0.9
    (run_dir / "report.json").write_text(json.dumps(report))
    with pytest.raises(InputError, match="no artifact the run can promote.*-a NAME"):
        select_artifacts(run_dir)


def test_named_artifacts_keep_their_meaning(run_dir):
    sel = select_artifacts(run_dir, ["onnx-fp32", "tflite-int8"])
    assert sel.names == ["onnx-fp32", "tflite-int8"] and not sel.default


def test_cli_bundle_default_says_what_it_picked(tiny_compressed, tmp_path, run_cli):
    report = read_json(tiny_compressed / "report.json")
    rows = [r for r in report["results"] if r["format"] == "onnx" and r.get("promotable") is not False]
    fastest = min(rows, key=lambda r: r["latency_ms"]["p50"])["name"]
    res = run_cli("bundle", str(tiny_compressed), "-o", str(tmp_path / "b"), "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.output)
    assert [v["name"] for v in doc["variants"]] == [fastest] and doc["default_choice"] is True
    assert f"picked {fastest}: the fastest promotable ONNX artifact" in res.stderr
    assert json.loads((tmp_path / "b" / "bundle.json").read_text())["variants"][0]["name"] == fastest
    shutil.rmtree(tmp_path / "b")
    res = run_cli("bundle", str(tiny_compressed), "-o", str(tmp_path / "b"), "-q")
    assert res.exit_code == 0 and res.stderr == ""  # quiet: no pick notes, no bar
