"""Recognising model files handed to ``edgekit bench``."""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import InputError, ModelFileError

FORMATS_BY_SUFFIX = {".onnx": "onnx", ".tflite": "tflite"}


def detect_format(path: Path) -> str:
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}")
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory; pass the model file (e.g. {path}/model.onnx)")
    fmt = FORMATS_BY_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        raise ModelFileError(f"{path}: unknown model format {path.suffix!r} (expected .onnx or .tflite)")
    if fmt == "onnx":
        check_onnx(path)
    elif fmt == "tflite":
        from edgekit_runtimes.litert import is_flatbuffer

        if not is_flatbuffer(path):
            raise ModelFileError(f"{path}: not a TFLite flatbuffer (no TFL3 identifier)")
    return fmt


def check_onnx(path: Path) -> None:
    """A cheap check that the file is an ONNX protobuf, before a runtime sees it."""
    try:
        import onnx
    except ImportError:
        return  # the runtime's own loader will judge it
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - any parse failure means "not ONNX"
        raise ModelFileError(f"{path}: not a valid ONNX model ({type(err).__name__})") from None
    if not model.graph.node and not model.graph.input:
        raise ModelFileError(f"{path}: not a valid ONNX model (empty graph)")


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
