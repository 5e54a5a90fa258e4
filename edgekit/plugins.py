"""Discovery of runtime adapters, converters and model formats through entry points.

Plugins register under the ``edgekit.runtimes``, ``edgekit.converters`` and
``edgekit.formats`` entry-point groups (a format is an :class:`edgekit.formats.Format`
declared beside the runtime adapter that runs it). Loading a plugin imports only its
module; the heavy library it wraps is imported when it is used.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, cast

from edgekit.errors import EdgekitError, InternalError, ModelFileError, RuntimeUnavailableError

if TYPE_CHECKING:
    from edgekit.formats import Format
    from edgekit_converters.base import Converter
    from edgekit_runtimes.base import RuntimeAdapter


# Used only where no entry points are installed: the remote runner (a zipapp
# of edgekit's own modules) runs on devices where edgekit is not pip-installed.
BUILTIN = {
    "edgekit.runtimes": {
        "onnxruntime": "edgekit_runtimes.onnxruntime_cpu:OnnxRuntimeCPUAdapter",
        "onnxruntime-gpu": "edgekit_runtimes.onnxruntime_gpu:OnnxRuntimeGPUAdapter",
        "litert": "edgekit_runtimes.litert:LiteRTAdapter",
        "tflite-runtime": "edgekit_runtimes.litert:LegacyTFLiteRuntimeAdapter",
        "openvino": "edgekit_runtimes.openvino_cpu:OpenVINOCPUAdapter",
        "executorch": "edgekit_runtimes.executorch_cpu:ExecuTorchAdapter",
    },
    "edgekit.formats": {
        "onnx": "edgekit_runtimes.onnxruntime_cpu:ONNX_FORMAT",
        "tflite": "edgekit_runtimes.litert:TFLITE_FORMAT",
        "openvino": "edgekit_runtimes.openvino_cpu:OPENVINO_FORMAT",
        "executorch": "edgekit_runtimes.executorch_cpu:EXECUTORCH_FORMAT",
    },
}


def _builtin(group: str) -> list[EntryPoint]:
    return [EntryPoint(name, value, group) for name, value in BUILTIN.get(group, {}).items()]


@cache
def _group(group: str) -> dict[str, object]:
    found = {}
    for ep in entry_points(group=group) or _builtin(group):
        try:
            found[ep.name] = ep.load()
        except ImportError as err:  # a broken plugin is reported, not swallowed
            raise InternalError(f"plugin {ep.name!r} ({ep.value}) failed to import: {err}") from None
    if not found:
        raise InternalError(f"no {group} plugins found: is edgekit installed (pip install -e .)?")
    return found


def runtime_adapters() -> dict[str, type[RuntimeAdapter]]:
    return cast("dict[str, type[RuntimeAdapter]]", dict(_group("edgekit.runtimes")))


def converters() -> dict[str, type[Converter]]:
    return cast("dict[str, type[Converter]]", dict(_group("edgekit.converters")))


def declared_formats() -> dict[str, Format]:
    """The formats plugins declare (see :mod:`edgekit.formats`, which checks and serves them)."""
    return cast("dict[str, Format]", dict(_group("edgekit.formats")))


def get_runtime(name: str):
    """An instance of the named runtime adapter, checked to be usable here."""
    adapters = runtime_adapters()
    if name not in adapters:
        raise RuntimeUnavailableError(f"unknown runtime {name!r}; known: {', '.join(sorted(adapters))}")
    cls = adapters[name]
    missing = cls.missing()
    if missing:
        raise RuntimeUnavailableError(f"runtime {name!r} needs {', '.join(missing)}, which is not installed here")
    return cls()


def runtime_for_format(fmt: str, preferred: str | None = None):
    if preferred:
        adapter = get_runtime(preferred)
        if fmt not in adapter.formats:
            raise RuntimeUnavailableError(f"runtime {preferred!r} does not run {fmt} models")
        return adapter
    candidates = [n for n, cls in runtime_adapters().items() if fmt in cls.formats and not cls.explicit_only]
    for name in candidates:
        if runtime_adapters()[name].available():
            return get_runtime(name)
    if candidates:
        return get_runtime(candidates[0])  # raises with what is missing
    raise RuntimeUnavailableError(f"no runtime adapter runs {fmt} models")


def load_session(adapter, path, threads: int):
    """``adapter.load``, with a runtime's own failure turned into one line naming the file."""
    try:
        return adapter.load(path, threads=threads)
    except EdgekitError:
        raise
    except Exception as err:  # noqa: BLE001 - the runtime's own message, on one line
        raise ModelFileError(f"{path}: {adapter.name} cannot load it ({str(err).splitlines()[0][:300]})") from None
