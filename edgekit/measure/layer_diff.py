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
from typing import TYPE_CHECKING

import numpy as np

from edgekit.errors import InputError, ModelFileError
from edgekit.measure.model_info import check_token_inputs, detect_format, onnx_token_limits

if TYPE_CHECKING:
    import onnx

FLOAT_OPS = {
    "LayerNormalization",
    "SkipLayerNormalization",
    "EmbedLayerNormalization",
    "Attention",
    "QAttention",
    "MultiHeadAttention",
    "MatMul",
    "Add",
    "Gelu",
    "FastGelu",
    "BiasGelu",
    "Softmax",
    "Mul",
    "Div",
    "ReduceMean",
    "ReduceSum",
    "Gemm",
    "Erf",
    "Tanh",
    "SkipSimplifiedLayerNormalization",
}


def error_stats(ref: np.ndarray, got: np.ndarray) -> dict:
    ref = ref.astype(np.float64).ravel()
    got = got.astype(np.float64).ravel()
    noise = float(((ref - got) ** 2).sum())
    signal = float((ref**2).sum())
    cos = float((ref * got).sum() / max(np.linalg.norm(ref) * np.linalg.norm(got), 1e-30))
    snr = 10.0 * np.log10(signal / noise) if noise > 0 else float("inf")
    return {"snr_db": round(float(snr), 2), "rel_mse": float(noise / max(signal, 1e-30)), "cosine": round(cos, 6)}


FLOAT_TYPES = (1, 10, 11, 16)  # onnx.TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16
UNRELATED = "diff compares a model with a transformed copy of it (e.g. int8 against fp32)"


def _onnx_types(model) -> dict[str, int]:
    """Element type of every tensor whose type ONNX shape inference knows (custom-domain ops' outputs it may not)."""
    import onnx

    try:
        graph = onnx.shape_inference.infer_shapes(model).graph
    except Exception:  # noqa: BLE001 - inference is a refinement: without it, every candidate is taken as float
        graph = model.graph
    return {
        v.name: v.type.tensor_type.elem_type
        for v in [*graph.value_info, *graph.output, *graph.input]
        if v.type.tensor_type.elem_type
    }


def _onnx_tensors(path: Path) -> tuple[onnx.ModelProto, list[tuple[str, str]], dict[str, int]]:
    """The model, its float-producing node outputs in graph order (tensor name, op type) and the known types."""
    import onnx

    model = onnx.load(str(path))
    types = _onnx_types(model)
    found = [
        (out, n.op_type)
        for n in model.graph.node
        if n.op_type in FLOAT_OPS
        for out in n.output[:1]
        if out and types.get(out, 1) in FLOAT_TYPES
    ]
    return model, found, types


def _onnx_inputs(model) -> set[str]:
    weights = {t.name for t in model.graph.initializer}
    return {i.name for i in model.graph.input if i.name not in weights}


def _onnx_run(
    path: Path, model, names: list[str], types: dict[str, int], feeds: list[dict], threads: int
) -> list[dict[str, np.ndarray]]:
    import onnx
    import onnxruntime as ort
    from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

    existing = {o.name for o in model.graph.output}
    for name in names:
        if name not in existing:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, types.get(name, 1), None))
    from edgekit_runtimes.onnxruntime_cpu import OnnxRuntimeCPUAdapter

    so = OnnxRuntimeCPUAdapter().session_options(threads)  # the same settings artifacts are run with
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    outs = [o.name for o in sess.get_outputs()]
    wanted = {i.name for i in sess.get_inputs()}
    try:
        return [dict(zip(outs, sess.run(outs, {k: v for k, v in f.items() if k in wanted}))) for f in feeds]
    except InvalidArgument as err:  # inputs of another type or shape than the model declares
        raise InputError(f"{path} cannot run these inputs ({str(err).splitlines()[0][:200]})") from None


def _onnx_diff(a: Path, b: Path, feeds: list[dict], threads: int) -> list[dict]:
    ref_model, ref_tensors, ref_types = _onnx_tensors(a)
    new_model, new_tensors, new_types = _onnx_tensors(b)
    ins = _onnx_inputs(ref_model), _onnx_inputs(new_model)
    missing = sorted({n for f in feeds for n in (ins[0] | ins[1]) - set(f)})
    if missing and ins[0] != ins[1]:
        raise ModelFileError(
            f"{a} and {b} share no tensors (they take different inputs: {sorted(ins[0])} and "
            f"{sorted(ins[1])}); {UNRELATED}"
        )
    if missing:
        raise InputError(f"the inputs lack {', '.join(missing)}, which {a} takes; pass --inputs FILE.npz with them")
    for path in (a, b):
        for f in feeds:
            check_token_inputs(f, path, onnx_token_limits(path), "the inputs")
    new_names = {t for t, _ in new_tensors} | {o.name for o in new_model.graph.output}
    common = [(t, op) for t, op in ref_tensors if t in new_names]
    graph_outputs = [o.name for o in ref_model.graph.output if o.name in new_names]
    names = [t for t, _ in common] + [o for o in graph_outputs if o not in {t for t, _ in common}]
    if not names:
        raise ModelFileError(f"{a} and {b} share no tensors; {UNRELATED}")
    ops = dict(common) | {o: "output" for o in graph_outputs}
    ref_runs = _onnx_run(a, ref_model, names, ref_types, feeds, threads)
    new_runs = _onnx_run(b, new_model, names, new_types, feeds, threads)
    return _collect(names, ops, ref_runs, new_runs)


def _tflite_run(
    path: Path, feeds: list[dict], threads: int
) -> tuple[list[dict[str, np.ndarray]], list[tuple[str, str]]]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgekit_runtimes.base import native_stderr_silenced

    with native_stderr_silenced():  # without the XNNPACK delegate every intermediate tensor stays readable
        interp = Interpreter(
            model_path=str(path),
            num_threads=threads,
            experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
    sig = interp.get_signature_list()
    first = next(iter(sig))
    runner = interp.get_signature_runner(first)
    details = runner.get_input_details()
    missing = sorted(set(details) - set(feeds[0])) if feeds else []
    if missing:
        raise ModelFileError(
            f"{path} takes inputs {missing} the other model's inputs lack, so the two share no tensors; {UNRELATED}"
        )
    ops = {}
    for op in interp._get_ops_details():  # noqa: SLF001 - the only way to name the op behind each tensor
        for t in op["outputs"]:
            ops[int(t)] = op["op_name"]
    tensors = [
        (d["name"], ops[d["index"]], d["index"])
        for d in interp.get_tensor_details()
        if d["index"] in ops and np.dtype(d["dtype"]) == np.float32
    ]
    runs = []
    for f in feeds:
        inputs = {}
        for name, d in details.items():
            arr = f[name].astype(d["dtype"])
            seq = d["shape"][1] if len(d["shape"]) > 1 else None
            if seq and arr.shape[1] < seq:
                arr = np.pad(arr, ((0, 0), (0, seq - arr.shape[1])))
            elif seq and arr.shape[1] > seq:  # several buckets: the first signature's length (its tensors)
                arr = arr[:, :seq]
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
    diff = {"onnx": _onnx_diff, "tflite": _tflite_diff}.get(fa)  # the formats whose every tensor it can read
    if diff is None:
        raise InputError(f"{a}: the per-layer diff reads ONNX and TFLite models, not {fa}")
    rows = diff(a, b, feeds, threads)
    if not rows:
        raise ModelFileError(f"{a} and {b} share no tensors of the same shape; {UNRELATED}")
    return rows


def json_rows(rows: list[dict]) -> list[dict]:
    """Rows for JSON: an identical tensor's infinite SNR becomes ``null`` with ``identical: true``."""
    return [{**r, "snr_db": None, "identical": True} if r["snr_db"] == float("inf") else r for r in rows]


def worst(rows: list[dict], n: int = 5) -> list[dict]:
    return sorted((r for r in rows if np.isfinite(r["snr_db"])), key=lambda r: r["snr_db"])[:n]


def short_name(tensor: str) -> str:
    """Drop Python module qualifiers from converter-made names (`a.b.BertLayer_4` -> `BertLayer_4`)."""
    parts = [p.rsplit(".", 1)[-1] if "." in p.split(";")[0] else p for p in tensor.split("/")]
    return "/".join(p for p in parts if not p.endswith(">.TFLiteTask") and p != "TFLiteTask")


def text_table(rows: list[dict], limit: int | None = None) -> str:
    lines = [f"{'#':>4}  {'op':<26} {'SNR dB':>9} {'rel MSE':>10} {'cosine':>9}  tensor"]
    low = {id(r) for r in worst(rows, 3)}
    for r in rows[:limit] if limit else rows:
        flag = "  <- worst" if id(r) in low else ""
        snr = "identical" if r["snr_db"] == float("inf") else f"{r['snr_db']:.1f}"
        lines.append(
            f"{r['index']:>4}  {r['op'][:26]:<26} {snr:>9} {r['rel_mse']:>10.2e} "
            f"{r['cosine']:>9.5f}  {short_name(r['tensor'])}{flag}"
        )
    if rows and all(r["snr_db"] == float("inf") for r in rows):
        lines.append(f"all {len(rows)} compared tensors are identical")
    return "\n".join(lines)
