"""The project's own report gate, run by .ci/run after the tests: a small model against a committed baseline.

    python benchmarks/ci_gate.py [--update-baseline] [--output ci-out]

Builds the tiny test encoder in code (no download), runs the built-in
`ptq-dynamic` recipe on it, and gates the new report.json against
benchmarks/baselines/tiny-ptq-dynamic.json with `edgekit report`: file size
may not grow by more than 1%, fidelity may not drop by more than 0.5 points,
and each artifact's p50 relative to its fp32 on the same runtime (measured in
the same run, so machine load cancels) may not grow by more than 200% beyond
the run-to-run spread (a tiny model's sub-millisecond latency on a shared
2-core machine is noisy; the gate is there to catch a broken build, e.g. int8
losing its quantized ops).
Writes Markdown, HTML and JUnit XML to --output; exits with the gate's code.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

BASELINE = Path(__file__).parent / "baselines" / "tiny-ptq-dynamic.json"
GATES = ["--max-latency-regression", "200", "--max-size-growth", "1", "--max-accuracy-drop", "0.5"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--update-baseline", action="store_true", help="write this run's report as the new baseline")
    ap.add_argument("--output", type=Path, default=Path("ci-out"))
    args = ap.parse_args()

    from edgekit.logs import quiet_libraries

    quiet_libraries()
    from edgekit.cli import main as edgekit
    from edgekit.pipeline.run import compress
    from edgekit.recipe.config import load_recipe, recipe_from_dict
    from edgekit.testing import make_tiny_checkpoint

    data = load_recipe("ptq-dynamic").model_dump(mode="json", exclude_none=True)
    data["stages"] = [s for s in data["stages"] if s["kind"] != "bench"] + [
        {"kind": "bench", "runs": 100, "warmup": 10, "threads": 1, "seq_len": 32, "fidelity_samples": 100}
    ]
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = make_tiny_checkpoint(Path(tmp) / "tiny-encoder")
        result = compress(ckpt, recipe_from_dict(data, "ptq-dynamic"), Path(tmp) / "out", progress=False)
        args.output.mkdir(parents=True, exist_ok=True)
        new = args.output / "report.json"
        shutil.copy(result.output / "report.json", new)
    if args.update_baseline:
        report = json.loads(new.read_text())
        report["model"]["path"] = "<temporary>"
        BASELINE.parent.mkdir(parents=True, exist_ok=True)
        BASELINE.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {BASELINE}")
        return 0
    try:
        edgekit(
            [
                "report",
                str(new),
                "--baseline",
                str(BASELINE),
                *GATES,
                "--markdown",
                str(args.output / "gates.md"),
                "--html",
                str(args.output / "report.html"),
                "--junit",
                str(args.output / "gates.xml"),
            ]
        )
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
