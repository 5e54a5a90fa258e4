"""Recognising model files handed to ``edgekit bench``."""

from __future__ import annotations

from pathlib import Path

from edgekit import formats
from edgekit.errors import InputError, ModelFileError


def detect_format(path: Path) -> str:
    """The registered format of the model file ``path`` (by its suffix), checked to look like one."""
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}")
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory; pass the model file (e.g. {path}/model.onnx)")
    fmt = formats.by_suffix(path)
    if fmt is None:
        raise ModelFileError(
            f"{path}: unknown model format {path.suffix!r} (expected {formats.either(formats.suffixes())})"
        )
    problem = fmt.problem(path)
    if problem:
        raise ModelFileError(f"{path}: {problem}")
    return fmt.name


def token_limits(path: Path, fmt: str) -> dict[str, int]:
    """What the ``fmt`` model at ``path`` takes as token ids (``vocab``) and positions (``positions``),
    where its file shows it (see :func:`onnx_token_limits`); empty when it does not."""
    return formats.get(fmt).limits(path)


def onnx_problem(path: Path) -> str | None:
    """A cheap check that the file is an ONNX protobuf, before a runtime sees it (the ONNX format's
    ``check``): why it is not one, or None."""
    try:
        import onnx
    except ImportError:
        return None  # the runtime's own loader will judge it
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - any parse failure means "not ONNX"
        return f"not a valid ONNX model ({type(err).__name__})"
    if not model.graph.node and not model.graph.input:
        return "not a valid ONNX model (empty graph)"
    return None


def onnx_token_limits(path: Path) -> dict[str, int]:
    """What an ONNX text model's embedding tables allow, where its graph shows it: ``vocab``, the rows of the
    table ``input_ids`` indexes, and ``positions``, the rows of its position table. Empty for other models."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    rows = {t.name: int(t.dims[0]) for t in graph.initializer if t.dims}
    ids = {i.name for i in graph.input if "input_ids" in i.name}
    limits = {}
    for n in graph.node:  # in topological order: a Cast of the ids is seen before what reads it
        if n.op_type == "Cast" and n.input[0] in ids:
            ids.add(n.output[0])
        elif n.op_type == "Gather" and len(n.input) == 2 and n.input[0] in rows:
            if n.input[1] in ids:
                limits["vocab"] = rows[n.input[0]]
            elif "position_embeddings" in n.input[0]:
                limits["positions"] = rows[n.input[0]]
        elif n.op_type in ("EmbedLayerNormalization", "QEmbedLayerNormalization") and len(n.input) > 3:
            # ONNX Runtime's fused embeddings: ids, segment ids, word, position and segment tables, ...
            if n.input[0] in ids and n.input[2] in rows:
                limits["vocab"] = rows[n.input[2]]
            if n.input[3] in rows:
                limits["positions"] = rows[n.input[3]]
    return limits


def check_token_inputs(feeds: dict, path: Path, limits: dict[str, int], source: object) -> None:
    """User-given arrays (from ``source``) within ``limits`` (:func:`onnx_token_limits` of ``path``): no row
    longer than the position table, no token id outside the vocabulary."""
    vocab, positions = limits.get("vocab"), limits.get("positions")
    for name, arr in feeds.items():
        if positions is not None and arr.ndim > 1 and arr.shape[1] > positions:
            raise InputError(
                f"{source}: {name} has {arr.shape[1]} tokens per row, beyond the {positions} positions {path} takes"
            )
        if vocab is not None and "input_ids" in name and arr.size and (arr.min() < 0 or arr.max() >= vocab):
            bad = arr.max() if arr.max() >= vocab else arr.min()
            raise InputError(
                f"{source}: {name} holds token id {bad}, outside the vocabulary of {path} (ids 0 to "
                f"{vocab - 1}); make the ids with the model's own tokenizer"
            )


# --- precision: read from the model, for files edgekit did not describe in a manifest ---------------

# ONNX operators that only a quantized graph holds (the standard ones and ONNX Runtime's com.microsoft ones)
ONNX_INT8_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "MatMulInteger",
        "ConvInteger",
        "QLinearMatMul",
        "QLinearConv",
        "QGemm",
        "QAttention",
        "QEmbedLayerNormalization",
        "DynamicQuantizeMatMul",
        "MatMulIntegerToFloat",
        "DynamicQuantizeLSTM",
    }
)
ONNX_INT4_OPS = frozenset({"MatMulNBits", "MatMulBnb4"})


def detect_precision(path: Path, fmt: str) -> str:
    """What the weights of the model file ``path`` are stored as: ``int8`` (quantized operators or int8
    weights), ``int4``, ``fp16``, ``fp32``, or ``unknown`` where the file (or a missing reader) does not say."""
    try:
        return formats.get(fmt).weights_precision(path)
    except Exception:  # noqa: BLE001 - a reader's failure only means "not known"; the runtime judges the file
        return "unknown"


def by_weight(counts: dict[str, int]) -> str:
    """The precision of the weights from the bytes stored per kind (integer kinds win: a quantized model
    keeps some float tensors, e.g. biases, scales and layer norms)."""
    for kind in ("int4", "int8"):
        if counts.get(kind):
            return kind
    floats = {k: v for k, v in counts.items() if k in ("fp16", "fp32") and v}
    return max(floats, key=lambda k: floats[k]) if floats else "unknown"


def onnx_precision(path: Path) -> str:
    import onnx
    from onnx import TensorProto

    graph = onnx.load(str(path), load_external_data=False).graph
    ops = {n.op_type for n in graph.node}
    if ops & ONNX_INT4_OPS:
        return "int4"
    if ops & ONNX_INT8_OPS:
        return "int8"
    kinds = {
        TensorProto.INT8: "int8",
        TensorProto.UINT8: "int8",
        TensorProto.FLOAT16: "fp16",
        TensorProto.FLOAT: "fp32",
    }
    for k in ("INT4", "UINT4"):
        if hasattr(TensorProto, k):
            kinds[getattr(TensorProto, k)] = "int4"
    counts: dict[str, int] = {}
    # weights are initializers, or (in some exporters' graphs, e.g. Paddle's) Constant nodes' tensors
    constants = [a.t for n in graph.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"]
    for t in [*graph.initializer, *constants]:
        kind = kinds.get(t.data_type)
        if kind is not None and t.dims:  # scalars (shape constants, zero points) say nothing of the weights
            n = 1
            for d in t.dims:
                n *= int(d)
            counts[kind] = counts.get(kind, 0) + n
    if counts.get("int8", 0) and counts.get("int8", 0) < 64:
        counts.pop("int8")  # a few bytes of int8 (a lookup or a mask), not quantized weights
    return by_weight(counts)


def tflite_precision(path: Path) -> str:
    """From the flatbuffer's constant tensors (those with a buffer), read with LiteRT's generated schema."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        from tflite_runtime import schema_py_generated as schema  # type: ignore[no-redef]

    buf = path.read_bytes()
    model = schema.Model.GetRootAs(buf, 0)
    kinds = {
        schema.TensorType.INT8: "int8",
        schema.TensorType.UINT8: "int8",
        schema.TensorType.FLOAT16: "fp16",
        schema.TensorType.FLOAT32: "fp32",
    }
    for k in ("INT4", "UINT4"):
        if hasattr(schema.TensorType, k):
            kinds[getattr(schema.TensorType, k)] = "int4"
    counts: dict[str, int] = {}
    for g in range(model.SubgraphsLength()):
        sub = model.Subgraphs(g)
        for i in range(sub.TensorsLength()):
            t = sub.Tensors(i)
            kind = kinds.get(t.Type())
            if kind is None or not t.Buffer():
                continue
            data = model.Buffers(t.Buffer())
            size = data.DataLength() if data is not None else 0
            if not size and data is not None and data.Size():  # a model over 2 GB keeps buffers after the tables
                size = int(data.Size())
            if size:
                counts[kind] = counts.get(kind, 0) + size
    return by_weight(counts)
