"""Kill a distillation mid-run, resume it with --resume, and compare with an uninterrupted run.

    python benchmarks/resume_distill.py [--teacher DIR] [--output benchmarks/results/resume_distill.json]

Runs ``edgekit compress TEACHER -r RECIPE`` (default: the digits ViT with
``benchmarks/recipes/digits-distill-prune-int8.yaml``, distill stage only) as
a child process, SIGKILLs it once the distillation has written its first
resume checkpoint and gone on, runs the same command with ``--resume``, then
runs it again uninterrupted into another directory. The two students' weights
are compared tensor by tensor, and their validation accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def recipe_file(work: Path) -> Path:
    """The digits recipe's distill stage alone (saving every 20 steps), then a bench on the test split."""
    import yaml

    full = yaml.safe_load((HERE / "recipes" / "digits-distill-prune-int8.yaml").read_text())
    distill = dict(full["stages"][0])
    distill["train"] = {**distill["train"], "save_every": 20}
    recipe = {
        "version": 1,
        "name": "resume-check",
        "stages": [distill, {"kind": "bench", "eval": "digits", "fidelity_samples": 361, "runs": 5}],
    }
    path = work / "resume-check.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def run(cmd: list[str], kill_when=None) -> tuple[int, float]:
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while kill_when is not None and proc.poll() is None:
        if kill_when():
            time.sleep(1.0)  # a few more steps past the checkpoint, then the kill
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    return proc.wait(), time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teacher", type=Path, default=Path.home() / ".cache" / "edgekit" / "teachers" / "vit-tiny-digits")
    ap.add_argument("--work", type=Path, default=Path("resume-runs"))
    ap.add_argument("--output", type=Path, default=HERE / "results" / "resume_distill.json")
    args = ap.parse_args()
    import shutil

    import torch
    from safetensors.torch import load_file

    from edgekit.training.loop import RESUME_FILE, saved_step

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    recipe = recipe_file(args.work)
    base = [sys.executable, "-m", "edgekit", "compress", str(args.teacher), "-r", str(recipe), "-q"]
    interrupted, clean = args.work / "interrupted", args.work / "clean"
    checkpoint = interrupted / ".train-student" / RESUME_FILE  # training state lives in the output directory
    code_killed, t_killed = run([*base, "-o", str(interrupted)], kill_when=checkpoint.is_file)
    killed_at = saved_step(checkpoint)
    code_resumed, t_resumed = run([*base, "-o", str(interrupted), "--resume"])
    code_clean, t_clean = run([*base, "-o", str(clean)])
    a = load_file(str(interrupted / "student" / "model.safetensors"))
    b = load_file(str(clean / "student" / "model.safetensors"))
    max_diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    identical = all(torch.equal(a[k], b[k]) for k in a)
    acc = {}
    for name, d in (("resumed", interrupted), ("uninterrupted", clean)):
        rows = {r["name"]: r for r in json.loads((d / "report.json").read_text())["results"]}
        acc[name] = rows["student"]["fidelity"]["accuracy"]
    out = {
        "recipe": str(recipe),
        "killed": {"exit_code": code_killed, "after_s": round(t_killed, 1), "last_checkpoint_step": killed_at},
        "resumed": {"exit_code": code_resumed, "seconds": round(t_resumed, 1)},
        "uninterrupted": {"exit_code": code_clean, "seconds": round(t_clean, 1)},
        "weights_identical": identical,
        "max_abs_weight_diff": max_diff,
        "test_accuracy": acc,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0 if code_resumed == 0 and code_clean == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
