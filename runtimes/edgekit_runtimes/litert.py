"""LiteRT (ai-edge-litert) and the legacy tflite-runtime interpreter.

A ``.tflite`` file may hold several signatures with static shapes (edgekit
writes one per sequence-length bucket, ``seq_<L>``). The session presents one
interface with a dynamic sequence axis: each request goes to the smallest
bucket that fits, zero-padded (token ids, masks and type ids all pad with 0),
one row at a time when the signature has batch size 1.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from edgekit.formats import Format
from edgekit_runtimes.base import RuntimeAdapter, Session, TensorSpec, native_stderr_silenced

TFLITE_IDENTIFIER = b"TFL3"


def is_flatbuffer(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(8)
    return len(head) == 8 and head[4:8] == TFLITE_IDENTIFIER


# The TFLite format, declared once (entry point ``edgekit.formats``: tflite); both interpreters here run it.
# Its export writes one static signature per sequence-length bucket (``export.seq_lens``).
TFLITE_FORMAT = Format(
    "tflite",
    (".tflite",),
    label="TFLite",
    fixed_lengths=True,
    check=lambda path: None if is_flatbuffer(path) else "not a TFLite flatbuffer (no TFL3 identifier)",
    quantizer="edgekit.stages.quantize.tflite_backend",
    precision="edgekit.measure.model_info:tflite_precision",
)


class _Signature:
    def __init__(self, runner, name: str) -> None:
        self.runner = runner
        self.name = name
        details = runner.get_input_details()
        self.inputs = {n: (tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]).name) for n, d in details.items()}
        self.outputs = {n: np.dtype(d["dtype"]).name for n, d in runner.get_output_details().items()}
        shapes = [s for s, _ in self.inputs.values()]
        self.batch = shapes[0][0] if shapes and shapes[0] else 1
        seq = shapes[0][1] if shapes and len(shapes[0]) == 2 else None  # token inputs only
        self.seq_len = seq if seq is None or seq > 0 else None


class _GraphRunner:
    """The interpreter's own inputs and outputs, called like a signature runner: most third-party
    ``.tflite`` files (MediaPipe's, older converters') have no signatures, only the graph's tensors.
    A dimension the graph leaves open (-1 in its shape signature) is resized to each call's arrays."""

    NAME = "graph"

    def __init__(self, interpreter) -> None:
        self._interp = interpreter
        self._in = interpreter.get_input_details()
        self._out = interpreter.get_output_details()
        for kind, tensors in (("input", self._in), ("output", self._out)):
            names = [d["name"] for d in tensors]
            if len(set(names)) != len(names):
                raise ValueError(f"model has no signatures and its {kind} tensors repeat names: {names}")

    def get_input_details(self) -> dict:
        return {d["name"]: {**d, "shape": _open_dims(d)} for d in self._in}

    def get_output_details(self) -> dict:
        return {d["name"]: d for d in self._out}

    def __call__(self, **feeds: np.ndarray) -> dict[str, np.ndarray]:
        resized = False
        for d in self._in:
            arr = feeds[d["name"]]
            if tuple(arr.shape) != tuple(int(x) for x in d["shape"]):
                self._interp.resize_tensor_input(d["index"], list(arr.shape))
                resized = True
        if resized:
            self._interp.allocate_tensors()
            self._in = self._interp.get_input_details()
            self._out = self._interp.get_output_details()
        for d in self._in:
            self._interp.set_tensor(d["index"], feeds[d["name"]])
        self._interp.invoke()
        return {d["name"]: self._interp.get_tensor(d["index"]) for d in self._out}


def _open_dims(detail: dict) -> tuple[int, ...]:
    """A tensor's shape with the dimensions its graph leaves open as -1."""
    sig = detail.get("shape_signature")
    return tuple(int(x) for x in (sig if sig is not None and len(sig) == len(detail["shape"]) else detail["shape"]))


class TFLiteSession(Session):
    def __init__(self, interpreter) -> None:
        self._interp = interpreter
        sigs = interpreter.get_signature_list()
        if sigs:
            self._sigs = [_Signature(interpreter.get_signature_runner(n), n) for n in sigs]
        else:  # no signatures: the graph's own input and output tensors
            self._sigs = [_Signature(_GraphRunner(interpreter), _GraphRunner.NAME)]
        self._sigs.sort(key=lambda s: s.seq_len or 0)
        first = self._sigs[0]
        bucketed = len(self._sigs) > 1
        self.inputs = [
            TensorSpec(
                n,
                dt,
                (shape[0], "sequence") if bucketed and len(shape) == 2 else tuple(d if d > 0 else None for d in shape),
            )
            for n, (shape, dt) in first.inputs.items()
        ]
        self.outputs = [TensorSpec(n, dt, ("batch", None)) for n, dt in first.outputs.items()]
        self.signatures = [(s.name, s.seq_len) for s in self._sigs]
        self.buckets = [s.seq_len for s in self._sigs]
        self.max_seq_len = self.buckets[-1]  # None for image models
        self.delegated = self._has_delegate()

    def details(self) -> dict:
        return {"xnnpack_delegate": self.delegated, "signatures": [name for name, _ in self.signatures]}

    def _has_delegate(self) -> bool:
        """True when a delegate (XNNPACK by default) took over part of the executed plan."""
        try:
            return any(op["op_name"] == "DELEGATE" for op in self._interp._get_ops_details())
        except Exception:  # noqa: BLE001 - private API; absent means we cannot tell
            return False

    def _pick(self, seq: int | None) -> _Signature:
        if seq is None:
            return self._sigs[0]
        for sig in self._sigs:
            if sig.seq_len is None or sig.seq_len >= seq:
                return sig
        raise ValueError(f"sequence length {seq} exceeds the largest bucket {self.buckets[-1]}")

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        first = next(iter(feeds.values()))
        seq = first.shape[1] if first.ndim == 2 else None
        sig = self._pick(seq)
        for name, (_shape, dtype) in sig.inputs.items():
            if name not in feeds:
                raise ValueError(f"missing input {name!r}")
            if feeds[name].dtype != np.dtype(dtype):
                raise TypeError(f"input {name!r} has dtype {feeds[name].dtype}, the model takes {dtype}")
        padded = {}
        for name, arr in feeds.items():
            if sig.seq_len is not None and arr.ndim > 1 and arr.shape[1] < sig.seq_len:
                arr = np.pad(arr, ((0, 0), (0, sig.seq_len - arr.shape[1])))
            padded[name] = np.ascontiguousarray(arr)
        rows = first.shape[0]
        step = sig.batch if sig.batch > 0 else rows
        outs: dict[str, list] = {}
        for lo in range(0, rows, step):
            res = sig.runner(**{n: a[lo : lo + step] for n, a in padded.items()})
            for n, v in res.items():
                outs.setdefault(n, []).append(np.array(v))
        result = {n: np.concatenate(v) for n, v in outs.items()}
        if seq is not None and sig.seq_len is not None and seq < sig.seq_len:
            # per-token outputs come back at the bucket's length: cut them to the length that was fed
            result = {n: v[:, :seq] if v.ndim > 2 and v.shape[1] == sig.seq_len else v for n, v in result.items()}
        return result


class LiteRTAdapter(RuntimeAdapter):
    name = "litert"
    formats = ("tflite",)
    requires = ("ai_edge_litert",)
    description = "LiteRT interpreter (ai-edge-litert), XNNPACK delegate on"
    module = "ai_edge_litert.interpreter"
    isolate = True  # a native abort in the interpreter must not take edgekit down: probe in a subprocess first

    def _interpreter_class(self):
        import importlib

        return importlib.import_module(self.module).Interpreter

    def load(self, path: Path, threads: int = 1) -> Session:
        path = Path(path)
        if path.is_dir():
            path = path / "model.tflite"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such model file")
        if not is_flatbuffer(path):
            raise ValueError(f"{path}: not a TFLite flatbuffer (no TFL3 identifier)")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with warnings.catch_warnings(), native_stderr_silenced():
            warnings.simplefilter("ignore")
            interp = self._interpreter_class()(model_path=str(path), num_threads=threads)
            interp.allocate_tensors()
        return TFLiteSession(interp)


class LegacyTFLiteRuntimeAdapter(LiteRTAdapter):
    """The old ``tflite-runtime`` package, for devices that cannot install ai-edge-litert.

    tflite-runtime 2.14 rejects newer op versions (GATHER_ND v5,
    FULLY_CONNECTED v12), needs numpy<2, and was seen to return silently wrong
    output (cosine 0.06) on a dynamic-int8 model. So this adapter refuses to
    load an edgekit artifact whose recorded self-check outputs it does not
    reproduce (see ``edgekit_runtimes.selfcheck``).
    """

    name = "tflite-runtime"
    requires = ("tflite_runtime",)
    description = "legacy tflite-runtime (old devices only; self-checked on load)"
    module = "tflite_runtime.interpreter"

    def load(self, path: Path, threads: int = 1) -> Session:
        from edgekit.errors import ParityError
        from edgekit_runtimes import selfcheck

        warnings.warn(
            "tflite-runtime is unmaintained: prefer ai-edge-litert; outputs are self-checked on load", stacklevel=2
        )
        path = Path(path)
        model = path / "model.tflite" if path.is_dir() else path
        try:
            session = super().load(model, threads)
        except ValueError as err:
            if "op" in str(err).lower() or "version" in str(err).lower():
                raise ParityError(
                    f"{model}: tflite-runtime cannot run this model ({str(err).splitlines()[0]}); use ai-edge-litert"
                ) from None
            raise
        check = model.parent / selfcheck.FILE
        if not check.is_file():
            raise ParityError(
                f"{model}: no {selfcheck.FILE} beside it; tflite-runtime only runs models it can "
                "verify (edgekit artifacts carry one)"
            )
        selfcheck.verify(session, check, f"{model}: tflite-runtime (use ai-edge-litert instead)")
        return session
