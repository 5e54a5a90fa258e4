"""Why `optimize`'s ``skip_layer_norm: false`` exists: ONNX Runtime's CPU ``SkipLayerNormalization`` against the
``Add``, ``Add``, ``LayerNormalization`` it replaces, at MiniLM's shape (batch 1, 128 tokens, hidden 384).

    python benchmarks/skip_layer_norm.py [--output benchmarks/results/skip_layer_norm.json]

One node against three, each graph its own session, at 1 and 2 threads, timed alternately in one process
(2,000 runs a round, 6 rounds, after 100 warm-up runs); the outputs compared.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from common import alternate_us

HERE = Path(__file__).resolve().parent
SHAPE = (1, 128, 384)


def sessions(threads: int) -> dict:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    h = SHAPE[-1]
    inits = [numpy_helper.from_array(rng.random(h).astype(np.float32), n) for n in ("gamma", "beta", "bias")]
    graphs = {
        "SkipLayerNormalization": [
            helper.make_node(
                "SkipLayerNormalization", ["x", "skip", "gamma", "beta", "bias"], ["y"], domain="com.microsoft"
            )
        ],
        "Add+Add+LayerNormalization": [
            helper.make_node("Add", ["x", "skip"], ["s"]),
            helper.make_node("Add", ["s", "bias"], ["sb"]),
            helper.make_node("LayerNormalization", ["sb", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-12),
        ],
    }
    out = {}
    for name, nodes in graphs.items():
        graph = helper.make_graph(
            nodes,
            name,
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(SHAPE)) for n in ("x", "skip")],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            inits,
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
        )
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        out[name] = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", type=Path, default=HERE / "results" / "skip_layer_norm.json")
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    feed = {n: rng.standard_normal(SHAPE).astype(np.float32) for n in ("x", "skip")}
    result: dict = {"command": "python benchmarks/skip_layer_norm.py", "shape": list(SHAPE)}
    for threads in (1, 2):
        sess = sessions(threads)
        a, b = (s.run(None, feed)[0] for s in sess.values())
        timed = alternate_us(sess, feed, rounds=6, runs=2000, warmup=100)
        med = timed["median_us"]
        result[f"threads_{threads}"] = {
            "us_per_run": timed["us_per_run"],
            "median_us": med,
            "fused_over_unfused": round(med["SkipLayerNormalization"] / med["Add+Add+LayerNormalization"], 2),
            "max_abs_diff": float(np.abs(a - b).max()),
        }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k.startswith("threads")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
