"""Does structured pruning buy the speed its MAC count promises? Pruning alone, no recovery.

    python benchmarks/prune_latency.py [--model minilm] [--output benchmarks/results/prune_latency.json]

Prunes the checkpoint three ways by measured importance (a third of the heads
and half the FFN neurons; half the FFN only; 6 -> 4 layers), exports each and
the original to ONNX fp32, and times all of them side by side (p50, batch 1,
sequence 128, 2 threads) in PyTorch eager and ONNX Runtime. For each pruned
model it writes the MAC reduction (transformer layers at 128 tokens) next to
the measured latency reduction; the target is a latency reduction within 25%
of the MAC reduction (40% fewer MACs -> 30-50% faster).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgekit.checkpoint import load_checkpoint
from edgekit.measure.environment import environment
from edgekit.pipeline.run import compress
from edgekit.recipe.config import recipe_from_dict
from edgekit.training.prune import encoder_macs

HERE = Path(__file__).parent
VARIANTS = {
    "heads-ffn": {"heads": 0.333, "ffn": 0.5},
    "ffn": {"ffn": 0.5},
    "layers": {"layers": 4},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--work", type=Path, default=Path("prune-latency-runs"))
    ap.add_argument("--output", type=Path, default=HERE / "results" / "prune_latency.json")
    ap.add_argument("--runs", type=int, default=100)
    args = ap.parse_args()
    stages = [{"kind": "export", "input": "pytorch-fp32", "name": "onnx-original"}]
    for name, prune in VARIANTS.items():
        stages += [
            {
                "kind": "prune",
                "input": "pytorch-fp32",
                "name": f"pruned-{name}",
                "recover": None,
                "importance_batches": 8,
                **prune,
            },
            {"kind": "export", "input": f"pruned-{name}", "name": f"onnx-pruned-{name}"},
        ]
    stages.append({"kind": "bench", "runs": args.runs, "seq_len": 128, "threads": 2})
    recipe = recipe_from_dict({"version": 1, "name": "prune-latency", "stages": stages}, "prune-latency")
    result = compress(args.model, recipe, args.work, progress=True, overwrite=True)  # its own work folder
    rows = {r["name"]: r for r in result.report["results"]}
    base_macs = encoder_macs(load_checkpoint(args.model).config, 128)
    out = {"environment": environment(2), "model": result.report["model"]["name"], "seq_len": 128, "variants": {}}
    print(f"{'variant':<12} {'MACs':>8}  {'PyTorch faster':>15}  {'ONNX faster':>12}  within 25%?")
    for name in VARIANTS:
        macs = encoder_macs(load_checkpoint(args.work / f"pruned-{name}").config, 128)
        mac_cut = 1 - macs / base_macs
        torch_cut = 1 - rows[f"pruned-{name}"]["latency_ms"]["p50"] / rows["pytorch-fp32"]["latency_ms"]["p50"]
        onnx_cut = 1 - rows[f"onnx-pruned-{name}"]["latency_ms"]["p50"] / rows["onnx-original"]["latency_ms"]["p50"]
        ok = {rt: abs(cut - mac_cut) <= 0.25 * mac_cut for rt, cut in (("torch", torch_cut), ("onnxruntime", onnx_cut))}
        out["variants"][name] = {
            "prune": VARIANTS[name],
            "macs": macs,
            "macs_original": base_macs,
            "mac_reduction": round(mac_cut, 4),
            "latency_reduction": {"torch": round(torch_cut, 4), "onnxruntime": round(onnx_cut, 4)},
            "p50_ms": {
                "torch": rows[f"pruned-{name}"]["latency_ms"]["p50"],
                "torch_original": rows["pytorch-fp32"]["latency_ms"]["p50"],
                "onnxruntime": rows[f"onnx-pruned-{name}"]["latency_ms"]["p50"],
                "onnxruntime_original": rows["onnx-original"]["latency_ms"]["p50"],
            },
            "within_25_percent": ok,
        }
        print(
            f"{name:<12} {-mac_cut:+8.1%}  {-torch_cut:+15.1%}  {-onnx_cut:+12.1%}  "
            f"torch {'yes' if ok['torch'] else 'no'}, onnx {'yes' if ok['onnxruntime'] else 'no'}"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
