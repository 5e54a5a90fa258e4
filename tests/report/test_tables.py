"""Tables and plots that carry every dimension they vary over (issue 19), on the committed real baseline."""

import copy
import re
from pathlib import Path

import pytest

from edgekit.report.build import markdown, text_table
from edgekit.report.gates import Thresholds, compare, load_report
from edgekit.report.plots import (
    LEGEND_W,
    W,
    discrete_axis,
    fraction_axis,
    linear_axis,
    log_axis,
    nice_step,
    value_axis,
)
from edgekit.report.render import html, markdown_all

BASELINE = Path(__file__).parents[2] / "benchmarks" / "baselines" / "tiny-ptq-dynamic.json"


@pytest.fixture
def real() -> dict:
    return load_report(BASELINE)


@pytest.fixture
def sweep(real) -> dict:
    """`bench onnx-fp32 onnx-int8-dynamic -s 32,128 -b 1,4`, built from the real rows (p50 grows with b x s)."""
    rep = copy.deepcopy(real)
    rep.update(kind="bench", recipe=None)
    rep["model"]["task"] = None
    rows = []
    for b in (1, 4):
        for s in (32, 128):
            for name in ("onnx-fp32", "onnx-int8-dynamic"):
                r = copy.deepcopy(next(x for x in real["results"] if x["name"] == name))
                for k in ("fp32_same_runtime", "speedup_vs_fp32_same_runtime", "speedup_vs_reference"):
                    r.pop(k, None)
                r.update(batch_size=b, seq_len=s, fidelity={"selfcheck_cosine_min": 1.0})
                r["latency_ms"] = {k: v * b * s / 32 for k, v in r["latency_ms"].items() if k != "runs"}
                rows.append(r)
    rep["results"] = rows
    from edgekit.report.build import add_derived_fields

    return add_derived_fields(rep)


def _md_rows(text: str, first: str = "| onnx-") -> list[list[str]]:
    return [[c.strip() for c in line.split("|")[1:-1]] for line in text.splitlines() if line.startswith(first)]


def test_a_sweep_has_eight_distinguishable_rows_everywhere(sweep):
    md = markdown(sweep)
    header = next(line for line in md.splitlines() if line.startswith("| artifact"))
    assert "| batch | seq |" in header and "threads" not in header  # threads took one value: not a column
    assert "vs PyTorch" not in header and "| vs fp32 |" in header  # no PyTorch reference in a bench of files
    rows = _md_rows(md)
    assert len(rows) == 8 and len({tuple(r[:6]) for r in rows}) == 8
    assert "batch 1, 4 × sequence 32, 128 × 1 thread" in md
    assert "batch 1, sequence 32" not in md and "task" not in md.split("\n|")[0]  # no "task: None"
    text = text_table(sweep).splitlines()
    assert text[0].split()[:6] == ["artifact", "format", "precision", "runtime", "batch", "seq"]
    assert len({tuple(line.split()[:6]) for line in text[2:]}) == 8
    page = html([sweep])
    cells = re.findall(r"<tr(?: class='run-start')?><td>(onnx-[^<]*)</td>(.*?)</tr>", page)
    assert len({(name, *re.findall(r"<td[^>]*>([^<]*)</td>", rest)[:5]) for name, rest in cells}) == 8


def test_speedups_and_both_memories_are_columns(real):
    md = markdown(real)
    header = _md_rows(md, "| artifact")[0]
    assert header[8:12] == ["vs PyTorch", "vs fp32", "model MB", "process MB"]
    int8 = next(r for r in _md_rows(md) if r[0] == "onnx-int8-dynamic")
    assert int8[8:12] == ["11.97x", "1.36x", "2", "489"]  # peak_rss_mb 2.0 (the model's), process 489.2
    assert "vs fp32: p50 speed-up over the fp32 model on the same runtime" in md and "onnx-fp32 on onnxruntime" in md


def test_several_reports_get_a_run_column_and_one_colour_per_artifact(real):
    second = copy.deepcopy(real)
    for row in second["results"]:
        row["latency_ms"] = {k: v * 1.2 for k, v in row["latency_ms"].items()}
    third = copy.deepcopy(real)
    md = markdown_all([real, second, third])
    rows = _md_rows(md, "| #")
    assert len(rows) == 12 and {r[0] for r in rows} == {"#1", "#2", "#3"}
    assert md.count("## Run #") == 3
    page = html([real, second, third])
    assert "<th>run</th>" in page and page.count("<td>#2</td>") == 4
    # the int8 artifact is drawn in one colour in every plot (markers, whiskers, bars)
    colours = set()
    for svg in re.findall(r"<svg .*?</svg>", page, re.S):
        colours |= set(re.findall(r'(?:stroke|fill)="(#[0-9a-f]{6})"[^>]*>\s*<title>[^<]*onnx-int8-dynamic', svg))
    assert len(colours) == 1
    # runs are told apart by marker shape in the scatter: a legend names them
    pareto = re.search(r'<svg id="plot-pareto".*?</svg>', page, re.S).group(0)
    assert pareto.count('class="point"') == 12 and all(f">{r}</text>" in pareto for r in ("#1", "#2", "#3"))


def test_legends_sit_outside_the_plotting_area(real, sweep):
    for page in (html([real]), html([sweep]), html([real, copy.deepcopy(real)])):
        for svg in re.findall(r"<svg .*?</svg>", page, re.S):
            legend_x = [float(x) for x in re.findall(r'<text class="legend" x="([\d.]+)"', svg)]
            assert all(x > W - LEGEND_W for x in legend_x)
            data_x = [float(x) for x in re.findall(r'class="point" cx="([\d.]+)"', svg)]
            data_x += [float(p.split(",")[0]) for p in re.findall(r'class="series"[^>]*points="([^"]+)"', svg)]
            assert all(x <= W - LEGEND_W for x in data_x)


def test_a_sweep_plot_says_which_batch_it_shows(sweep):
    page = html([sweep])
    titles = re.findall(r'<svg id="plot-sweep[^"]*".*?aria-label="([^"]+)"', page)
    assert titles == [
        "p50 latency by sequence length at batch 1, 1 thread",
        "p50 latency by sequence length at batch 4, 1 thread",
    ]


def test_html_has_the_environment_and_a_gate_table_with_both_values(real):
    new = copy.deepcopy(real)
    next(r for r in new["results"] if r["name"] == "onnx-int8-dynamic")["size_bytes"] = 140000
    comparison = compare(new, real, Thresholds(max_size_growth_pct=5, max_latency_regression_pct=10))
    page = html([new], comparison)
    for fact in ("CPU", "AMD EPYC (x86_64, 2 logical cores)", "versions", "onnxruntime 1.32.0", "measured at"):
        assert fact in page
    assert "Baseline gate FAILED: 1 of 11 checks" in page
    row = re.search(r"<tr class='failed'><td>onnx-int8-dynamic</td><td>size</td>(.*?)</tr>", page).group(1)
    assert re.findall(r"<td[^>]*>([^<]*)</td>", row)[:4] == ["0.070 MB", "0.140 MB", "+99.0%", "FAIL"]
    lat = re.search(r"<tr><td>onnx-int8-dynamic</td><td>latency</td>(.*?)</tr>", page).group(1)
    assert "1.36x vs onnx-fp32 (p50 0.141 ms)" in lat


def test_ticks_are_round_numbers():
    assert nice_step(372, 5) == 100 and nice_step(0.0016, 5) == 0.0005
    assert linear_axis(0, 372, zero=True).labels == ["0", "100", "200", "300", "400"]
    fid = fraction_axis([0.9984, 0.9991, 1.0])
    assert fid.hi == 1.0 and fid.labels[-1] == "1.0000" and all(float(t) <= 1.0 for t in fid.labels)
    assert fid.labels == ["0.9980", "0.9985", "0.9990", "0.9995", "1.0000"]
    assert fraction_axis([0.99998, 1.0]).labels[-2:] == ["0.999995", "1.000000"]
    assert log_axis(0.11, 18.6).labels == ["0.1", "0.2", "0.5", "1", "2", "5", "10", "20"]
    assert log_axis(0.5, 1300).labels == ["0.5", "1", "2", "5", "10", "20", "50", "100", "200", "500", "1000", "2000"]
    assert log_axis(0.02, 130).labels[0] == "0.01" and log_axis(0.02, 130).labels[-1] == "1000"  # 3.8 decades
    assert value_axis([0.11, 0.14, 1.9]).log and not value_axis([0.11, 0.14, 0.9]).log  # >10x: log
    assert discrete_axis([32, 128, 32]).labels == ["32", "128"]
    for axis in (linear_axis(0.0, 1.3e3), linear_axis(0.9984, 1.001), log_axis(0.02, 1.3e5)):
        assert not any("e" in label for label in axis.labels)
