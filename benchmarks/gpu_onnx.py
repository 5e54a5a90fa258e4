"""MiniLM on an NVIDIA GPU through ONNX Runtime: fp32 vs fp16 vs int8, batch 1 and batch 32.

    pip install onnxruntime-gpu   # in place of onnxruntime
    python benchmarks/gpu_onnx.py --source OUT [--output benchmarks/results/gpu_onnx.json]

OUT is a compress output directory holding onnx-fp32, onnx-fp16 and
onnx-int8-dynamic artifacts, e.g. from
``edgekit compress minilm --recipe benchmarks/recipes/gpu.yaml --output OUT``.
Every artifact is timed with the `onnxruntime-gpu` adapter (TensorRT or CUDA
provider) at sequence 128, all interleaved in one process, and checked for
fidelity against the fp32 artifact on the held-out texts. Exits 2 when no GPU
provider is present.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgekit.artifact import Artifact
from edgekit.checkpoint import load_checkpoint
from edgekit.data.calibration import load_text_data
from edgekit.measure.environment import environment
from edgekit.measure.harness import BenchSettings, Target, measure
from edgekit.plugins import get_runtime
from edgekit_runtimes.onnxruntime_gpu import gpu_providers

NAMES = ("onnx-fp32", "onnx-fp16", "onnx-int8-dynamic")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", type=Path, required=True)
    ap.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "gpu_onnx.json")
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    if not gpu_providers():
        print(
            "gpu_onnx: no CUDA/TensorRT execution provider here (pip install onnxruntime-gpu on an NVIDIA machine)",
            file=sys.stderr,
        )
        return 2
    report = json.loads((args.source / "report.json").read_text())
    ckpt = load_checkpoint(report["model"]["path"])
    adapter = get_runtime("onnxruntime-gpu")
    texts = load_text_data().heldout
    rows = []
    for batch in (1, 32):
        targets = []
        for name in NAMES:
            a = Artifact.load(args.source / name)
            targets.append(
                Target(
                    name=name,
                    format=a.format,
                    precision=a.precision,
                    runtime=adapter.name,
                    path=str(a.path),
                    size_bytes=a.size_bytes,
                    is_reference=name == "onnx-fp32",
                    load=lambda a=a: adapter.load(a.model_path, threads=1),
                )
            )
        settings = BenchSettings(batch_size=batch, seq_len=128, threads=1, warmup=20, runs=args.runs)
        rows += measure(targets, settings, task=ckpt.task, tokenizer=ckpt.tokenizer, texts=texts, progress=False)
    result = {"environment": environment(1), "providers": gpu_providers(), "rows": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        fid = r["fidelity"].get("cosine_mean", 1.0)
        print(
            f"batch {r['batch_size']:>2}  {r['name']:<20} p50 {r['latency_ms']['p50']:8.3f} ms  "
            f"{r['throughput_per_s']:9.1f}/s  cos {fid:.4f}  {r['runtime_details'].get('providers', [''])[0]}"
            f"  CPU: {r['runtime_details'].get('compute_ops_on_cpu') or '-'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
