"""Per-layer error between a reference model and a transformed one (``edgekit diff A B``).

Both models run the same inputs with their intermediate tensors exposed; every
float tensor present in both (by name) is compared: signal-to-noise ratio in
dB, relative MSE and cosine. Tensors are listed in the reference graph's order,
so the first layer whose SNR falls is where the damage starts.

ONNX: the tensors named by both graphs (quantizers keep the output names of
the nodes they replace) are added as graph outputs. TFLite: the interpreter
keeps every tensor (``experimental_preserve_all_tensors``), matched by name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import InputError, ModelFileError
from edgekit.inspect_model import detect_format

FLOAT_OPS = {"LayerNormalization", "SkipLayerNormalization", "EmbedLayerNormalization", "Attention", "QAttention",
             "MultiHeadAttention", "MatMul", "Add", "Gelu", "FastGelu", "BiasGelu", "Softmax", "Mul", "Div",
             "ReduceMean", "ReduceSum", "Gemm", "Erf", "Tanh", "SkipSimplifiedLayerNormalization"}


def error_stats(ref: np.ndarray, got: np.ndarray) -> dict:
    ref = ref.astype(np.float64).ravel()
    got = got.astype(np.float64).ravel()
    noise = float(((ref - got) ** 2).sum())
    signal = float((ref**2).sum())
    cos = float((ref * got).sum() / max(np.linalg.norm(ref) * np.linalg.norm(got), 1e-30))
    snr = 10.0 * np.log10(signal / noise) if noise > 0 else float("inf")
    return {"snr_db": round(float(snr), 2), "rel_mse": float(noise / max(signal, 1e-30)), "cosine": round(cos, 6)}


def _onnx_tensors(path: Path) -> tuple[object, list[tuple[str, str]]]:
    """The model and its float-producing node outputs, in graph order: (tensor name, op type)."""
    import onnx

    model = onnx.load(str(path))
    found = [(out, n.op_type) for n in model.graph.node if n.op_type in FLOAT_OPS for out in n.output[:1] if out]
    return model, found


def _onnx_run(model, names: list[str], feeds: list[dict], threads: int) -> list[dict[str, np.ndarray]]:
    import onnx
    import onnxruntime as ort

    existing = {o.name for o in model.graph.output}
    for name in names:
        if name not in existing:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    from edgekit_runtimes.onnxruntime_cpu import OnnxRuntimeCPUAdapter

    so = OnnxRuntimeCPUAdapter().session_options(threads)  # the same settings artifacts are run with
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    outs = [o.name for o in sess.get_outputs()]
    wanted = {i.name for i in sess.get_inputs()}
    return [dict(zip(outs, sess.run(outs, {k: v for k, v in f.items() if k in wanted}))) for f in feeds]


def _onnx_diff(a: Path, b: Path, feeds: list[dict], threads: int) -> list[dict]:
    ref_model, ref_tensors = _onnx_tensors(a)
    new_model, new_tensors = _onnx_tensors(b)
    new_names = {t for t, _ in new_tensors} | {o.name for o in new_model.graph.output}
    common = [(t, op) for t, op in ref_tensors if t in new_names]
    graph_outputs = [o.name for o in ref_model.graph.output]
    names = [t for t, _ in common] + [o for o in graph_outputs if o not in {t for t, _ in common}]
    ops = dict(common) | {o: "output" for o in graph_outputs}
    ref_runs = _onnx_run(ref_model, names, feeds, threads)
    new_runs = _onnx_run(new_model, names, feeds, threads)
    return _collect(names, ops, ref_runs, new_runs)


def _tflite_run(path: Path, feeds: list[dict], threads: int) -> tuple[list[dict[str, np.ndarray]], list[tuple[str, str]]]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgekit_runtimes.base import native_stderr_silenced

    with native_stderr_silenced():  # without the XNNPACK delegate every intermediate tensor stays readable
        interp = Interpreter(model_path=str(path), num_threads=threads, experimental_preserve_all_tensors=True,
                             experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    sig = interp.get_signature_list()
    first = next(iter(sig))
    runner = interp.get_signature_runner(first)
    details = runner.get_input_details()
    ops = {}
    for op in interp._get_ops_details():  # noqa: SLF001 - the only way to name the op behind each tensor
        for t in op["outputs"]:
            ops[int(t)] = op["op_name"]
    tensors = [(d["name"], ops[d["index"]], d["index"]) for d in interp.get_tensor_details()
               if d["index"] in ops and np.dtype(d["dtype"]) == np.float32]
    runs = []
    for f in feeds:
        inputs = {}
        for name, d in details.items():
            arr = f[name].astype(d["dtype"])
            seq = d["shape"][1] if len(d["shape"]) > 1 else None
            if seq and arr.shape[1] < seq:
                arr = np.pad(arr, ((0, 0), (0, seq - arr.shape[1])))
            inputs[name] = arr[:1]
        runner(**inputs)
        runs.append({n: np.array(interp.get_tensor(i)) for n, _, i in tensors})
    return runs, [(n, op) for n, op, _ in tensors]


def _tflite_diff(a: Path, b: Path, feeds: list[dict], threads: int) -> list[dict]:
    ref_runs, ref_tensors = _tflite_run(a, feeds, threads)
    new_runs, new_tensors = _tflite_run(b, feeds, threads)
    new_names = {n for n, _ in new_tensors}
    names = [n for n, _ in ref_tensors if n in new_names]
    return _collect(names, dict(ref_tensors), ref_runs, new_runs)


def _collect(names, ops, ref_runs, new_runs) -> list[dict]:
    rows = []
    for i, name in enumerate(names):
        ref = [r[name] for r in ref_runs if name in r]
        new = [r[name] for r in new_runs if name in r]
        if len(ref) != len(new) or not ref or any(x.shape != y.shape for x, y in zip(ref, new)):
            continue
        stats = error_stats(np.concatenate([x.ravel() for x in ref]), np.concatenate([y.ravel() for y in new]))
        rows.append({"index": i, "tensor": name, "op": ops.get(name, "?"), **stats})
    return rows


def layer_diff(a: Path, b: Path, feeds: list[dict], threads: int = 2) -> list[dict]:
    """Per-tensor error of model ``b`` against reference ``a`` (same format) on ``feeds``."""
    fa, fb = detect_format(a), detect_format(b)
    if fa != fb:
        raise InputError(f"{a} is {fa} and {b} is {fb}: diff compares two models of one format")
    rows = _onnx_diff(a, b, feeds, threads) if fa == "onnx" else _tflite_diff(a, b, feeds, threads)
    if not rows:
        raise ModelFileError(f"{a} and {b} share no comparable tensor names")
    return rows


def worst(rows: list[dict], n: int = 5) -> list[dict]:
    return sorted((r for r in rows if np.isfinite(r["snr_db"])), key=lambda r: r["snr_db"])[:n]


def short_name(tensor: str) -> str:
    """Drop Python module qualifiers from converter-made names (`a.b.BertLayer_4` -> `BertLayer_4`)."""
    parts = [p.rsplit(".", 1)[-1] if "." in p.split(";")[0] else p for p in tensor.split("/")]
    return "/".join(p for p in parts if not p.endswith(">.TFLiteTask") and p != "TFLiteTask")


def text_table(rows: list[dict], limit: int | None = None) -> str:
    lines = [f"{'#':>4}  {'op':<26} {'SNR dB':>8} {'rel MSE':>10} {'cosine':>9}  tensor"]
    low = {id(r) for r in worst(rows, 3)}
    for r in rows[:limit] if limit else rows:
        flag = "  <- worst" if id(r) in low else ""
        lines.append(f"{r['index']:>4}  {r['op'][:26]:<26} {r['snr_db']:>8.1f} {r['rel_mse']:>10.2e} "
                     f"{r['cosine']:>9.5f}  {short_name(r['tensor'])}{flag}")
    return "\n".join(lines)
