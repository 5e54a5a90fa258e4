"""MiniLM int8 ONNX vs PyTorch eager vs ONNX Runtime's own reference path, side by side.

    python benchmarks/onnx_int8.py [--output benchmarks/results/onnx_int8.json]

Builds, in one process:
  * the fp32 PyTorch eager reference,
  * edgekit's `ptq-dynamic` and `ptq-static` artifacts (and a dynamic variant
    with the tanh GELU approximation),
  * ONNX Runtime's reference path: its transformer optimizer on the same
    fp32 export, then `quantize_dynamic(per_channel=True)` with defaults,
then times every row interleaved at batch 1, sequence 128, 2 threads, and
measures fidelity on the held-out texts. Writes JSON with the ratios the
foundation issue asks for and prints them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from common import MIN_COSINE, fastest_faithful, finish

from edgekit.checkpoint import load_checkpoint
from edgekit.data.calibration import load_text_data
from edgekit.measure.environment import environment
from edgekit.measure.harness import BenchSettings, Target, measure
from edgekit.pipeline.run import compress
from edgekit.plugins import get_runtime
from edgekit.recipe.config import load_recipe, recipe_from_dict

TARGET_VS_TORCH = 3.0
TARGET_VS_ORT = 1.0
MAX_SIZE_FRACTION = 0.27


def ort_reference_path(fp32_onnx: Path, out: Path, cfg: dict) -> Path:
    """What a user gets from ONNX Runtime's documented tools alone."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    opt = optimize_model(
        str(fp32_onnx), model_type="bert", num_heads=cfg["num_attention_heads"], hidden_size=cfg["hidden_size"]
    )
    opt_path = out / "ort-opt.onnx"
    opt.save_model_to_file(str(opt_path))
    q = out / "ort-ref-int8.onnx"
    quantize_dynamic(
        str(opt_path),
        str(q),
        per_channel=True,
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return q


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="minilm")
    ap.add_argument("--output", type=Path, default=Path("benchmarks/results/onnx_int8.json"))
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()

    ckpt = load_checkpoint(args.checkpoint)
    data = load_text_data()
    settings = BenchSettings(batch_size=1, seq_len=128, threads=2, warmup=20, runs=args.runs, fidelity_samples=300)
    no_bench = {"kind": "bench", "reference": False, "runs": 1, "warmup": 0, "fidelity_samples": 1}
    gelu = recipe_from_dict(
        {
            "name": "ptq-dynamic-gelu-approx",
            "stages": [
                {"kind": "export"},
                {"kind": "optimize", "gelu_approximation": True, "atol": 1e-2},
                {"kind": "quantize", "method": "dynamic", "name": "onnx-int8-dynamic-gelu-approx"},
                no_bench,
            ],
        }
    )
    ort = get_runtime("onnxruntime")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        arts = {}
        for recipe in (load_recipe("ptq-dynamic"), load_recipe("ptq-static"), gelu):
            data_ = recipe.model_dump(mode="json")
            data_["stages"] = [s for s in data_["stages"] if s["kind"] != "bench"] + [no_bench]
            res = compress(args.checkpoint, recipe_from_dict(data_), tmp / recipe.name, progress=False)
            arts.update(res.artifacts)
        ref_q = ort_reference_path(arts["onnx-fp32"].model_path, tmp, ckpt.config)

        def onnx_target(name: str, path: Path, precision: str) -> Target:
            return Target(
                name,
                "onnx",
                precision,
                "onnxruntime",
                str(path),
                path.stat().st_size,
                lambda: ort.load(path, threads=settings.threads),
            )

        targets = [
            Target(
                "pytorch-fp32",
                "hf-checkpoint",
                "fp32",
                "torch",
                str(ckpt.path),
                (ckpt.path / "model.safetensors").stat().st_size,
                lambda: get_runtime("torch").from_checkpoint(ckpt, settings.threads),
                is_reference=True,
            ),
            onnx_target("onnx-fp32", arts["onnx-fp32"].model_path, "fp32"),
            onnx_target("ort-reference-int8", ref_q, "int8"),
        ] + [
            onnx_target(n, arts[n].model_path, "int8")
            for n in ("onnx-int8-dynamic", "onnx-int8-static", "onnx-int8-dynamic-gelu-approx")
        ]
        rows = measure(targets, settings, task=ckpt.task, tokenizer=ckpt.tokenizer, texts=data.heldout)

    by = {r["name"]: r for r in rows}
    fp32_size = by["onnx-fp32"]["size_bytes"]
    edgekit_int8 = [r for r in rows if r["name"].startswith("onnx-int8")]
    best = fastest_faithful(edgekit_int8, MIN_COSINE)
    summary = {
        "best_int8": best["name"],
        "speedup_vs_torch_eager": round(by["pytorch-fp32"]["latency_ms"]["p50"] / best["latency_ms"]["p50"], 3),
        "ratio_vs_ort_reference_path": round(
            by["ort-reference-int8"]["latency_ms"]["p50"] / best["latency_ms"]["p50"], 3
        ),
        "cosine_mean": round(best["fidelity"]["cosine_mean"], 5),
        "size_fraction_of_fp32": round(best["size_bytes"] / fp32_size, 4),
    }
    summary["targets"] = {
        "speedup_vs_torch_eager >= 3.0": summary["speedup_vs_torch_eager"] >= TARGET_VS_TORCH,
        "ratio_vs_ort_reference_path >= 1.0": summary["ratio_vs_ort_reference_path"] >= TARGET_VS_ORT,
        "cosine_mean >= 0.99": summary["cosine_mean"] >= MIN_COSINE,
        "size_fraction_of_fp32 <= 0.27": summary["size_fraction_of_fp32"] <= MAX_SIZE_FRACTION,
    }
    result = {
        "benchmark": "onnx_int8",
        "settings": settings.__dict__,
        "environment": environment(2),
        "summary": summary,
        "rows": rows,
    }
    finish(args.output, result, rows, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
