"""Footprint of the runtime side: install size, bundle size, cold start and peak memory.

    python benchmarks/runtime_footprint.py --bundle BUNDLE [--output benchmarks/results/runtime_footprint.json]

For each runtime extra (onnxruntime, litert) in turn: a fresh virtual
environment gets ``pip install ".[EXTRA]"`` (timed, then measured on disk),
torch/tensorflow/transformers must not be importable there, ``edgekit run
BUNDLE --check`` must reproduce the outputs recorded in the bundle (cosine >=
0.999), and a child process measures cold start (interpreter start to first
embedding) and peak resident memory (after the first call and after 100
more). Cold start is measured 5 times and the median reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNTIME_FOR = {"onnxruntime": "onnxruntime", "litert": "litert"}

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import edgekit
model = edgekit.load(sys.argv[1], runtime=sys.argv[2], threads=2)
model.embed(["the first request after start-up"])
first = time.perf_counter() - t0
peak_first = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
for i in range(100):
    model.embed([f"request {i}: a sentence of ordinary length about the budget and the economy"])
print(json.dumps({"load_to_first_inference_s": round(first, 3), "peak_rss_mb_first": round(peak_first, 1),
                  "peak_rss_mb_after_100": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "variant": model.variant.name}))
"""


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def measure_extra(extra: str, bundle: Path, tmp: Path) -> dict:
    env = tmp / f"venv-{extra}"
    venv.EnvBuilder(with_pip=True).create(env)
    base = dir_size(env)
    py = str(env / "bin" / "python")
    t0 = time.perf_counter()
    subprocess.run([py, "-m", "pip", "install", "-q", f"{REPO}[{extra}]"], check=True, capture_output=True)
    install_s = time.perf_counter() - t0
    probe = (
        "import importlib.util as u, json; print(json.dumps([m for m in ['torch', 'tensorflow', 'transformers'] "
        "if u.find_spec(m)]))"
    )
    heavy = json.loads(subprocess.run([py, "-c", probe], check=True, capture_output=True, text=True).stdout)
    check = subprocess.run(
        [str(env / "bin" / "edgekit"), "run", str(bundle), "--runtime", RUNTIME_FOR[extra], "--check"],
        capture_output=True,
        text=True,
    )
    starts, children = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        out = subprocess.run(
            [py, "-c", CHILD, str(bundle), RUNTIME_FOR[extra]], check=True, capture_output=True, text=True
        )
        starts.append(time.perf_counter() - t0)
        children.append(json.loads(out.stdout))
    return {
        "extra": extra,
        "install_s": round(install_s, 1),
        "venv_mb": round(dir_size(env) / 1e6, 1),
        "venv_mb_without_bare_venv": round((dir_size(env) - base) / 1e6, 1),
        "heavy_modules_importable": heavy,
        "check": json.loads(check.stdout)["check"] if check.returncode == 0 else {"error": check.stderr.strip()},
        "variant": children[0]["variant"],
        "cold_start_process_s_median": round(statistics.median(starts), 3),
        "load_to_first_inference_s_median": round(
            statistics.median(c["load_to_first_inference_s"] for c in children), 3
        ),
        "peak_rss_mb_first_inference": max(c["peak_rss_mb_first"] for c in children),
        "peak_rss_mb_after_100": max(c["peak_rss_mb_after_100"] for c in children),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", required=True, type=Path)
    ap.add_argument("--extras", default="onnxruntime,litert")
    ap.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "runtime_footprint.json")
    args = ap.parse_args()

    from edgekit.device.bundle import open_bundle
    from edgekit.measure.environment import environment

    bundle = open_bundle(args.bundle)
    archive = args.bundle.with_name(args.bundle.name + ".tar.gz")
    result = {
        "bundle": str(args.bundle),
        "bundle_mb": round(bundle.size_bytes / 1e6, 1),
        "bundle_archive_mb": round(archive.stat().st_size / 1e6, 1) if archive.is_file() else None,
        "variants": {v.name: round(v.size_bytes / 1e6, 1) for v in bundle.variants},
        "environment": environment(2),
        "runtimes": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for extra in args.extras.split(","):
            row = measure_extra(extra, bundle.path, Path(tmp))
            result["runtimes"].append(row)
            print(json.dumps(row), flush=True)
    ok = all(r["check"].get("passed") and not r["heavy_modules_importable"] for r in result["runtimes"])
    result["passed"] = ok
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("environment", "runtimes")}, indent=2))
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
