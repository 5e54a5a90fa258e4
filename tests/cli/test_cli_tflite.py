"""`edgekit bench` on .tflite files: foreign models, broken files, crashes isolated."""

import numpy as np

from edgekit.testing import with_custom_op
from tests.cli.test_cli import _one_line_error
from tests.conftest import read_json


def test_bench_tflite_file_synthesizes_int32_inputs(run_cli, tiny_tflite, tmp_path):
    out = tmp_path / "r.json"
    res = run_cli("bench", str(tiny_tflite / "tflite-fp32" / "model.tflite"), "--runs", "3", "-o", str(out), "-q")
    assert res.exit_code == 0, res.stderr
    row = read_json(out)["results"][0]
    assert row["runtime"] == "litert" and row["input_shapes"]["input_ids"] == [1, 128]
    assert row["runtime_details"]["xnnpack_delegate"] is True


def test_bench_artifact_directory_replays_selfcheck(run_cli, tiny_tflite, tmp_path):
    out = tmp_path / "r.json"
    res = run_cli("bench", str(tiny_tflite / "tflite-int8-dynamic"), "--runs", "3", "-o", str(out), "-q")
    assert res.exit_code == 0, res.stderr
    row = read_json(out)["results"][0]
    assert row["precision"] == "int8" and row["fidelity"]["selfcheck_cosine_min"] > 0.999


def test_not_a_flatbuffer(run_cli, tmp_path):
    f = tmp_path / "m.tflite"
    f.write_bytes(b"PK\x03\x04 definitely a zip" * 4)
    _one_line_error(run_cli("bench", str(f)), 2, "not a TFLite flatbuffer")


def test_custom_op_is_a_clean_error(run_cli, tiny_tflite, tmp_path):
    f = with_custom_op(tiny_tflite / "tflite-fp32" / "model.tflite", tmp_path / "custom.tflite")
    _one_line_error(run_cli("bench", str(f), "--runs", "1"), 2, "litert cannot run it", "EdgekitMissingOp")


def test_truncated_flatbuffer_cannot_kill_edgekit(run_cli, tiny_tflite, tmp_path):
    data = (tiny_tflite / "tflite-fp32" / "model.tflite").read_bytes()
    f = tmp_path / "cut.tflite"
    f.write_bytes(data[: len(data) // 3])
    res = run_cli("bench", str(f), "--runs", "1")
    assert res.exit_code == 2 and res.stderr.startswith("edgekit: error: ")


def test_inputs_of_the_wrong_dtype(run_cli, tiny_tflite, tmp_path):
    model = tiny_tflite / "tflite-fp32" / "model.tflite"
    bad = tmp_path / "bad.npz"
    np.savez(
        bad,
        input_ids=np.ones((1, 128), np.int64),
        attention_mask=np.ones((1, 128), np.int32),
        token_type_ids=np.zeros((1, 128), np.int32),
    )
    _one_line_error(
        run_cli("bench", str(model), "--inputs", str(bad), "--runs", "1"),
        2,
        "input 'input_ids' has dtype int64, the model takes int32",
    )
    good = tmp_path / "good.npz"
    np.savez(
        good,
        input_ids=np.ones((1, 128), np.int32),
        attention_mask=np.ones((1, 128), np.int32),
        token_type_ids=np.zeros((1, 128), np.int32),
    )
    res = run_cli("bench", str(model), "--inputs", str(good), "--runs", "2", "-q")
    assert res.exit_code == 0, res.stderr
    short = tmp_path / "short.npz"
    np.savez(short, input_ids=np.ones((1, 128), np.int32))
    _one_line_error(run_cli("bench", str(model), "--inputs", str(short), "--runs", "1"), 2, "lacks model input")
