"""Export coverage on random-weight twins of the encoder families: architecture x task x ONNX/TFLite.

    python benchmarks/architectures.py [--output FILE]

Each cell is a real run: a 2-layer, 32-wide seeded model of the family (edgekit.testing.ARCHITECTURES,
with the tiny WordPiece tokenizer) goes through ``compress`` with one export stage, whose parity check
against PyTorch (max abs diff <= 1e-4, cosine >= 0.99999) must pass; a pair edgekit refuses is reported
with its exit code and reason. Writes JSON (default benchmarks/results/architectures.json) and prints the
Markdown table the README shows. ``tests/integration/test_architectures.py`` (marked slow) runs the same cells.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
TASKS = ("feature-extraction", "text-classification")
FORMATS = ("onnx", "tflite")


def run_cell(model_type: str, task: str, fmt: str, work: Path) -> dict:
    """Export one random-weight twin; its parity, or the refusal (exit code and message)."""
    from edgekit.errors import EdgekitError
    from edgekit.pipeline.run import compress
    from edgekit.recipe.config import recipe_from_dict
    from edgekit.testing import make_tiny_architecture

    ckpt = make_tiny_architecture(work / f"{model_type}-{task}", model_type, task=task)
    export = {"kind": "export", "format": fmt, "name": f"{fmt}-fp32"}
    if fmt == "tflite":
        export["seq_lens"] = [32]
    bench = {"kind": "bench", "runs": 2, "warmup": 0, "seq_len": 32, "threads": 1, "fidelity_samples": 8}
    recipe = recipe_from_dict({"version": 1, "name": "coverage", "stages": [export, bench]}, "coverage")
    try:
        result = compress(ckpt, recipe, work / f"out-{model_type}-{task}-{fmt}", progress=False)
    except EdgekitError as err:
        return {"model_type": model_type, "task": task, "format": fmt, "ok": False, "exit_code": int(err.exit_code),
                "error": str(err).split(": ", 1)[-1][:200]}  # fmt: skip
    v = result.artifacts[f"{fmt}-fp32"].meta["validation"]
    return {
        "model_type": model_type,
        "task": task,
        "format": fmt,
        "ok": True,
        "max_abs_diff": v["max_abs_diff"],
        "min_cosine": v["min_cosine"],
    }


def markdown(cells: list[dict]) -> str:
    rows: dict[str, dict[str, str]] = {}
    for c in cells:
        key = f"{c['task']} {c['format']}"
        rows.setdefault(c["model_type"], {})[key] = (
            f"ok ({c['max_abs_diff']:.0e})" if c["ok"] else f"refused, exit {c['exit_code']}"
        )
    cols = [f"{t} {f}" for t in TASKS for f in FORMATS]
    lines = ["| architecture | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    lines += [f"| {m} | " + " | ".join(r.get(c, "-") for c in cols) + " |" for m, r in rows.items()]
    return "\n".join(lines)


def main() -> None:
    from edgekit.testing import ARCHITECTURES

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", type=Path, default=HERE / "results" / "architectures.json")
    args = ap.parse_args()
    cells = []
    with tempfile.TemporaryDirectory() as tmp:
        for model_type in ARCHITECTURES:
            for task in TASKS:
                for fmt in FORMATS:
                    cells.append(run_cell(model_type, task, fmt, Path(tmp)))
                    print(json.dumps(cells[-1]), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(cells, indent=2) + "\n", encoding="utf-8")
    print(markdown(cells))


if __name__ == "__main__":
    main()
