"""Recognising model files handed to ``edgekit bench``."""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import ModelFileError

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
