"""ONNX Runtime on CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.formats import Format
from edgekit_runtimes.base import RuntimeAdapter, Session, TensorSpec

# The ONNX format, declared once (entry point ``edgekit.formats``: onnx); every ONNX runtime adapter runs it.
ONNX_FORMAT = Format(
    "onnx",
    (".onnx",),
    label="ONNX",
    check="edgekit.measure.model_info:onnx_problem",
    token_limits="edgekit.measure.model_info:onnx_token_limits",
    precision="edgekit.measure.model_info:onnx_precision",
    quantizer="edgekit.stages.quantize.onnx_backend",
)

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def _spec(arg) -> TensorSpec:
    dtype = _ORT_TYPES.get(arg.type, arg.type.replace("tensor(", "").rstrip(")"))
    shape = tuple(d if isinstance(d, int) else (d or None) for d in (arg.shape or ()))
    return TensorSpec(arg.name, dtype, shape)


class OrtSession(Session):
    def __init__(self, sess) -> None:
        self._sess = sess
        self.inputs = [_spec(a) for a in sess.get_inputs()]
        self.outputs = [_spec(a) for a in sess.get_outputs()]
        self._names = [o.name for o in self.outputs]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._names, self._sess.run(self._names, feeds)))


class OnnxRuntimeCPUAdapter(RuntimeAdapter):
    name = "onnxruntime"
    formats = ("onnx",)
    requires = ("onnxruntime",)
    description = "ONNX Runtime, CPU execution provider"
    providers: tuple[str, ...] = ("CPUExecutionProvider",)

    def session_options(self, threads: int):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        return so

    def load(self, path: Path, threads: int = 1) -> Session:
        import onnxruntime as ort

        path = Path(path)
        if path.is_dir():
            path = path / "model.onnx"
        sess = ort.InferenceSession(str(path), self.session_options(threads), providers=list(self.providers))
        return OrtSession(sess)
