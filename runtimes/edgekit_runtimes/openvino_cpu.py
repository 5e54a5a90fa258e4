"""OpenVINO Runtime on CPU, and the OpenVINO IR format it runs.

An OpenVINO IR model is two files: ``model.xml`` (the graph) and ``model.bin``
(the weights) beside it; the ``.xml`` is the file recipes, manifests and
``edgekit bench`` name. Batch and sequence axes stay dynamic.

The CPU plugin is compiled for latency (one stream, ``INFERENCE_NUM_THREADS``
threads) in float32: on CPUs with bfloat16 support (AVX512-BF16, AMX) the
plugin's default runs float layers in bfloat16, which moved MiniLM's fp32
outputs by up to 5e-3 (measured); an int8 model keeps its int8 layers either
way. ``openvino`` is imported only when a model is loaded, with its usage telemetry off
(:func:`import_openvino`).
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading
from pathlib import Path

import numpy as np

from edgekit.formats import Format
from edgekit_runtimes.base import RuntimeAdapter, Session, TensorSpec

WEIGHTS_SUFFIX = ".bin"
TELEMETRY = "openvino_telemetry"


@contextlib.contextmanager
def telemetry_hidden():
    """Import OpenVINO tools with their telemetry package hidden: each then uses its own no-op stand-in.

    ``import openvino`` (through its model converter) sends an "import" event to Intel's analytics and
    writes a client id and usage counts under ``~/intel`` unless the user opted out; NNCF does the same.
    edgekit sends nothing anywhere and writes nothing outside its outputs."""
    saved = {k: m for k, m in sys.modules.items() if k == TELEMETRY or k.startswith(TELEMETRY + ".")}
    for k in saved:
        del sys.modules[k]
    sys.modules[TELEMETRY] = None  # type: ignore[assignment]  # `import openvino_telemetry` -> ImportError
    try:
        yield
    finally:
        del sys.modules[TELEMETRY]
        sys.modules.update(saved)


def import_openvino():
    """``openvino``, imported with its telemetry off (unless something imported it before)."""
    if "openvino" not in sys.modules:
        with telemetry_hidden():
            import openvino  # noqa: F401
    import openvino as ov

    return ov


def ir_problem(path: Path) -> str | None:
    """Why ``path`` is not an OpenVINO IR graph with its weights beside it (the format's ``check``), or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as err:
        return f"cannot read it ({err.strerror or err})"
    if b"<net" not in head:
        return "not an OpenVINO IR model (no <net> element)"
    weights = Path(path).with_suffix(WEIGHTS_SUFFIX)
    if not weights.is_file():
        return f"its weights file {weights.name} is not beside it"
    return None


def ir_token_limits(path: Path) -> dict[str, int]:
    """What an IR text model's embedding tables allow: ``vocab``, the rows of the table ``input_ids``
    indexes, and ``positions``, the rows of the position table (found by name). Empty for other models."""
    ov = import_openvino()
    model = ov.Core().read_model(str(path))
    limits: dict[str, int] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Gather":
            continue
        table, table_name = _source(op.input_value(0), ("Convert", "Subtract", "Multiply", "FakeQuantize"))
        ids, _ = _source(op.input_value(1), ("Convert",))
        if table is None or table.get_type_name() != "Constant" or len(table.get_output_shape(0)) != 2:
            continue
        rows = int(table.get_output_shape(0)[0])
        if ids is not None and ids.get_type_name() == "Parameter" and "input_ids" in ids.get_friendly_name():
            limits["vocab"] = rows
        elif "position_embeddings" in table_name:
            limits["positions"] = rows
    return limits


def _source(value, through: tuple[str, ...]):
    """The node that produces ``value``, looking through the given element-wise ops (a weight's
    decompression), and the names seen on the way."""
    node = value.get_node()
    names = [node.get_friendly_name()]
    while node.get_type_name() in through and node.get_input_size():
        node = node.input_value(0).get_node()
        names.append(node.get_friendly_name())
    return node, " ".join(names)


_IR_CONST = re.compile(r'<data\s+element_type="(\w+)"[^>]*?\ssize="(\d+)"')
_IR_KINDS = {"i8": "int8", "u8": "int8", "i4": "int4", "u4": "int4", "f16": "fp16", "f32": "fp32"}


def openvino_precision(path: Path) -> str:
    """From an OpenVINO IR's .xml: FakeQuantize layers (int8), else the bytes its constants store per type."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if 'type="FakeQuantize"' in text:
        return "int8"
    counts: dict[str, int] = {}
    for element_type, size in _IR_CONST.findall(text):
        kind = _IR_KINDS.get(element_type)
        if kind is not None:
            counts[kind] = counts.get(kind, 0) + int(size)
    from edgekit.measure.model_info import by_weight

    return by_weight(counts)


# The OpenVINO IR format, declared once (entry point ``edgekit.formats``: openvino). Dynamic shapes: no buckets.
OPENVINO_FORMAT = Format(
    "openvino",
    (".xml",),
    label="OpenVINO IR",
    check=ir_problem,
    token_limits=ir_token_limits,
    quantizer="edgekit.stages.quantize.openvino_backend",
    precision=openvino_precision,
    companions=(".bin",),
)


def _spec(port, fallback: str) -> TensorSpec:
    names = port.get_names()
    name = port.get_any_name() if names else fallback
    dtype = np.dtype(port.get_element_type().to_dtype()).name
    shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    return TensorSpec(name, dtype, shape)


def _type_name(value) -> str:
    """``f32`` for OpenVINO's ``Type.f32`` (a plain string stays as it is)."""
    return value.get_type_name() if hasattr(value, "get_type_name") else str(value)


class OpenVINOSession(Session):
    def __init__(self, compiled, details: dict) -> None:
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()  # one infer request: one call at a time
        self.inputs = [_spec(p, f"input_{i}") for i, p in enumerate(compiled.inputs)]
        self.outputs = [_spec(p, f"output_{i}") for i, p in enumerate(compiled.outputs)]
        self._details = details

    def details(self) -> dict:
        return dict(self._details)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ordered = []
        for spec in self.inputs:
            if spec.name not in feeds:
                raise ValueError(f"missing input {spec.name!r}")
            arr = feeds[spec.name]
            if arr.dtype != np.dtype(spec.dtype):
                raise TypeError(f"input {spec.name!r} has dtype {arr.dtype}, the model takes {spec.dtype}")
            ordered.append(np.ascontiguousarray(arr))
        with self._lock:
            # share_outputs=False: the results are copies, not views of buffers the next call overwrites
            result = self._request.infer(ordered, share_inputs=True, share_outputs=False)
            return {spec.name: np.asarray(result[i]) for i, spec in enumerate(self.outputs)}


class OpenVINOCPUAdapter(RuntimeAdapter):
    name = "openvino"
    formats = ("openvino",)
    requires = ("openvino",)
    description = "OpenVINO Runtime, CPU plugin (latency hint, float32 precision)"
    device = "CPU"
    # Float layers in float32, as the model was exported; "bf16" or "f16" trade fidelity for speed on CPUs
    # that have them (the plugin's own default is bf16 where the CPU supports it).
    precision_hint = "f32"

    def config(self, threads: int) -> dict:
        return {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads,
            "NUM_STREAMS": 1,
            "INFERENCE_PRECISION_HINT": self.precision_hint,
        }

    def load(self, path: Path, threads: int = 1) -> Session:
        ov = import_openvino()
        path = OPENVINO_FORMAT.model_in(path)
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(path)), self.device, self.config(threads))
        details = {
            "device": self.device,
            "threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
            "inference_precision": _type_name(compiled.get_property("INFERENCE_PRECISION_HINT")),
            "openvino": ov.get_version().split("-")[0],
        }
        return OpenVINOSession(compiled, details)
