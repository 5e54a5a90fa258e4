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


def gpu_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return [p for p in GPU_PROVIDERS if p in ort.get_available_providers()]


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
        sess = ort.InferenceSession(str(path), self.session_options(threads), providers=[*providers, "CPUExecutionProvider"])
        used = sess.get_providers()
        if not any(p in used for p in GPU_PROVIDERS):
            raise RuntimeError(f"ONNX Runtime would run this model on {used}, not on the GPU")
        return GpuOrtSession(sess)


class GpuOrtSession(OrtSession):
    def details(self) -> dict:
        return {"providers": self._sess.get_providers()}
