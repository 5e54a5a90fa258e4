"""ONNX Runtime on an NVIDIA GPU: the TensorRT execution provider when present, else CUDA.

Needs the ``onnxruntime-gpu`` package and a visible GPU. ``available()`` asks
ONNX Runtime which providers it has, so on a machine without a GPU the adapter
reports itself unavailable (and its tests skip) instead of silently running on
CPU. Sessions refuse to start if ONNX Runtime would fall back to the CPU.
"""

from __future__ import annotations

from pathlib import Path

from edgekit_runtimes.base import Session
from edgekit_runtimes.onnxruntime_cpu import OnnxRuntimeCPUAdapter, OrtSession

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
# onnxruntime-gpu lists TensorRT as available whether or not TensorRT is
# installed; creating a session then prints an "EP Error" and retries on CUDA.
TENSORRT_LIBRARIES = ("libnvinfer.so.10", "libnvinfer.so")


def tensorrt_loadable() -> bool:
    import ctypes

    for name in TENSORRT_LIBRARIES:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def gpu_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    listed = [p for p in GPU_PROVIDERS if p in ort.get_available_providers()]
    if "TensorrtExecutionProvider" in listed and not tensorrt_loadable():
        listed.remove("TensorrtExecutionProvider")
    return listed


class OnnxRuntimeGPUAdapter(OnnxRuntimeCPUAdapter):
    name = "onnxruntime-gpu"
    description = "ONNX Runtime, TensorRT or CUDA execution provider (NVIDIA GPU)"
    explicit_only = True  # never picked by default for a format: ask for it by name

    @classmethod
    def missing(cls) -> list[str]:
        missing = super().missing()
        if missing:
            return missing
        return [] if gpu_providers() else ["CUDA provider (onnxruntime-gpu + NVIDIA GPU)"]

    def load(self, path: Path, threads: int = 1) -> Session:
        import onnxruntime as ort

        path = Path(path)
        if path.is_dir():
            path = path / "model.onnx"
        providers = gpu_providers()
        if not providers:
            raise RuntimeError("no GPU execution provider: install onnxruntime-gpu on a machine with an NVIDIA GPU")
        sess = ort.InferenceSession(
            str(path), self.session_options(threads), providers=[*providers, "CPUExecutionProvider"]
        )
        used = sess.get_providers()
        if not any(p in used for p in GPU_PROVIDERS):
            raise RuntimeError(f"ONNX Runtime would run this model on {used}, not on the GPU")
        session = GpuOrtSession(sess)
        session.cpu_ops = placed_on_cpu(path, providers, self.session_options(threads), session.inputs)
        return session


# ONNX Runtime keeps small shape computations on the CPU on purpose; only the
# other op types on the CPU mean real work is copied off the GPU and back.
SHAPE_OPS = frozenset(
    {
        "Shape",
        "Size",
        "Gather",
        "GatherElements",
        "Unsqueeze",
        "Squeeze",
        "Concat",
        "Slice",
        "Cast",
        "Reshape",
        "ConstantOfShape",
        "Constant",
        "Equal",
        "Where",
        "Range",
        "Expand",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Less",
        "Greater",
        "Not",
        "And",
        "Or",
        "Identity",
        "ReduceProd",
        "Tile",
        "Min",
        "Max",
        "Floor",
        "Ceil",
        "Neg",
    }
)


def placed_on_cpu(path: Path, providers: list[str], options, inputs) -> dict[str, int]:
    """Op types the GPU providers left on the CPU, counted from one profiled run of a probe session
    on inputs synthesized from ``inputs`` (the model's input specs; batch 1, 8 tokens)."""
    import json
    import os
    import tempfile

    import onnxruntime as ort

    from edgekit.data.feeds import synthesize

    with tempfile.TemporaryDirectory() as tmp:
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "probe")
        probe = ort.InferenceSession(str(path), options, providers=[*providers, "CPUExecutionProvider"])
        try:
            probe.run(None, synthesize(inputs, batch_size=1, seq_len=8))
        except Exception:  # an input the probe cannot guess (e.g. an image size): no placement figures
            probe.end_profiling()
            return {}
        events = json.loads(Path(probe.end_profiling()).read_text())
    ops: dict[str, set[str]] = {}
    for e in events:
        args = e.get("args") or {}
        if e.get("cat") == "Node" and args.get("provider") == "CPUExecutionProvider":
            ops.setdefault(args.get("op_name", "?"), set()).add(e.get("name", "").removesuffix("_kernel_time"))
    return {op: len(nodes) for op, nodes in sorted(ops.items())}


class GpuOrtSession(OrtSession):
    def __init__(self, sess) -> None:
        super().__init__(sess)
        self.cpu_ops: dict[str, int] = {}  # op type -> nodes on the CPU; the adapter's placement probe fills it

    def details(self) -> dict:
        heavy = {op: n for op, n in self.cpu_ops.items() if op not in SHAPE_OPS}
        return {"providers": self._sess.get_providers(), "cpu_ops": self.cpu_ops, "compute_ops_on_cpu": heavy}
