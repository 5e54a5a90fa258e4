"""What the benchmark scripts share: picking the best artifact, writing and printing results, timing loops, the
matmul models of the peak micro-benchmarks and MiniLM's multiply-accumulates."""

from __future__ import annotations

import json
import time
from pathlib import Path

MIN_COSINE = 0.99


def fastest_faithful(candidates: list[dict], min_cosine: float = MIN_COSINE) -> dict:
    """The lowest-p50 row with mean cosine >= ``min_cosine`` (the fastest of all if none is)."""
    ok = [r for r in candidates if r["fidelity"]["cosine_mean"] >= min_cosine]
    return min(ok or candidates, key=lambda r: r["latency_ms"]["p50"])


def finish(output: Path, result: dict, rows: list[dict], summary: dict) -> None:
    """Write the JSON result, then print one line per row and the summary."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        print(
            f"{r['name']:<32} {r['runtime']:<12} p50 {r['latency_ms']['p50']:7.2f} ms  "
            f"size {r['size_bytes'] / 1e6:6.1f} MB  cos {r['fidelity'].get('cosine_mean', 1.0):.4f}"
        )
    print(json.dumps(summary, indent=2))


def matmul_onnx(w, m: int, out: Path) -> tuple[Path, Path]:
    """An ONNX model of ``x [m x k] @ w [k x n]`` at ``out`` and its dynamically quantized int8 twin (ONNX
    Runtime's MatMulInteger, per-tensor int8 weights) beside it; returns both paths."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    k, n = w.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), out)
    int8 = out.with_name(out.stem + "-int8.onnx")
    quantize_dynamic(str(out), str(int8), weight_type=QuantType.QInt8)
    return out, int8


def matmul_tflite(w, x, out: Path) -> tuple[Path, Path]:
    """A LiteRT model of ``x @ w`` (``w`` is [k x n], converted by litert-torch at ``x``'s shape) at ``out`` and
    its dynamic-range int8 twin by ai-edge-quantizer (int8 weights, int8 activations at run time) beside it."""
    import litert_torch
    import torch
    from ai_edge_quantizer import quantizer, recipe

    lin = torch.nn.Linear(*w.shape, bias=False)
    lin.weight.data = torch.from_numpy(w.T.copy())
    litert_torch.convert(lin.eval(), (torch.from_numpy(x),)).export(str(out))
    q = quantizer.Quantizer(str(out))
    q.load_quantization_recipe(recipe.dynamic_wi8_afp32())
    int8 = out.with_name(out.stem + "-int8.tflite")
    q.quantize().export_model(str(int8))
    return out, int8


def times_ms(fn, n: int) -> list[float]:
    """Milliseconds of each of ``n`` calls of ``fn``."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def alternate_us(sessions: dict, feed: dict, rounds: int, runs: int, warmup: int) -> dict:
    """Microseconds per run of each ONNX Runtime session in ``sessions`` on ``feed``, timed in turn each round
    (``warmup`` untimed runs, then ``runs`` timed), all in this process; per round and the median."""
    import numpy as np

    times: dict[str, list[float]] = {n: [] for n in sessions}
    for _ in range(rounds):
        for name, sess in sessions.items():
            for _ in range(warmup):
                sess.run(None, feed)
            t0 = time.perf_counter()
            for _ in range(runs):
                sess.run(None, feed)
            times[name].append(round((time.perf_counter() - t0) / runs * 1e6, 2))
    return {"us_per_run": times, "median_us": {n: float(np.median(v)) for n, v in times.items()}}


def minilm_macs(seq: int) -> dict[str, int]:
    """Multiply-accumulates of one MiniLM forward pass at batch 1 and ``seq`` tokens, by matmul (from its
    config): Q/K/V/output projections, FFN up and down, attention scores and context."""
    from edgekit.checkpoint import load_checkpoint

    c = load_checkpoint("minilm").config
    h, i, layers = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    return {
        "qkvo": layers * 4 * seq * h * h,
        "ffn_up": layers * seq * h * i,
        "ffn_down": layers * seq * i * h,
        "attention": layers * 2 * seq * seq * h,
    }
