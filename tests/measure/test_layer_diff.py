"""`edgekit diff`: per-layer error between a reference and a transformed model."""

import json
import math

import numpy as np
import pytest

from edgekit.measure.layer_diff import error_stats, layer_diff, short_name


def test_error_stats_numbers():
    ref = np.array([3.0, 4.0])
    assert error_stats(ref, ref)["snr_db"] == math.inf
    s = error_stats(ref, np.array([3.0, 3.0]))  # noise 1, signal 25
    assert s["snr_db"] == pytest.approx(10 * math.log10(25), abs=0.01)
    assert s["rel_mse"] == pytest.approx(1 / 25)


def test_onnx_int8_against_fp32_per_layer(tiny_compressed):
    from edgekit.cli.diff import _diff_feeds

    feeds = _diff_feeds(None, [tiny_compressed / "onnx-int8-dynamic"])
    rows = layer_diff(
        tiny_compressed / "onnx-fp32-opt" / "model.onnx",
        tiny_compressed / "onnx-int8-dynamic" / "model.onnx",
        feeds,
        threads=1,
    )
    ops = {r["op"] for r in rows}
    assert {"Attention", "MatMul", "SkipLayerNormalization", "output"} <= ops
    assert [r["index"] for r in rows] == sorted(r["index"] for r in rows)  # graph order
    quantized = [r for r in rows if r["op"] in ("MatMul", "Attention")]
    assert all(r["snr_db"] < 80 for r in quantized)  # int8 error is visible...
    assert all(r["snr_db"] > 15 and r["cosine"] > 0.99 for r in rows)  # ...and small on this model
    same = layer_diff(
        tiny_compressed / "onnx-fp32-opt" / "model.onnx",
        tiny_compressed / "onnx-fp32-opt" / "model.onnx",
        feeds,
        threads=1,
    )
    assert all(r["snr_db"] == math.inf for r in same)


def test_tflite_per_layer(tiny_tflite):
    from edgekit.cli.diff import _diff_feeds

    feeds = _diff_feeds(None, [tiny_tflite / "tflite-int8-dynamic"])
    rows = layer_diff(
        tiny_tflite / "tflite-fp32" / "model.tflite",
        tiny_tflite / "tflite-int8-dynamic" / "model.tflite",
        feeds,
        threads=1,
    )
    assert "FULLY_CONNECTED" in {r["op"] for r in rows}
    assert min(r["snr_db"] for r in rows) < 60
    assert all("transformers.models" not in short_name(r["tensor"]) for r in rows)


def test_cli_diff(tiny_compressed, tiny_tflite, tmp_path, run_cli):
    r = run_cli(
        "diff",
        str(tiny_compressed / "onnx-fp32-opt"),
        str(tiny_compressed / "onnx-int8-dynamic"),
        "--worst",
        "3",
        "--json",
        str(tmp_path / "d.json"),
    )
    assert r.exit_code == 0, r.stderr
    table = [line for line in r.output.splitlines() if not line.startswith("wrote ")]
    assert len(table) == 4 and "<- worst" in r.output and f"wrote {tmp_path / 'd.json'}" in r.output
    assert json.loads((tmp_path / "d.json").read_text())["layers"]
    r = run_cli("diff", str(tiny_compressed / "onnx-fp32"), str(tiny_tflite / "tflite-fp32"))
    assert r.exit_code == 2 and "one format" in r.stderr
    r = run_cli("diff", str(tiny_compressed / "onnx-fp32" / "model.onnx"), str(tmp_path / "none.onnx"))
    assert r.exit_code == 2 and "no such model file" in r.stderr
