"""ExecuTorch on CPU through its XNNPACK delegate, and the ExecuTorch program format (``.pte``) it runs.

An ExecuTorch artifact is ``model.pte`` (the program, its XNNPACK-delegated graph and weights) and
``model.json`` beside it: the names, dtypes and shapes of the inputs and outputs (a ``.pte`` keeps
positions and sizes, not names) and the weights' precision (an XNNPACK blob does not show it). Batch and
sequence axes are dynamic up to the bounds the export set (``null`` in the shapes; ``max_shape`` holds
the bounds).

The runtime is the ``executorch`` package's Python bindings, which take and return torch tensors: a
device that runs ``.pte`` files through Python needs torch beside them (the C++ runtime, not packaged
here, does not). ``executorch`` is imported only when a model is loaded.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
from pathlib import Path

import numpy as np

from edgekit.formats import Format
from edgekit_runtimes.base import RuntimeAdapter, Session, TensorSpec

_POOL_THREADS: int | None = None  # the size of XNNPACK's process-wide thread pool, once a load has set it

IO_SUFFIX = ".json"
MAGIC = b"ET"  # a .pte flatbuffer's file identifier starts with "ET" (ET12, ...), at bytes 4-7


def io_path(path: Path) -> Path:
    return Path(path).with_suffix(IO_SUFFIX)


def pte_problem(path: Path) -> str | None:
    """Why ``path`` is not an ExecuTorch program with its I/O description beside it (the format's check)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as err:
        return f"cannot read it ({err.strerror or err})"
    if head[4:6] != MAGIC:
        return "not an ExecuTorch program (no ET file identifier)"
    if not io_path(path).is_file():
        return f"its I/O description {io_path(path).name} is not beside it (edgekit writes it at export)"
    return None


def read_io(path: Path) -> dict:
    try:
        return json.loads(io_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{io_path(path)}: cannot read the I/O description ({err})") from None


def pte_precision(path: Path) -> str:
    """The precision the export or quantize stage recorded beside the program."""
    try:
        return str(read_io(path).get("precision") or "unknown")
    except ValueError:
        return "unknown"


# The ExecuTorch program format (entry point ``edgekit.formats``: executorch). Dynamic shapes up to bounds.
EXECUTORCH_FORMAT = Format(
    "executorch",
    (".pte",),
    label="ExecuTorch",
    check=pte_problem,
    quantizer="edgekit.stages.quantize.executorch_backend",
    precision=pte_precision,
    companions=(IO_SUFFIX,),
)


def _specs(entries: list[dict]) -> list[TensorSpec]:
    return [TensorSpec(e["name"], e["dtype"], tuple(e["shape"])) for e in entries]


class ExecuTorchSession(Session):
    def __init__(self, method, described: dict, threads: int) -> None:
        self._method = method
        self._lock = threading.Lock()  # one method's planned memory: one call at a time
        self.inputs = _specs(described["inputs"])
        self.outputs = _specs(described["outputs"])
        self._max = described.get("max_shape") or {}  # the export's upper bounds per input (checked in run)
        self._threads = threads

    def details(self) -> dict:
        return {"backend": "XnnpackBackend", "threads": self._threads, "max_shape": self._max}

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = []
        for spec in self.inputs:
            if spec.name not in feeds:
                raise ValueError(f"missing input {spec.name!r}")
            arr = np.ascontiguousarray(feeds[spec.name])
            if arr.dtype != np.dtype(spec.dtype):
                raise TypeError(f"input {spec.name!r} has dtype {arr.dtype}, the model takes {spec.dtype}")
            bound = self._max.get(spec.name)
            if bound and any(d > b for d, b in zip(arr.shape[1:], bound[1:])):
                raise ValueError(f"input {spec.name!r} of shape {arr.shape} is over the exported bounds {bound}")
            arrays.append(arr)
        rows = arrays[0].shape[0] if arrays and arrays[0].ndim else 1
        if rows == 1 or not self._max:
            return self._call(arrays)
        # the program takes batch 1 (see the converter): a batch runs row by row, as a device would
        parts = [self._call([a[i : i + 1] for a in arrays]) for i in range(rows)]
        return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}

    def _call(self, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with self._lock:
            out = self._method.execute([torch.from_numpy(a) for a in arrays])
        return {spec.name: out[i].detach().numpy().copy() for i, spec in enumerate(self.outputs)}


class ExecuTorchAdapter(RuntimeAdapter):
    name = "executorch"
    formats = ("executorch",)
    requires = ("executorch", "torch")
    description = "ExecuTorch Python runtime, XNNPACK delegate (CPU)"

    def load(self, path: Path, threads: int = 1) -> Session:
        path = EXECUTORCH_FORMAT.model_in(path)
        described = read_io(path)
        from edgekit_runtimes.base import native_stderr_silenced

        # the runtime logs its CPU probing and thread pool to stderr (through Python, and natively)
        with native_stderr_silenced(), contextlib.redirect_stderr(io.StringIO()):
            from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
            from executorch.runtime import Runtime

            global _POOL_THREADS
            if _POOL_THREADS is None:
                # XNNPACK's pool is the process's, sized once, by the first load: resetting a pool that has
                # run deadlocks in its next parallel call once onnxruntime is loaded in the same process
                # (seen with executorch 1.5.1 and onnxruntime 1.32). Benchmarks run each runtime in its own
                # process, so the first load is the only one there.
                _unsafe_reset_threadpool(threads)
                _POOL_THREADS = threads
            method = Runtime.get().load_program(path).load_method("forward")
        return ExecuTorchSession(method, described, _POOL_THREADS)
