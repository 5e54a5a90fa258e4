"""Inputs a user states (--shape, --value) where synthesis from a model's specs cannot guess them, and
third-party TFLite files with no signatures: on the real runtimes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.data.feeds import InputOverrides, synthesize
from edgekit.errors import InputError
from edgekit_runtimes.base import TensorSpec
from tests.foreign_models import legacy_fc_tflite, picky_onnx

SPECS = [
    TensorSpec("input", "float32", ("batch", "samples")),
    TensorSpec("state", "float32", (2, "batch", 128)),
    TensorSpec("sr", "int64", ()),
]


def test_synthesis_reads_batch_dims_by_name_and_keeps_scalars_scalar():
    feeds = synthesize(SPECS, batch_size=3, seq_len=40)
    assert feeds["input"].shape == (3, 40)
    assert feeds["state"].shape == (2, 3, 128)  # axis 1 is named batch: not the sequence length
    assert feeds["sr"].shape == () and feeds["sr"].dtype == np.int64


def test_overrides_set_whole_shapes_and_values():
    o = InputOverrides(shapes={"input": (1, 512)}, values={"sr": 16000.0, "state": 0.5})
    feeds = synthesize(SPECS, batch_size=1, seq_len=40, overrides=o)
    assert feeds["input"].shape == (1, 512)
    assert feeds["sr"].item() == 16000 and feeds["sr"].dtype == np.int64
    assert feeds["state"].shape == (2, 1, 128) and np.all(feeds["state"] == 0.5)
    assert InputOverrides.from_json(json.loads(json.dumps(o.as_json()))) == o


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (InputOverrides(shapes={"inp": (1, 2)}), "--shape inp: the model has no input 'inp'; its inputs: input [batch"),
        (InputOverrides(values={"rate": 1.0}), "--value rate: the model has no input 'rate'"),
        (InputOverrides(shapes={"state": (2, 1)}), "does not fit the model's input state [2, batch, 128] float32"),
        (InputOverrides(shapes={"state": (3, 1, 128)}), "--shape state=3,1,128 does not fit"),
    ],
)
def test_overrides_that_do_not_fit_are_refused(overrides, message):
    with pytest.raises(InputError, match=message.replace("[", r"\[")):
        synthesize(SPECS, 1, 8, overrides=overrides)


def test_bench_names_the_inputs_a_model_rejects_and_takes_them_stated(run_cli, tmp_path):
    model = picky_onnx(tmp_path / "picky.onnx")
    res = run_cli("bench", str(model), "--runs", "2", "--warmup", "0", "-q")
    assert res.exit_code == 2
    err = res.stderr.strip().splitlines()[-1]
    assert "rejected inputs synthesized from the model's specs (fed x [1, 3, 128, 128] float32, sr [] int64)" in err
    assert "--shape NAME=" in err and "--value NAME=" in err and "--inputs FILE.npz" in err
    half = run_cli("bench", str(model), "--shape", "x=1,3,48,8", "--runs", "2", "--warmup", "0", "-q")
    assert half.exit_code == 2 and "sr [] int64" in half.stderr  # the height is right now, the rate is not
    out = tmp_path / "r.json"
    ok = run_cli(
        "bench", str(model), "--shape", "x=1,3,48,8", "--value", "sr=16000", "--runs", "2", "-o", str(out), "-q"
    )
    assert ok.exit_code == 0, ok.stderr
    report = json.loads(out.read_text())
    assert report["results"][0]["input_shapes"] == {"x": [1, 3, 48, 8], "sr": []}
    assert report["settings"]["input_overrides"] == {"shapes": {"x": [1, 3, 48, 8]}, "values": {"sr": 16000.0}}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--shape", "x"), "expected NAME=D0,D1,..."),
        (("--shape", "x=1,0"), "is not whole numbers >= 1"),
        (("--value", "sr=fast"), "NUMBER is not a number"),
        (("--shape", "y=1"), "--shape y: the model has no input 'y'; its inputs: x [N, 3, h, w] float32, sr [] int64"),
    ],
)
def test_bad_overrides_exit_2_with_one_line(run_cli, tmp_path, args, message):
    model = picky_onnx(tmp_path / "picky.onnx")
    res = run_cli("bench", str(model), *args, "--runs", "1", "-q")
    assert res.exit_code == 2 and message in res.stderr, res.stderr


def test_overrides_do_not_mix_with_given_inputs(run_cli, tmp_path):
    model = picky_onnx(tmp_path / "picky.onnx")
    np.savez(tmp_path / "in.npz", x=np.ones((1, 3, 48, 8), np.float32), sr=np.array(16000))
    res = run_cli("bench", str(model), "--inputs", str(tmp_path / "in.npz"), "--shape", "x=1,3,48,8", "-q")
    assert res.exit_code == 2 and "not with --inputs" in res.stderr
    ok = run_cli("bench", str(model), "--inputs", str(tmp_path / "in.npz"), "--runs", "2", "-q")
    assert ok.exit_code == 0, ok.stderr  # a scalar in an .npz stays a scalar


@pytest.mark.parametrize("legacy", [True, False])
def test_a_tflite_file_without_signatures_runs_on_its_graph_tensors(tmp_path, legacy):
    from ai_edge_litert.interpreter import Interpreter

    from edgekit.plugins import get_runtime

    model = legacy_fc_tflite(tmp_path / "fc.tflite", legacy_opcodes=legacy)
    session = get_runtime("litert").load(model, threads=1)
    assert [(s.name, s.dtype, s.shape) for s in session.inputs] == [("input", "float32", (1, 64))]
    assert session.details()["signatures"] == ["graph"]
    x = np.random.default_rng(3).standard_normal((1, 64)).astype(np.float32)
    got = session.run({"input": x})["output"]
    interp = Interpreter(model_path=str(model))  # the interpreter by hand: the same numbers
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    np.testing.assert_array_equal(got, interp.get_tensor(interp.get_output_details()[0]["index"]))
    assert got.shape == (1, 16) and (got >= 0).all() and (got > 0).any()  # the fused ReLU ran


def test_bench_runs_a_tflite_file_without_signatures(run_cli, tmp_path):
    model = legacy_fc_tflite(tmp_path / "fc.tflite")
    out = tmp_path / "r.json"
    res = run_cli("bench", str(model), "--runs", "3", "--warmup", "1", "-o", str(out), "-q")
    assert res.exit_code == 0, res.stderr
    row = json.loads(out.read_text())["results"][0]
    assert row["runtime"] == "litert" and row["precision"] == "fp32" and row["input_shapes"] == {"input": [1, 64]}
