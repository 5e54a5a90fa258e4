"""What the benchmark scripts share: picking the best artifact, writing and printing results, the matmul
models of the peak micro-benchmarks."""

from __future__ import annotations

import json
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
