"""The image path end to end: a ViT trained on scikit-learn's digits, then distill -> prune -> int8.

    python benchmarks/digits_vit.py [--teacher DIR] [--output benchmarks/results/digits_vit.json]

1. ``edgekit finetune vit-tiny --data digits``: a 6-layer ViT (hidden 128, 4
   heads, 8x8 grey images in 2x2 patches) trained from scratch (cached).
2. The built-in ``distill-prune-int8`` recipe exactly as shipped, with
   ``--data digits``: the spam recipe, unchanged (its ``min_steps`` gives the
   1,257-image set more epochs than the 4,213-message one).
3. ``benchmarks/recipes/digits-distill-prune-int8.yaml``: the same stages,
   pruning ratios and int8 methods with a longer schedule for a from-scratch
   ViT (lr 1e-3, 20 + 10 epochs).

Each run times every artifact side by side (p50, batch 1, 2 threads) and
scores it on the 361 test images through its own runtime. Writes one JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edgekit.data.datasets import load_dataset
from edgekit.measure.environment import environment
from edgekit.pipeline.run import compress
from edgekit.recipe.config import load_recipe
from edgekit.training.finetune import VISION_SETTINGS, finetune_classifier

HERE = Path(__file__).parent


def summary(report: dict, seconds: float) -> dict:
    rows = {r["name"]: r for r in report["results"]}
    teacher = rows["pytorch-fp32"]
    out = {
        "seconds": round(seconds, 1),
        "teacher": {
            "p50_ms": teacher["latency_ms"]["p50"],
            "accuracy": teacher["fidelity"]["accuracy"],
            "size_bytes": teacher["size_bytes"],
        },
        "artifacts": {},
    }
    for name, r in rows.items():
        if r["is_reference"]:
            continue
        out["artifacts"][name] = {
            "p50_ms": r["latency_ms"]["p50"],
            "speedup_vs_teacher": r["speedup_vs_reference"],
            "accuracy": r["fidelity"].get("accuracy"),
            "accuracy_drop": r["fidelity"].get("accuracy_drop"),
            "size_bytes": r["size_bytes"],
            "size_vs_teacher": round(r["size_bytes"] / teacher["size_bytes"], 4),
            "runtime": r["runtime"],
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teacher", type=Path, default=Path.home() / ".cache" / "edgekit" / "teachers" / "vit-tiny-digits")
    ap.add_argument("--work", type=Path, default=Path("digits-vit-runs"))
    ap.add_argument("--output", type=Path, default=HERE / "results" / "digits_vit.json")
    args = ap.parse_args()
    data = load_dataset("digits")
    t = time.perf_counter()
    record = finetune_classifier("vit-tiny", data, args.teacher, settings=VISION_SETTINGS)
    teacher_s = time.perf_counter() - t
    result = {
        "environment": environment(2),
        "teacher": {
            "path": str(args.teacher),
            "test_accuracy": record["test_accuracy"],
            "val_accuracy": record["val_accuracy"],
            "cached": record["cached"],
            "seconds": round(teacher_s, 1),
        },
        "runs": {},
    }
    recipes = {
        "distill-prune-int8 (as shipped, --data digits)": load_recipe("distill-prune-int8").with_data("digits"),
        "digits-distill-prune-int8": load_recipe(str(HERE / "recipes" / "digits-distill-prune-int8.yaml")),
    }
    for label, recipe in recipes.items():
        out = args.work / recipe.name
        t = time.perf_counter()
        res = compress(args.teacher, recipe, out, progress=True, overwrite=True)  # its own work folder
        result["runs"][label] = {"output": str(out), **summary(res.report, time.perf_counter() - t)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"teacher: test accuracy {record['test_accuracy']:.2f}%")
    for label, run in result["runs"].items():
        print(
            f"\n{label} ({run['seconds']:.0f} s); teacher {run['teacher']['p50_ms']:.2f} ms, "
            f"{run['teacher']['accuracy']:.2f}%"
        )
        for name, a in run["artifacts"].items():
            print(
                f"  {name:<22} {a['p50_ms']:6.2f} ms  {a['speedup_vs_teacher']:6.2f}x  acc {a['accuracy']:6.2f}% "
                f"(drop {a['accuracy_drop']:+.2f})  {a['size_bytes'] / 1e6:5.2f} MB ({a['size_vs_teacher']:.1%})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
