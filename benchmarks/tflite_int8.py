"""MiniLM: TFLite on LiteRT vs ONNX Runtime vs PyTorch eager, side by side in one run.

    python benchmarks/tflite_int8.py [--output benchmarks/results/tflite_int8.json]

Runs the built-in `onnx-tflite` recipe (ONNX fp32/fused/dynamic int8, TFLite
fp32, dynamic int8 and selective static int8), measures every artifact and the
PyTorch reference interleaved at batch 1, sequence 128, 2 threads, and writes
the report plus the ratios the TFLite issue asks for.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from common import MIN_COSINE, fastest_faithful, finish

from edgekit.pipeline.run import compress
from edgekit.recipe.config import load_recipe, recipe_from_dict


def best(rows: list[dict], fmt: str) -> dict:
    return fastest_faithful([r for r in rows if r["format"] == fmt and r["precision"] == "int8"], MIN_COSINE)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="minilm")
    ap.add_argument("--output", type=Path, default=Path("benchmarks/results/tflite_int8.json"))
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()

    data = load_recipe("onnx-tflite").model_dump(mode="json", exclude_none=True)
    for stage in data["stages"]:
        if stage["kind"] == "bench":
            stage.update(runs=args.runs, warmup=20)
    with tempfile.TemporaryDirectory() as tmp:
        res = compress(args.checkpoint, recipe_from_dict(data, "onnx-tflite"), Path(tmp) / "out")
    rows = res.report["results"]
    by = {r["name"]: r for r in rows}
    torch_p50 = by["pytorch-fp32"]["latency_ms"]["p50"]
    tfl, onnx = best(rows, "tflite"), best(rows, "onnx")
    summary = {
        "best_int8_tflite": tfl["name"],
        "best_int8_onnx": onnx["name"],
        "tflite_speedup_vs_torch_eager": round(torch_p50 / tfl["latency_ms"]["p50"], 3),
        "tflite_p50_over_onnx_p50": round(tfl["latency_ms"]["p50"] / onnx["latency_ms"]["p50"], 3),
        "tflite_cosine_mean": round(tfl["fidelity"]["cosine_mean"], 5),
        "tflite_size_fraction_of_fp32": round(tfl["size_bytes"] / by["tflite-fp32"]["size_bytes"], 4),
        "xnnpack_delegate": tfl["runtime_details"].get("xnnpack_delegate"),
    }
    summary["targets"] = {
        "speedup_vs_torch_eager >= 2.2": summary["tflite_speedup_vs_torch_eager"] >= 2.2,
        "within 1.3x of best int8 ONNX": summary["tflite_p50_over_onnx_p50"] <= 1.3,
        "cosine_mean >= 0.99": summary["tflite_cosine_mean"] >= MIN_COSINE,
        "size <= 27% of fp32": summary["tflite_size_fraction_of_fp32"] <= 0.27,
    }
    finish(args.output, {"benchmark": "tflite_int8", "summary": summary, "report": res.report}, rows, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
