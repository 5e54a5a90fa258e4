"""Speed-ups over the fp32 model on the same runtime, and the gate built on them (issue 19).

Every report here is the committed real baseline (benchmarks/baselines/tiny-ptq-dynamic.json) or a
copy of it with one thing changed, so the numbers are a real run's: onnx-fp32 p50 0.1915 ms (p90
0.2626), onnx-fp32-opt 0.1132 ms, onnx-int8-dynamic 0.1411 ms (p90 0.1956), PyTorch 1.6897 ms.
"""

import copy
import json
from pathlib import Path

import pytest

from edgekit.errors import InputError
from edgekit.report.build import add_derived_fields, fp32_same_runtime
from edgekit.report.gates import NOISE_CAP_PCT, Thresholds, compare, load_report
from tests.cli.test_cli import _one_line_error

BASELINE = Path(__file__).parents[2] / "benchmarks" / "baselines" / "tiny-ptq-dynamic.json"
RATIO = Thresholds(max_latency_regression_pct=10)
ABSOLUTE = Thresholds(max_latency_regression_pct=10, absolute_latency=True)


@pytest.fixture
def real() -> dict:
    return load_report(BASELINE)


def _row(report: dict, name: str) -> dict:
    return next(r for r in report["results"] if r["name"] == name)


def _scale(row: dict, factor: float, spread: float | None = None) -> None:
    """p50 times ``factor``; p90 ``spread`` above it (relative), or scaled alike."""
    lat = row["latency_ms"]
    p50 = lat["p50"] * factor
    lat.update(p50=p50, p90=p50 * (1 + spread) if spread is not None else lat["p90"] * factor)


def _latency(result) -> dict:
    return {c.artifact: c for c in result.checks if c.gate == "latency"}


def test_speedup_over_fp32_on_the_same_runtime_is_derived_from_the_rows(real):
    rows = {r["name"]: r for r in real["results"]}
    assert {n: r["fp32_same_runtime"] for n, r in rows.items()} == {
        "pytorch-fp32": "pytorch-fp32",
        "onnx-fp32": "onnx-fp32",
        "onnx-fp32-opt": "onnx-fp32",
        "onnx-int8-dynamic": "onnx-fp32",
    }
    assert rows["onnx-int8-dynamic"]["speedup_vs_fp32_same_runtime"] == round(0.1915 / 0.1411, 3) == 1.357
    assert rows["onnx-fp32-opt"]["speedup_vs_fp32_same_runtime"] == round(0.1915 / 0.1132, 3) == 1.692
    assert rows["onnx-fp32"]["speedup_vs_fp32_same_runtime"] == 1.0


def test_the_basis_follows_recorded_lineage_within_one_format():
    """A distilled student's int8 is compared with the student's own fp32 export, not the teacher's."""

    def row(name, fmt, precision, runtime, p50, parent=None):
        r = {"name": name, "format": fmt, "precision": precision, "runtime": runtime, "latency_ms": {"p50": p50}}
        r.update(batch_size=1, seq_len=32, threads=1)
        return {**r, "parent": parent} if parent else r

    rows = [
        row("onnx-fp32", "onnx", "fp32", "onnxruntime", 4.0, "pytorch-fp32"),
        row("student", "hf-checkpoint", "fp32", "torch", 3.0, "pytorch-fp32"),
        row("student-onnx", "onnx", "fp32", "onnxruntime", 2.0, "student"),
        row("student-int8", "onnx", "int8", "onnxruntime", 1.0, "student-onnx"),
        row("pytorch-fp32", "hf-checkpoint", "fp32", "torch", 8.0),
    ]
    assert [b["name"] if b else None for b in fp32_same_runtime(rows)] == [
        "onnx-fp32",
        "pytorch-fp32",  # the student checkpoint on torch: over the teacher, its fp32 ancestor in that format
        "student-onnx",
        "student-onnx",
        "pytorch-fp32",  # where the chains start: its own
    ]
    report = add_derived_fields({"results": copy.deepcopy(rows)})
    assert report["results"][3]["speedup_vs_fp32_same_runtime"] == 2.0
    # without lineage: the first fp32 row of the format on the runtime (pipeline order: the export)
    for r in rows:
        r.pop("parent", None)
    assert [b["name"] for b in fp32_same_runtime(rows)] == ["onnx-fp32", "student", "onnx-fp32", "onnx-fp32", "student"]
    rows[-1]["is_reference"] = True  # the PyTorch reference is its own
    assert fp32_same_runtime(rows)[-1]["name"] == "pytorch-fp32"


def test_an_int8_row_without_an_fp32_on_its_runtime_has_no_speedup(real):
    report = copy.deepcopy(real)
    report["results"] = [copy.deepcopy(_row(real, "onnx-int8-dynamic"))]
    for k in ("fp32_same_runtime", "speedup_vs_fp32_same_runtime"):
        report["results"][0].pop(k)
    row = add_derived_fields(report)["results"][0]
    assert row["fp32_same_runtime"] is None and row["speedup_vs_fp32_same_runtime"] is None


def test_a_slower_machine_moves_no_ratio(real):
    """Every row 2.5 times slower (another machine, a loaded runner): the ratio gate passes, the absolute
    gate on the same machine class fails every row."""
    slow = copy.deepcopy(real)
    for row in slow["results"]:
        _scale(row, 2.5)
    result = compare(slow, real, RATIO)
    assert result.passed
    checks = _latency(result)
    assert sorted(checks) == ["onnx-fp32", "onnx-fp32-opt", "onnx-int8-dynamic"]
    assert {c.delta for c in checks.values()} <= {"+0.0%", "-0.0%"}
    assert checks["onnx-int8-dynamic"].shown("old") == "1.36x vs onnx-fp32 (p50 0.141 ms)"
    assert checks["onnx-int8-dynamic"].shown("new") == "1.36x vs onnx-fp32 (p50 0.353 ms)"
    assert checks["onnx-fp32"].basis == "pytorch-fp32"  # an fp32 that is its own: over the PyTorch reference
    absolute = compare(slow, real, ABSOLUTE)
    assert sorted(c.artifact for c in absolute.checks if not c.passed) == [
        "onnx-fp32",
        "onnx-fp32-opt",
        "onnx-int8-dynamic",
        "pytorch-fp32",
    ]


def test_an_int8_speedup_that_falls_fails_and_shows_both_ratios(real):
    """The int8 row 1.8x slower, its fp32 unchanged: speed-up 1.36x -> 0.75x, +80% relative p50, more than
    the 10% limit and the noise allowance (the baseline's spreads: capped at 50%)."""
    new = copy.deepcopy(real)
    _scale(_row(new, "onnx-int8-dynamic"), 1.8, spread=0.01)
    result = compare(new, real, RATIO)
    failed = [c for c in result.checks if not c.passed]
    assert [(c.artifact, c.gate, c.delta) for c in failed] == [("onnx-int8-dynamic", "latency", "+80.0%")]
    c = failed[0]
    assert (round(c.old, 3), round(c.new, 3)) == (1.357, 0.754)
    assert c.shown("new") == "0.75x vs onnx-fp32 (p50 0.254 ms)"
    assert f"at most {NOISE_CAP_PCT:g}%" in c.detail and "noise allowance 50%" in c.detail
    # +40% is inside the recorded noise (the baseline's int8 and fp32 spreads add up to 76%, capped at 50)
    new = copy.deepcopy(real)
    _scale(_row(new, "onnx-int8-dynamic"), 1.4, spread=0.01)
    assert compare(new, real, RATIO).passed


def test_a_faster_fp32_fails_the_int8_ratio_though_int8_p50_is_unchanged(real):
    """The fp32 export twice as fast while int8 stays: int8's speed-up over it halves (+100%): a ratio
    catches what an absolute p50 on int8 never would."""
    new = copy.deepcopy(real)
    for row in new["results"]:
        row["latency_ms"]["p90"] = row["latency_ms"]["p50"] * 1.01  # a quiet run
    _scale(_row(new, "onnx-fp32"), 0.5, spread=0.01)
    checks = _latency(compare(new, real, RATIO))
    assert (checks["onnx-int8-dynamic"].passed, checks["onnx-int8-dynamic"].delta) == (False, "+100.0%")
    assert checks["onnx-fp32-opt"].delta == "+100.0%"


def test_absolute_latency_against_another_machine_class_is_refused(real, run_cli, tmp_path):
    moved = copy.deepcopy(real)
    moved["environment"]["cpu"]["model"] = "Apple M2"
    moved["environment"]["cpu"]["machine"] = "arm64"
    with pytest.raises(InputError, match=r"absolute latency gating refused: the baseline was measured on AMD EPYC"):
        compare(moved, real, ABSOLUTE)
    result = compare(moved, real, RATIO)  # the default: ratios from each run compare across machines
    assert result.passed and any("another CPU" in w for w in result.warnings)
    n, b = tmp_path / "new.json", tmp_path / "base.json"
    n.write_text(json.dumps(moved))
    b.write_text(BASELINE.read_text())
    res = run_cli("report", str(n), "--baseline", str(b), "--max-latency-regression", "10", "--absolute-latency")
    _one_line_error(res, 2, "absolute latency gating refused", "drop --absolute-latency")
    res = run_cli("report", str(n), "--baseline", str(b), "--max-latency-regression", "10")
    assert res.exit_code == 0, res.stderr
    assert "1.36x vs onnx-fp32" in res.output


def test_a_row_with_nothing_to_measure_a_speedup_against_is_named(real):
    new, base = copy.deepcopy(real), copy.deepcopy(real)
    for rep in (new, base):
        rep["results"] = [r for r in rep["results"] if r["name"] in ("onnx-int8-dynamic", "pytorch-fp32")]
        for r in rep["results"]:
            r.pop("fp32_same_runtime")
            r.pop("speedup_vs_fp32_same_runtime")
        add_derived_fields(rep)
    result = compare(new, base, RATIO)
    # int8 has no fp32 on onnxruntime here: it is gated over the PyTorch reference instead
    assert _latency(result)["onnx-int8-dynamic"].basis == "pytorch-fp32"
    base["results"] = [r for r in base["results"] if r["name"] != "pytorch-fp32"]
    new["results"] = [r for r in new["results"] if r["name"] != "pytorch-fp32"]
    result = compare(new, base, RATIO)
    assert not _latency(result)
    assert any("latency not gated" in w and "onnx-int8-dynamic" in w for w in result.warnings)
