"""What commands print: --json documents on stdout, `-o -`, --quiet/--verbose, colour, bench row names."""

import io
import json
import shutil

import pytest

from tests.cli.test_cli import _fast_recipe_file, _one_line_error
from tests.conftest import read_json

FAST = ["--runs", "3", "--warmup", "1", "-s", "16", "-t", "1"]


def test_recipes_json(run_cli):
    res = run_cli("recipes", "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.output)
    by_name = {r["name"]: r for r in doc["recipes"]}
    assert {"ptq-dynamic", "ptq-static"} <= set(by_name)
    assert by_name["ptq-dynamic"]["description"] and "quantize" in by_name["ptq-dynamic"]["stages"]
    assert res.stderr == ""


def test_runtimes_json(run_cli):
    res = run_cli("runtimes", "--json")
    assert res.exit_code == 0, res.stderr
    rows = {r["name"]: r for r in json.loads(res.output)["runtimes"]}
    assert rows["onnxruntime"]["available"] is True and rows["onnxruntime"]["missing"] == []
    assert rows["onnxruntime"]["formats"] == ["onnx"]
    assert {"torch", "litert"} <= set(rows)


def test_bench_json_is_the_report_and_progress_stays_on_stderr(run_cli, tiny_compressed):
    models = [str(tiny_compressed / n / "model.onnx") for n in ("onnx-fp32", "onnx-int8-dynamic")]
    res = run_cli("bench", *models, *FAST, "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.output)  # nothing but the report on stdout (no table, no progress)
    assert doc["kind"] == "bench" and doc["generator"] == "edgekit"
    rows = {r["name"]: r for r in doc["results"]}
    # two files both called model.onnx: each row is named after its directory, and the int8 one says int8
    assert set(rows) == {"onnx-fp32", "onnx-int8-dynamic"}
    assert rows["onnx-int8-dynamic"]["precision"] == "int8" and rows["onnx-fp32"]["precision"] == "fp32"
    assert "timing 2 model(s)" in res.stderr  # the timing bar, on stderr


def test_bench_output_dash_is_stdout(run_cli, tiny_compressed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = str(tiny_compressed / "onnx-fp32" / "model.onnx")
    res = run_cli("bench", model, *FAST, "-o", "-", "-q")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.output)["results"][0]["name"] == "onnx-fp32"
    assert not (tmp_path / "-").exists() and res.stderr == ""
    # --json beside -o FILE: the file is written and the document printed; the note goes to stderr
    res = run_cli("bench", model, *FAST, "-o", "r.json", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.output)["results"] == read_json(tmp_path / "r.json")["results"]
    assert "wrote r.json" in res.stderr


def test_bench_names_are_unique(run_cli, tiny_compressed, tmp_path):
    """The same directory name in two runs, and the same file twice."""
    for run in ("run1", "run2"):
        shutil.copytree(tiny_compressed / "onnx-fp32", tmp_path / run / "onnx-fp32")
    models = [str(tmp_path / run / "onnx-fp32" / "model.onnx") for run in ("run1", "run2")]
    res = run_cli("bench", *models, models[0], *FAST, "--json", "-q")
    assert res.exit_code == 0, res.stderr
    names = [r["name"] for r in json.loads(res.output)["results"]]
    assert names == ["run1/onnx-fp32", "run2/onnx-fp32", "run1/onnx-fp32 #2"]


def test_display_names():
    from pathlib import Path

    from edgekit.measure.model_files import display_names

    assert display_names([(Path("a/model.onnx"), None), (Path("b/model.onnx"), None)]) == ["a", "b"]
    assert display_names([(Path("x/m.onnx"), None), (Path("x/m.tflite"), None)]) == ["m.onnx", "m.tflite"]
    assert display_names([(Path("x/model.onnx"), None), (Path("x/model.tflite"), None)]) == [
        "model.onnx",
        "model.tflite",
    ]
    assert display_names([(Path("d/bert.onnx"), None)]) == ["bert"]
    art = [(Path("r1/int8/model.onnx"), Path("r1/int8")), (Path("r2/int8/model.onnx"), Path("r2/int8"))]
    assert display_names(art) == ["r1/int8", "r2/int8"]


def test_compress_json(run_cli, tiny_ckpt, tmp_path):
    out = tmp_path / "out"
    res = run_cli("compress", str(tiny_ckpt), "-r", str(_fast_recipe_file(tmp_path)), "-o", str(out), "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.output)
    assert doc == read_json(out / "report.json")
    assert "wrote 3 artifacts" in res.stderr  # the note, beside the document


def test_directory_outputs_refuse_dash(run_cli, tiny_ckpt, tiny_compressed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = run_cli("compress", str(tiny_ckpt), "-o", "-", "-q")
    assert res.exit_code == 2 and "stdout cannot hold" in res.stderr
    res = run_cli("bundle", str(tiny_compressed), "-o", "-")
    assert res.exit_code == 2 and "stdout cannot hold" in res.stderr
    assert not (tmp_path / "-").exists()


def test_diff_json_dash(run_cli, tiny_compressed):
    ref, cand = (str(tiny_compressed / n) for n in ("onnx-fp32", "onnx-int8-dynamic"))
    res = run_cli("diff", ref, cand, "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.output)["layers"]


def test_quiet_and_verbose(run_cli, tiny_compressed):
    model = str(tiny_compressed / "onnx-fp32" / "model.onnx")
    res = run_cli("bench", model, *FAST, "-q", "-v")
    assert res.exit_code == 2 and "--quiet and --verbose" in res.stderr
    res = run_cli("bench", model, *FAST, "-q")
    assert res.exit_code == 0 and res.stderr == "" and "p50 ms" in res.output


@pytest.mark.parametrize(
    "cmd", ["compress", "bench", "bundle", "run", "serve", "diff", "finetune", "recipes", "runtimes", "report"]
)
def test_every_command_takes_quiet_and_verbose(run_cli, cmd):
    res = run_cli(cmd, "--help")
    assert res.exit_code == 0
    assert "--quiet" in res.output and "--verbose" in res.output


def test_top_level_help_explains_the_conventions(run_cli):
    res = run_cli("--help")
    assert "--json" in res.output and "NO_COLOR" in res.output and "`-o -`" in res.output


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_colour_only_on_a_terminal_without_no_color(monkeypatch):
    from edgekit.cli.common import use_colour

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert use_colour(_Tty()) is True
    assert use_colour(io.StringIO()) is False  # a pipe or a file
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_colour(_Tty()) is False
    monkeypatch.setenv("NO_COLOR", "")  # set but empty: no effect (no-color.org)
    assert use_colour(_Tty()) is True


def test_errors_have_no_colour_off_a_terminal(run_cli, tmp_path):
    _one_line_error(run_cli("bench", str(tmp_path / "missing.onnx")), 2, "model file not found")


def test_report_json_and_markdown_to_stdout(run_cli, tiny_compressed):
    report = str(tiny_compressed / "report.json")
    res = run_cli("report", report, "--baseline", report, "--max-size-growth", "1", "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.output)  # strict JSON: a value a report lacks is null, never NaN
    assert doc["passed"] is True and doc["reports"] == [report] and len(doc["checks"]) >= 3
    assert all(c["passed"] for c in doc["checks"]) and {c["gate"] for c in doc["checks"]} >= {"artifact", "size"}
    res = run_cli("report", report, "--markdown", "-")
    assert res.exit_code == 0 and "onnx-int8-dynamic" in res.output and "|" in res.output
    res = run_cli("report", report, "--markdown", "-", "--json")
    assert res.exit_code == 2 and "stdout" in res.stderr
