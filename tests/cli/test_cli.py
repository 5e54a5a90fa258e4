"""The command line: help, happy paths and one-line errors with the right exit code."""

import json

import onnx
import pytest

from tests.conftest import read_json
from tests.helpers import FAST_BENCH

SUBCOMMANDS = ["compress", "bench", "recipes", "runtimes"]


def _fast_recipe_file(tmp_path, name="ptq-dynamic"):
    from tests.helpers import fast_recipe

    f = tmp_path / "fast.yaml"
    f.write_text(fast_recipe(name).to_yaml())
    return f


def _one_line_error(res, code, *fragments):
    assert res.exit_code == code, (res.exit_code, res.output, res.stderr)
    # a progress bar cleared with carriage returns leaves nothing a terminal shows
    lines = [line.split("\r")[-1] for line in res.stderr.split("\n")]
    lines = [line for line in lines if line.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("edgekit: error: ")
    for frag in fragments:
        assert frag in lines[0], lines[0]


def test_top_level_help(run_cli):
    res = run_cli("--help")
    assert res.exit_code == 0
    for cmd in SUBCOMMANDS:
        assert cmd in res.output
    assert "Exit codes" in res.output


@pytest.mark.parametrize("cmd", SUBCOMMANDS)
def test_subcommand_help(run_cli, cmd):
    res = run_cli(cmd, "--help")
    assert res.exit_code == 0
    assert f"Usage: edgekit {cmd}" in res.output
    assert len(res.output.splitlines()) > 3


def test_version(run_cli):
    res = run_cli("--version")
    assert res.exit_code == 0 and "0.1.0" in res.output


def test_recipes_and_runtimes(run_cli):
    res = run_cli("recipes")
    assert res.exit_code == 0
    assert "ptq-dynamic" in res.output and "ptq-static" in res.output
    res = run_cli("runtimes")
    assert res.exit_code == 0
    assert "onnxruntime" in res.output and "torch" in res.output and "available" in res.output


def test_compress_happy_path(run_cli, tiny_ckpt, tmp_path):
    out = tmp_path / "out"
    res = run_cli("compress", str(tiny_ckpt), "--recipe", str(_fast_recipe_file(tmp_path)), "-o", str(out), "-q")
    assert res.exit_code == 0, res.stderr
    assert "onnx-int8-dynamic" in res.output and "p50 ms" in res.output
    assert read_json(out / "report.json")["results"]


def test_usage_error_is_exit_2(run_cli):
    res = run_cli("compress")
    assert res.exit_code == 2
    res = run_cli("frobnicate")
    assert res.exit_code == 2


# --- bad input: one line naming the problem, exit 2, nothing left behind ------------------


def test_missing_checkpoint_dir(run_cli, tmp_path):
    out = tmp_path / "out"
    res = run_cli("compress", str(tmp_path / "nope"), "-o", str(out))
    _one_line_error(res, 2, "checkpoint not found", "nope")
    assert not out.exists()


def test_config_without_weights(run_cli, tiny_ckpt, copy_ckpt, tmp_path):
    d = copy_ckpt(tiny_ckpt)
    (d / "model.safetensors").unlink()
    out = tmp_path / "out"
    _one_line_error(run_cli("compress", str(d), "-o", str(out)), 2, "no weights")
    assert not out.exists()


def test_truncated_safetensors(run_cli, tiny_ckpt, copy_ckpt, tmp_path):
    d = copy_ckpt(tiny_ckpt)
    w = d / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    out = tmp_path / "out"
    _one_line_error(run_cli("compress", str(d), "-o", str(out)), 2, "truncated safetensors", "model.safetensors")
    assert not out.exists()


def test_unknown_recipe_key(run_cli, tiny_ckpt, tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("name: x\nstages:\n  - kind: export\n    opsett: 17\n")
    out = tmp_path / "out"
    _one_line_error(run_cli("compress", str(tiny_ckpt), "-r", str(f), "-o", str(out)), 2, "opsett", "unknown key")
    assert not out.exists()


def test_unknown_recipe_name(run_cli, tiny_ckpt, tmp_path):
    _one_line_error(
        run_cli("compress", str(tiny_ckpt), "-r", "ptq-magic", "-o", str(tmp_path / "o")),
        2,
        "unknown recipe 'ptq-magic'",
    )


def test_empty_calibration_file(run_cli, tiny_ckpt, tmp_path):
    (tmp_path / "cal.txt").write_text("\n\n")
    out = tmp_path / "out"
    res = run_cli(
        "compress", str(tiny_ckpt), "-r", "ptq-static", "-o", str(out), "--calibration", str(tmp_path / "cal.txt")
    )
    _one_line_error(res, 2, "cal.txt", "no text samples")
    assert not out.exists()


def test_unwritable_output_directory(run_cli, tiny_ckpt, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    res = run_cli("compress", str(tiny_ckpt), "-r", str(_fast_recipe_file(tmp_path)), "-o", str(blocker / "out"))
    _one_line_error(res, 2, "cannot write output directory")
    res = run_cli("compress", str(tiny_ckpt), "-r", str(_fast_recipe_file(tmp_path)), "-o", str(blocker))
    _one_line_error(res, 2, "exists and is not a directory")
    assert blocker.read_text() == "x"


def test_bench_file_that_is_not_onnx(run_cli, tmp_path):
    f = tmp_path / "model.onnx"
    f.write_bytes(b"this is not a protobuf \x00\xff" * 10)
    _one_line_error(run_cli("bench", str(f)), 2, "not a valid ONNX model")
    _one_line_error(run_cli("bench", str(tmp_path / "missing.onnx")), 2, "model file not found")
    (tmp_path / "m.pt").write_bytes(b"x")
    _one_line_error(run_cli("bench", str(tmp_path / "m.pt")), 2, "unknown model format")


def test_parity_failure_is_exit_3(run_cli, tiny_ckpt, tmp_path):
    f = tmp_path / "strict.yaml"
    f.write_text(
        "name: strict\nstages:\n  - kind: export\n  - kind: quantize\n    method: dynamic\n    min_cosine: 1.0\n"
    )
    res = run_cli("compress", str(tiny_ckpt), "-r", str(f), "-o", str(tmp_path / "o"), "-q")
    _one_line_error(res, 3, "not promoted")
    assert not (tmp_path / "o").exists()  # a run is all or nothing: the export made before the failure is not kept


# --- bench on foreign ONNX files --------------------------------------------------------


def test_bench_synthesizes_inputs(run_cli, tiny_compressed, tmp_path):
    model = tiny_compressed / "onnx-int8-dynamic" / "model.onnx"
    out = tmp_path / "bench.json"
    res = run_cli("bench", str(model), "--runs", "5", "--warmup", "1", "-s", "16", "-b", "2", "-o", str(out), "-q")
    assert res.exit_code == 0, res.stderr
    report = read_json(out)
    assert report["kind"] == "bench" and report["settings"]["inputs"] == "synthesized from input specs"
    row = report["results"][0]
    assert row["input_shapes"]["input_ids"] == [2, 16]
    assert row["latency_ms"]["p50"] > 0


def test_bench_with_tokenizer(run_cli, tiny_ckpt, tiny_compressed, tmp_path):
    model = tiny_compressed / "onnx-fp32" / "model.onnx"
    res = run_cli("bench", str(model), "--tokenizer", str(tiny_ckpt), "--runs", "3", "-s", "24", "-q")
    assert res.exit_code == 0, res.stderr
    assert "model" in res.output


def test_bench_foreign_model_with_float_and_fixed_inputs(run_cli, tmp_path):
    """An ONNX model edgekit did not make: a float input with a fixed shape and a dynamic one."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n", 8])
    graph = helper.make_graph([helper.make_node("Add", ["x", "y"], ["z"])], "g", [x, y], [z])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    path = tmp_path / "add.onnx"
    onnx.save(model, str(path))
    res = run_cli("bench", str(path), "--runs", "3", "-b", "4", "-o", str(tmp_path / "r.json"), "-q")
    assert res.exit_code == 0, res.stderr
    assert read_json(tmp_path / "r.json")["results"][0]["input_shapes"] == {"x": [1, 8], "y": [4, 8]}


def test_bench_string_input_cannot_be_synthesized(run_cli, tmp_path):
    from onnx import TensorProto, helper

    s = helper.make_tensor_value_info("s", TensorProto.STRING, [1])
    o = helper.make_tensor_value_info("o", TensorProto.STRING, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["s"], ["o"])], "g", [s], [o])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    path = tmp_path / "str.onnx"
    onnx.save(model, str(path))
    _one_line_error(run_cli("bench", str(path), "--runs", "1", "-q"), 2, "cannot synthesize input 's'")


def test_fast_bench_constant_is_valid():
    from edgekit.recipe.config import BenchConfig

    assert BenchConfig(**FAST_BENCH).runs == FAST_BENCH["runs"]
    assert json.dumps(FAST_BENCH)
