"""`edgekit report`: rendering, baselines and gates."""

import copy
import json
import re
import xml.etree.ElementTree as ET

import pytest

from edgekit.errors import InputError
from edgekit.report.gates import NOISE_CAP_PCT, Thresholds, compare, load_report
from edgekit.report.plots import pareto_front
from edgekit.report.render import junit
from tests.cli.test_cli import _one_line_error
from tests.conftest import read_json


@pytest.fixture
def report_path(tiny_compressed):
    return tiny_compressed / "report.json"


def _write(tmp_path, name, report):
    p = tmp_path / name
    p.write_text(json.dumps(report))
    return p


def _injected_regression(report: dict) -> tuple[dict, dict]:
    """Baseline: the report; new: the same report with the int8 row three times slower (its fp32 as before,
    so its speed-up over that fp32 falls to a third) and as big as the fp32 file."""
    base = copy.deepcopy(report)
    new = copy.deepcopy(report)
    rows = {r["name"]: r for r in new["results"]}
    slow = rows["onnx-int8-dynamic"]
    lat = slow["latency_ms"]
    factor = 3.0  # the tiny model's fp32/int8 gap is small: make the injected regression unmistakable
    slow["latency_ms"] = {**lat, "p50": lat["p50"] * factor, "p90": lat["p50"] * factor * 1.05}
    slow["size_bytes"] = rows["onnx-fp32"]["size_bytes"]
    return base, new


def test_self_comparison_passes(run_cli, report_path, tmp_path):
    res = run_cli(
        "report",
        str(report_path),
        "--baseline",
        str(report_path),
        "--max-latency-regression",
        "10",
        "--max-size-growth",
        "0",
        "--max-accuracy-drop",
        "0",
        "--junit",
        str(tmp_path / "j.xml"),
    )
    assert res.exit_code == 0, res.stderr
    assert "PASSED" in res.output
    suite = ET.parse(tmp_path / "j.xml").getroot()
    # 4 rows x (artifact present, size) + accuracy for the 3 non-reference rows + latency for the 3 rows with a
    # speed-up to gate (int8 and fp32-opt over onnx-fp32, onnx-fp32 over PyTorch; the reference is their basis)
    assert int(suite.get("tests")) == 14 and suite.get("failures") == "0"


def test_injected_latency_regression_fails_with_gate_code(run_cli, report_path, tmp_path):
    base, new = _injected_regression(read_json(report_path))
    b, n = _write(tmp_path, "base.json", base), _write(tmp_path, "new.json", new)
    junit = tmp_path / "gates.xml"
    res = run_cli(
        "report",
        str(n),
        "--baseline",
        str(b),
        "--max-latency-regression",
        "10",
        "--max-size-growth",
        "5",
        "--junit",
        str(junit),
    )
    _one_line_error(res, 3, "gate(s) failed", "onnx-int8-dynamic latency")
    suite = ET.parse(junit).getroot()
    failing = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failing == ["onnx-int8-dynamic.latency", "onnx-int8-dynamic.size"]


def test_noise_within_the_spread_does_not_fail(report_path):
    report = read_json(report_path)
    noisy = copy.deepcopy(report)
    for row in noisy["results"]:
        lat = row["latency_ms"]
        row["latency_ms"] = {**lat, "p50": lat["p50"] * 1.2, "p90": lat["p50"] * 1.2 + lat["p50"]}
    result = compare(noisy, report, Thresholds(max_latency_regression_pct=10))
    assert result.passed  # +20% but smaller than the recorded p90-p50 spread


def test_accuracy_drop_gate(report_path):
    report = read_json(report_path)
    worse = copy.deepcopy(report)
    for row in worse["results"]:
        if "cosine_mean" in row["fidelity"]:
            row["fidelity"]["cosine_mean"] -= 0.02
    result = compare(worse, report, Thresholds(max_accuracy_drop_points=1.0))
    assert not result.passed
    assert {c.delta for c in result.checks if not c.passed} == {"-2.00 pts"}


def test_bad_reports_are_input_errors(run_cli, report_path, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    _one_line_error(run_cli("report", str(bad)), 2, "not a JSON report")
    other = read_json(report_path)
    other["schema_version"] = 99
    _one_line_error(run_cli("report", str(_write(tmp_path, "v99.json", other))), 2, "schema version 99")
    different = read_json(report_path)
    different["model"]["digest"] = "0" * 64
    res = run_cli("report", str(report_path), "--baseline", str(_write(tmp_path, "m.json", different)))
    _one_line_error(res, 2, "different models")
    _one_line_error(run_cli("report", str(_write(tmp_path, "x.json", {"a": 1}))), 2, "not an edgekit report")
    _one_line_error(run_cli("report", str(tmp_path / "missing.json")), 2, "report not found")


def test_environment_change_is_warned(report_path):
    report = read_json(report_path)
    moved = copy.deepcopy(report)
    moved["environment"]["cpu"]["model"] = "Some ARM board"
    moved["environment"]["threads"] = 4
    result = compare(moved, report, Thresholds())
    assert any("another CPU" in w for w in result.warnings)
    assert any("threads" in w for w in result.warnings)


def test_html_is_self_contained_with_plots(run_cli, report_path, tmp_path):
    out = tmp_path / "r.html"
    res = run_cli("report", str(report_path), "--html", str(out), "--markdown", str(tmp_path / "r.md"))
    assert res.exit_code == 0, res.stderr
    page = out.read_text()
    assert 'id="plot-pareto"' in page and 'id="plot-size"' in page
    assert page.count('class="point"') == 4 and 'class="pareto"' in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<script" not in page
    assert "| onnx-int8-dynamic |" in (tmp_path / "r.md").read_text()


def test_pareto_front():
    pts = [(10, 1.0, "fp32"), (5, 0.99, "int8"), (6, 0.98, "worse"), (3, 0.9, "tiny")]
    assert [p[2] for p in pareto_front(pts)] == ["tiny", "int8", "fp32"]


def test_load_report_rejects_rows_without_latency(report_path, tmp_path):
    r = read_json(report_path)
    del r["results"][0]["latency_ms"]
    with pytest.raises(InputError, match=r"results\[0\] lacks latency_ms"):
        load_report(_write(tmp_path, "r.json", r))


@pytest.mark.slow  # 14-23 s on 2 cores; the default run stays under 10 minutes
def test_bench_sweep_is_stored_and_plotted(run_cli, tiny_compressed, tmp_path):
    fp32 = tiny_compressed / "onnx-fp32"
    int8 = tiny_compressed / "onnx-int8-dynamic"
    out = tmp_path / "sweep.json"
    res = run_cli(
        "bench",
        str(fp32),
        str(int8),
        "--seq-len",
        "16,32",
        "--batch-size",
        "1,2",
        "--runs",
        "3",
        "--warmup",
        "1",
        "-t",
        "1",
        "-o",
        str(out),
        "-q",
    )
    assert res.exit_code == 0, res.stderr
    report = read_json(out)
    points = {(r["name"], r["batch_size"], r["seq_len"]) for r in report["results"]}
    assert points == {(n, b, s) for n in ("onnx-fp32", "onnx-int8-dynamic") for b in (1, 2) for s in (16, 32)}
    assert report["settings"]["sweep"]["seq_lens"] == [16, 32]
    html = tmp_path / "s.html"
    md = tmp_path / "s.md"
    assert run_cli("report", str(out), "--html", str(html), "--markdown", str(md)).exit_code == 0
    page = html.read_text()
    # one latency-by-length plot per batch size, each saying which batch it shows
    for plot_id, batch in (("plot-sweep", 1), ("plot-sweep-2", 2)):
        svg = re.search(rf'<svg id="{plot_id}".*?</svg>', page, re.S).group(0)
        assert svg.count('class="series"') == 2 and f"at batch {batch}, 1 thread" in svg
    # the tables carry batch and sequence: 8 distinguishable rows, and the header claims no single point
    text = md.read_text()
    assert "| artifact | format | precision | runtime | batch | seq |" in text
    rows = [line for line in text.splitlines() if line.startswith("| onnx-")]
    assert len(rows) == 8 and len({tuple(r.split("|")[1:7]) for r in rows}) == 8
    assert "batch 1, 2 × sequence 16, 32 × 1 thread" in text and "task: None" not in text
    # a sweep compared with itself: every point matched, all pass
    res = run_cli("report", str(out), "--baseline", str(out), "--max-latency-regression", "10")
    assert res.exit_code == 0 and "onnx-fp32[b1,s16,t1]" in res.output


def test_bench_rejects_a_bad_sweep(run_cli, tiny_compressed):
    res = run_cli("bench", str(tiny_compressed / "onnx-fp32"), "--seq-len", "16,x")
    assert res.exit_code == 2


def test_gates_come_from_the_recipe_unless_a_flag_overrides(run_cli, report_path, tmp_path):
    base, new = _injected_regression(read_json(report_path))
    new["recipe"] = {
        **(new.get("recipe") or {}),
        "gates": {"max_latency_regression": 10.0, "max_size_growth": None, "max_accuracy_drop": None},
    }
    b, n = _write(tmp_path, "base.json", base), _write(tmp_path, "new.json", new)
    res = run_cli("report", str(n), "--baseline", str(b))
    _one_line_error(res, 3, "gate(s) failed", "onnx-int8-dynamic latency")
    res = run_cli("report", str(n), "--baseline", str(b), "--max-latency-regression", "1000")
    assert res.exit_code == 0, res.stderr


def test_recipe_gates_are_validated_and_recorded(tiny_ckpt, tmp_path):
    from edgekit.errors import RecipeError
    from edgekit.pipeline.run import compress
    from edgekit.recipe.config import recipe_from_dict
    from tests.helpers import FAST_BENCH

    with pytest.raises(RecipeError, match="gates.max_size_growth"):
        recipe_from_dict({"name": "g", "stages": [{"kind": "export"}], "gates": {"max_size_growth": -1}})
    with pytest.raises(RecipeError, match="gates.max_speed: unknown key"):
        recipe_from_dict({"name": "g", "stages": [{"kind": "export"}], "gates": {"max_speed": 1}})
    recipe = recipe_from_dict(
        {
            "name": "g",
            "stages": [{"kind": "export"}, FAST_BENCH],
            "gates": {"max_latency_regression": 15, "max_accuracy_drop": 0.5},
        }
    )
    report = compress(tiny_ckpt, recipe, tmp_path / "out", progress=False).report
    assert report["recipe"]["gates"] == {
        "max_latency_regression": 15.0,
        "max_size_growth": None,
        "max_accuracy_drop": 0.5,
    }
    assert "max_latency_regression: 15" in (tmp_path / "out" / "recipe.yaml").read_text()


BASELINE = "benchmarks/baselines/tiny-ptq-dynamic.json"
ALL = Thresholds(max_latency_regression_pct=10, max_size_growth_pct=1, max_accuracy_drop_points=0.5)


@pytest.fixture
def real():
    """The committed baseline: a real run's report."""
    from pathlib import Path

    return read_json(Path(__file__).parents[2] / BASELINE)


def test_a_baseline_sharing_no_artifact_fails_and_says_so_in_junit(real):
    new = copy.deepcopy(real)
    for row in new["results"]:
        row["name"] = "renamed-" + row["name"]
    result = compare(new, real, ALL)
    assert not result.passed
    assert [(c.gate, c.delta) for c in result.checks] == [("artifact", "missing")] * 4
    suite = ET.fromstring(junit(result).split("\n", 1)[1])
    assert (suite.get("tests"), suite.get("failures")) == ("4", "4")
    assert sum("not in the baseline" in w for w in result.warnings) == 4


def test_a_dropped_artifact_fails_even_without_thresholds(real):
    new = copy.deepcopy(real)
    new["results"] = [r for r in new["results"] if r["name"] != "onnx-int8-dynamic"]
    result = compare(new, real, Thresholds())
    assert [(c.artifact, c.passed) for c in result.checks if c.gate == "artifact"] == [
        ("pytorch-fp32", True),
        ("onnx-fp32", True),
        ("onnx-fp32-opt", True),
        ("onnx-int8-dynamic", False),
    ]
    assert any("only the artifacts' presence" in w for w in result.warnings)


def test_baseline_of_another_recipe_is_refused_a_changed_digest_warned(real):
    other = copy.deepcopy(real)
    other["recipe"]["name"] = "ptq-static"
    with pytest.raises(InputError, match="baseline is of another recipe .ptq-static vs ptq-dynamic"):
        compare(real, other, ALL)
    no_recipe = copy.deepcopy(real)
    no_recipe["recipe"] = None
    with pytest.raises(InputError, match="another recipe"):
        compare(real, no_recipe, ALL)
    edited = copy.deepcopy(real)
    edited["recipe"]["digest"] = "a" * 64
    result = compare(real, edited, ALL)
    assert result.passed and any("changed since the baseline" in w for w in result.warnings)


def test_an_empty_baseline_is_an_input_error(real):
    empty = copy.deepcopy(real)
    empty["results"] = []
    with pytest.raises(InputError, match="no results"):
        compare(real, empty, ALL)


def test_a_huge_regression_fails_however_wide_the_spread(real):
    new = copy.deepcopy(real)
    row = next(r for r in new["results"] if r["name"] == "onnx-int8-dynamic")
    p50 = row["latency_ms"]["p50"] * 36.46  # +3546%
    row["latency_ms"].update(p50=p50, p90=p50 * 3)  # a spread far larger than the regression
    failed = [c for c in compare(new, real, ALL).checks if not c.passed]
    assert [(c.artifact, c.gate, c.delta) for c in failed] == [("onnx-int8-dynamic", "latency", "+3546.0%")]
    # noise still excuses growth below the cap: +40% inside a wide spread passes a 10% limit
    row["latency_ms"].update(p50=p50 / 36.46 * 1.4, p90=p50)
    assert compare(new, real, ALL).passed
    # and never more than NOISE_CAP_PCT: just above it fails
    base_p50 = next(r for r in real["results"] if r["name"] == "onnx-int8-dynamic")["latency_ms"]["p50"]
    row["latency_ms"].update(p50=base_p50 * (1 + NOISE_CAP_PCT / 100 + 0.05), p90=base_p50 * 100)
    assert not compare(new, real, ALL).passed


def test_an_accuracy_the_new_report_lacks_fails(real):
    new = copy.deepcopy(real)
    next(r for r in new["results"] if r["name"] == "onnx-int8-dynamic")["fidelity"] = {}
    failed = [c for c in compare(new, real, ALL).checks if not c.passed]
    assert [(c.artifact, c.gate, c.delta) for c in failed] == [("onnx-int8-dynamic", "accuracy", "missing")]
