"""Reliability catalogue, area "outputs": edgekit never deletes or replaces what it did not make.

Every command that writes (compress, bench -o, report --markdown/--html/--junit, diff --json, bundle,
finetune) meets a path that already holds something: the user's directory, the user's file, an earlier
edgekit output (without and with --overwrite), a directory where a file goes. A compress re-run that
fails, is cancelled (SIGTERM) or killed (SIGKILL) leaves the earlier output exactly as it was; a full
disk is a one-line exit 2 with nothing half-written.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from edgekit.output import MARKER
from tests.helpers import FAST_BENCH
from tests.reliability.harness import Case, Result, check, listing, run_cli, snapshot

AREA = "outputs"
FAST = {
    "version": 1,
    "name": "fast",
    "stages": [
        {"kind": "export"},
        {"kind": "quantize", "method": "dynamic"},
        {**FAST_BENCH, "runs": 2, "warmup": 0, "fidelity_samples": 8, "seq_len": 16},
    ],
}
# the quantized model can never match fp32 exactly: this stage fails (exit 3) after the export succeeded
STRICT = {
    **FAST,
    "name": "strict",
    "stages": [FAST["stages"][0], {**FAST["stages"][1], "min_cosine": 1.0}, FAST["stages"][2]],
}
BENCH = ("--runs", "2", "--warmup", "0", "-s", "16", "-q")


def _case(name: str, code: int, kept: dict | None = None, *watched: Path, allow: tuple[str, ...] = ()) -> Case:
    """A case whose watched directories may afterwards hold only what they hold now, plus ``allow``."""
    return Case(
        name=name, area=AREA, expect_code=code, kept=kept or {}, watch={d: listing(d) | set(allow) for d in watched}
    )


def _user_dir(d: Path) -> Path:
    (d / "sub").mkdir(parents=True)
    (d / "mine.txt").write_text("the user's notes\n")
    (d / "sub" / "data.bin").write_bytes(os.urandom(64))
    return d


def _user_file(f: Path, text: str = "the user's file\n") -> Path:
    f.write_text(text)
    return f


@pytest.fixture(scope="module")
def recipes(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("recipes")
    for name, data in (("fast", FAST), ("strict", STRICT)):
        (d / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return {"fast": d / "fast.yaml", "strict": d / "strict.yaml"}


@pytest.fixture(scope="module")
def template(tiny_ckpt, recipes, tmp_path_factory) -> Path:
    """A real earlier compress output (made in-process; each case works on a copy)."""
    from edgekit.pipeline.run import compress
    from edgekit.recipe.config import load_recipe

    out = tmp_path_factory.mktemp("template") / "out"
    compress(tiny_ckpt, load_recipe(str(recipes["fast"])), out, progress=False)
    return out


@pytest.fixture
def previous(template, tmp_path) -> Path:
    """A copy of the earlier edgekit output, at ``tmp_path/out``."""
    out = tmp_path / "out"
    shutil.copytree(template, out)
    return out


def _compress(ckpt: Path, recipe: Path, out: Path, *extra: str) -> Result:
    return run_cli("compress", ckpt, "-r", recipe, "-o", out, "-q", *extra)


def _stagings(d: Path) -> list[Path]:
    return [p for p in d.iterdir() if ".edgekit-" in p.name]


def _start_and_wait_for_staging(args: list[str], parent: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("EDGEKIT_DEBUG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekit", *map(str, args)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not any((p / "tree").is_dir() for p in _stagings(parent)):
        assert proc.poll() is None, f"finished before it staged anything: {proc.communicate()}"
        assert time.monotonic() < deadline, "no staging directory appeared"
        time.sleep(0.02)
    return proc


def _result(proc: subprocess.Popen, args: list[str]) -> Result:
    out, err = proc.communicate(timeout=120)
    return Result(list(map(str, args)), proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


# --- compress ---------------------------------------------------------------------------------------------------


def test_compress_refuses_a_user_directory(tiny_ckpt, recipes, tmp_path):
    out = _user_dir(tmp_path / "out")
    case = _case("compress into a directory of the user's", 2, snapshot(out), tmp_path)
    res = _compress(tiny_ckpt, recipes["fast"], out)
    check(case, res)
    assert "edgekit did not write" in res.stderr and str(out) in res.stderr


def test_compress_refuses_a_user_file(tiny_ckpt, recipes, tmp_path):
    out = _user_file(tmp_path / "out")
    case = _case("compress onto a file of the user's", 2, snapshot(out), tmp_path)
    res = _compress(tiny_ckpt, recipes["fast"], out, "--overwrite")
    check(case, res)
    assert "not a directory" in res.stderr


def test_compress_earlier_output_needs_overwrite(tiny_ckpt, recipes, previous, tmp_path):
    case = _case("compress over an earlier output without --overwrite", 2, snapshot(previous), tmp_path)
    res = _compress(tiny_ckpt, recipes["fast"], previous)
    check(case, res)
    assert "--overwrite" in res.stderr


def test_compress_overwrite_replaces_only_edgekit_files(tiny_ckpt, recipes, previous, tmp_path):
    notes = _user_file(previous / "notes.txt")
    beside = _user_file(previous / "onnx-fp32" / "my-notes.txt")  # inside an artifact directory
    old_report = (previous / "report.json").read_bytes()
    case = _case("compress --overwrite keeps the user's files", 0, snapshot(notes, beside), tmp_path)
    check(case, _compress(tiny_ckpt, recipes["fast"], previous, "--overwrite"))
    assert (previous / "report.json").read_bytes() != old_report  # the run's own files were replaced
    listed = json.loads((previous / MARKER).read_text())["files"]
    assert "report.json" in listed and "notes.txt" not in listed and "onnx-fp32/my-notes.txt" not in listed


def test_compress_overwrite_refuses_a_file_the_user_edited(tiny_ckpt, recipes, previous, tmp_path):
    (previous / "report.md").write_text("# my edits to the report\n")
    case = _case("compress --overwrite over a report the user edited", 2, snapshot(previous), tmp_path)
    res = _compress(tiny_ckpt, recipes["fast"], previous, "--overwrite")
    check(case, res)
    assert "report.md" in res.stderr and "changed" in res.stderr


def test_compress_refuses_a_marker_pointing_outside(tiny_ckpt, recipes, tmp_path):
    """A planted marker listing ../victim.txt (with its right sha256) must not make edgekit move it."""
    import hashlib

    victim = _user_file(tmp_path / "victim.txt")
    out = tmp_path / "out"
    out.mkdir()
    (out / MARKER).write_text(
        json.dumps(
            {
                "tool": "edgekit",
                "kind": "compress",
                "files": {"../victim.txt": hashlib.sha256(victim.read_bytes()).hexdigest()},
            }
        )
    )
    case = _case("compress --overwrite with a marker listing a path outside", 2, snapshot(victim, out), tmp_path)
    res = _compress(tiny_ckpt, recipes["fast"], out, "--overwrite")
    check(case, res)
    assert "marker" in res.stderr


def test_compress_failed_rerun_leaves_the_earlier_output(tiny_ckpt, recipes, previous, tmp_path):
    case = _case("compress re-run failing at its second stage", 3, snapshot(previous), tmp_path)
    res = _compress(tiny_ckpt, recipes["strict"], previous, "--overwrite")
    check(case, res)
    assert "not promoted" in res.stderr


def test_compress_sigterm_leaves_the_earlier_output(tiny_ckpt, recipes, previous, tmp_path):
    args = ["compress", tiny_ckpt, "-r", recipes["fast"], "-o", previous, "-q", "--overwrite"]
    case = _case("compress re-run cancelled with SIGTERM", 143, snapshot(previous), tmp_path)
    proc = _start_and_wait_for_staging(args, tmp_path)
    proc.send_signal(signal.SIGTERM)
    res = _result(proc, args)
    check(case, res)
    assert "terminated" in res.stderr


def test_compress_sigterm_keeps_training_resumable(tiny_cls_ckpt, task_dir, tmp_path):
    """The resumable state of a training stage lives in the output and survives a cancelled run."""
    recipe = tmp_path / "distill.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "name": "distill",
                "stages": [
                    {
                        "kind": "distill",
                        "name": "student",
                        "data": str(task_dir),
                        "layers": 1,
                        "train": {"epochs": 2, "lr": 1e-3, "batch_size": 8, "max_len": 16, "save_every": 2},
                    },
                    {"kind": "export"},
                    FAST["stages"][-1],
                ],
            }
        )
    )
    out = tmp_path / "out"
    args = ["compress", tiny_cls_ckpt, "-r", recipe, "-o", out, "-q"]
    case = _case("compress with a training stage cancelled with SIGTERM", 143, {}, tmp_path, allow=("out",))
    proc = _start_and_wait_for_staging(args, tmp_path)
    deadline = time.monotonic() + 120
    while not list(out.glob(".train-student/resume*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    check(case, _result(proc, args))
    assert sorted(p.name for p in out.iterdir()) == [MARKER, ".train-student"]  # the state to resume, nothing else
    case = _case("compress --resume after a cancelled training run", 0, {}, tmp_path)
    check(case, _compress(tiny_cls_ckpt, recipe, out, "--resume"))
    assert (out / "student" / "manifest.json").is_file() and not list(out.glob(".train-*"))


def test_compress_after_kill_removes_stale_staging(tiny_ckpt, recipes, previous, tmp_path):
    notes = _user_file(previous / "notes.txt")
    before = snapshot(previous)
    args = ["compress", tiny_ckpt, "-r", recipes["fast"], "-o", previous, "-q", "--overwrite"]
    proc = _start_and_wait_for_staging(args, tmp_path)
    proc.kill()
    proc.wait()
    assert _stagings(tmp_path) and snapshot(previous) == before  # killed: staging left, output as it was
    case = _case("compress after a SIGKILLed run (stale staging)", 0, snapshot(notes), tmp_path)
    res = _compress(tiny_ckpt, recipes["fast"], previous, "--overwrite")
    check(case, res)
    assert "removed 1 staging" in res.stderr


def test_compress_disk_full(tiny_ckpt, recipes, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(disk)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        case = _case("compress onto a full disk (192 KiB tmpfs)", 2, {}, disk, tmp_path)
        res = _compress(tiny_ckpt, recipes["fast"], disk / "out")
        check(case, res)
        assert "no space left on device" in res.stderr and not any(disk.iterdir())
    finally:
        subprocess.run(["umount", str(disk)], check=True)


# --- bench -o ----------------------------------------------------------------------------------------------------


def test_bench_output_rules(template, tmp_path):
    model = template / "onnx-int8-dynamic" / "model.onnx"
    user = _user_file(tmp_path / "user.json", '{"mine": true}\n')
    check(
        _case("bench -o onto a JSON file of the user's", 2, snapshot(user), tmp_path),
        run_cli("bench", model, *BENCH, "-o", user, "--overwrite"),
    )
    folder = _user_dir(tmp_path / "folder")
    check(
        _case("bench -o onto a directory", 2, snapshot(folder), tmp_path),
        run_cli("bench", model, *BENCH, "-o", folder, "--overwrite"),
    )
    link = tmp_path / "link.json"
    link.symlink_to(user)
    check(
        _case("bench -o onto a link to the user's file", 2, snapshot(user), tmp_path),
        run_cli("bench", model, *BENCH, "-o", link, "--overwrite"),
    )
    out = tmp_path / "bench.json"
    check(
        _case("bench -o a new file", 0, {}, tmp_path, allow=("bench.json",)), run_cli("bench", model, *BENCH, "-o", out)
    )
    first = json.loads(out.read_text())
    assert first["generator"] == "edgekit" and first["results"][0]["latency_ms"]["p50"] > 0
    check(
        _case("bench -o over its earlier report without --overwrite", 2, snapshot(out), tmp_path),
        run_cli("bench", model, *BENCH, "-o", out),
    )
    check(
        _case("bench -o --overwrite over its earlier report", 0, {}, tmp_path),
        run_cli("bench", model, *BENCH, "-o", out, "--overwrite"),
    )
    assert json.loads(out.read_text())["created"] >= first["created"]


# --- report --markdown / --html / --junit -------------------------------------------------------------------------


def test_report_output_rules(template, tmp_path):
    rep = template / "report.json"
    md = _user_file(tmp_path / "notes.md", "# my notes\n")
    check(
        _case("report --markdown onto the user's Markdown", 2, snapshot(md), tmp_path),
        run_cli("report", rep, "--markdown", md, "--overwrite"),
    )
    folder = _user_dir(tmp_path / "site")
    check(
        _case("report --html onto a directory", 2, snapshot(folder), tmp_path),
        run_cli("report", rep, "--html", folder, "--overwrite"),
    )
    xml = _user_file(tmp_path / "junit.xml", "<testsuite name='mine'/>\n")
    check(
        _case("report --junit onto the user's XML", 2, snapshot(xml), tmp_path),
        run_cli("report", rep, "--baseline", rep, "--junit", xml, "--overwrite"),
    )
    # one refused output: none is written, not even the ones that were free
    check(
        _case("report --markdown free --html user's: nothing written", 2, snapshot(md), tmp_path),
        run_cli("report", rep, "--markdown", tmp_path / "free.md", "--html", md),
    )
    out = tmp_path / "r.html"
    check(_case("report --html a new file", 0, {}, tmp_path, allow=("r.html",)), run_cli("report", rep, "--html", out))
    assert out.read_text().rstrip().endswith("<!-- generated by edgekit -->")
    check(
        _case("report --html over its earlier page without --overwrite", 2, snapshot(out), tmp_path),
        run_cli("report", rep, "--html", out),
    )
    check(
        _case("report --html --overwrite over its earlier page", 0, {}, tmp_path),
        run_cli("report", rep, "--html", out, "--overwrite"),
    )


def _run_limited(args: list, fsize: int) -> Result:
    """``edgekit ARGS`` with a file-size limit: a larger write fails with EFBIG (SIGXFSZ ignored)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("EDGEKIT_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit", *map(str, args)],
        preexec_fn=limit,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    return Result(list(map(str, args)), proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def test_report_disk_full(template, tmp_path):
    rep = template / "report.json"
    case = _case("report --markdown past a 256-byte file-size limit", 2, {}, tmp_path)
    res = _run_limited(["report", rep, "--markdown", tmp_path / "r.md"], fsize=256)
    check(case, res)
    assert "no space left on device" in res.stderr and "r.md" in res.stderr
    case = _case("report --html /dev/full (ENOSPC)", 2, {}, tmp_path)
    res = run_cli("report", rep, "--html", "/dev/full")
    check(case, res)
    assert "no space left on device" in res.stderr


# --- diff --json -------------------------------------------------------------------------------------------------


def test_diff_json_output_rules(template, tmp_path):
    a, b = template / "onnx-fp32", template / "onnx-int8-dynamic"
    user = _user_file(tmp_path / "layers.json", '{"mine": true}\n')
    case = _case("diff --json onto the user's JSON", 2, snapshot(user), tmp_path)
    res = run_cli("diff", a, b, "--json", user, "--overwrite")
    check(case, res)
    assert "edgekit did not write" in res.stderr
    folder = _user_dir(tmp_path / "folder")
    check(_case("diff --json onto a directory", 2, snapshot(folder), tmp_path), run_cli("diff", a, b, "--json", folder))


# --- bundle ------------------------------------------------------------------------------------------------------


def test_bundle_refuses_its_own_run(previous, tmp_path):
    case = _case("bundle RUN -o RUN", 2, snapshot(previous), tmp_path)
    res = run_cli("bundle", previous, "-o", previous)
    check(case, res)
    assert "inside" in res.stderr
    check(
        _case("bundle RUN -o RUN/inner", 2, snapshot(previous), tmp_path),
        run_cli("bundle", previous, "-o", previous / "inner", "--overwrite"),
    )


def test_bundle_output_rules(previous, tmp_path):
    user = _user_dir(tmp_path / "user")
    check(
        _case("bundle into a directory of the user's", 2, snapshot(user), tmp_path),
        run_cli("bundle", previous, "-o", user, "--overwrite"),
    )
    archive = _user_file(tmp_path / "b.tar.gz")
    check(
        _case("bundle --archive onto the user's .tar.gz", 2, snapshot(archive), tmp_path),
        run_cli("bundle", previous, "-o", tmp_path / "b", "--archive", "--overwrite"),
    )
    archive.unlink()
    out = tmp_path / "b"
    check(
        _case("bundle a new directory and archive", 0, {}, tmp_path, allow=("b", "b.tar.gz")),
        run_cli("bundle", previous, "-o", out, "--archive"),
    )
    check(
        _case("bundle over its earlier bundle without --overwrite", 2, snapshot(out, tmp_path / "b.tar.gz"), tmp_path),
        run_cli("bundle", previous, "-o", out, "--archive"),
    )
    # a bundle is refused when it holds files it does not list: the user's file is kept, and named
    mine = _user_file(out / "DEPLOY-NOTES.txt")
    case = _case("bundle --overwrite with the user's file inside the bundle", 2, snapshot(out), tmp_path)
    res = run_cli("bundle", previous, "-o", out, "--archive", "--overwrite")
    check(case, res)
    assert "DEPLOY-NOTES.txt" in res.stderr
    mine.unlink()
    hidden = _user_file(out / ".deploy-notes")  # hidden files are no part of a bundle
    check(
        _case("bundle --overwrite keeps the user's hidden file in the bundle", 0, snapshot(hidden), tmp_path),
        run_cli("bundle", previous, "-o", out, "--archive", "--overwrite"),
    )
    from edgekit.device.bundle import open_bundle
    from edgekit.output import is_edgekit_file

    assert open_bundle(out).variants and is_edgekit_file(tmp_path / "b.tar.gz")


# --- finetune ----------------------------------------------------------------------------------------------------


def test_finetune_output_rules(tiny_ckpt, task_dir, tmp_path):
    args = ("finetune", tiny_ckpt, "--data", task_dir, "--epochs", "0.1", "--batch-size", "16", "--max-len", "16", "-q")
    user = _user_dir(tmp_path / "teacher")
    case = _case("finetune into a directory of the user's", 2, snapshot(user), tmp_path)
    res = run_cli(*args, "-o", user, "--overwrite")
    check(case, res)
    assert "edgekit did not write" in res.stderr
    f = _user_file(tmp_path / "teacher.txt")
    check(_case("finetune onto a file of the user's", 2, snapshot(f), tmp_path), run_cli(*args, "-o", f))
    from edgekit.data.datasets import load_dataset
    from edgekit.training.finetune import finetune_classifier
    from edgekit.training.loop import TrainSettings

    made = tmp_path / "made"  # an earlier edgekit checkpoint
    finetune_classifier(
        tiny_ckpt,
        load_dataset(str(task_dir)),
        made,
        progress=False,
        settings=TrainSettings(epochs=0.1, batch_size=16, lr=5e-5, max_len=16),
    )
    again = (*args, "-o", made, "--seed", "1")  # other settings: not the cached checkpoint
    case = _case("finetune over its earlier checkpoint without --overwrite", 2, snapshot(made), tmp_path)
    res = run_cli(*again)
    check(case, res)
    assert "--overwrite" in res.stderr
    mine = _user_file(made / "MODEL-CARD.md")
    weights = (made / "model.safetensors").read_bytes()
    check(
        _case("finetune --overwrite keeps the user's file", 0, snapshot(mine), tmp_path), run_cli(*again, "--overwrite")
    )
    assert (made / "model.safetensors").read_bytes() != weights
    assert json.loads((made / "edgekit_training.json").read_text())["key"]["settings"]["seed"] == 1
