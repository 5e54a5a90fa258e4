import pytest

from edgekit.errors import RuntimeUnavailableError
from edgekit.plugins import converters, get_runtime, runtime_adapters, runtime_for_format


def test_entry_points_register_builtins():
    assert {"torch", "onnxruntime"} <= set(runtime_adapters())
    assert "onnx" in converters()


def test_runtime_lookup():
    assert runtime_for_format("onnx").name == "onnxruntime"
    assert runtime_for_format("hf-checkpoint").name == "torch"
    with pytest.raises(RuntimeUnavailableError, match="unknown runtime 'coreml'"):
        get_runtime("coreml")
    with pytest.raises(RuntimeUnavailableError, match="does not run onnx"):
        runtime_for_format("onnx", "torch")
    with pytest.raises(RuntimeUnavailableError, match="no runtime adapter runs"):
        runtime_for_format("engine")


def test_adapter_reports_missing_library(monkeypatch):
    cls = runtime_adapters()["onnxruntime"]
    monkeypatch.setattr(cls, "requires", ("surely_not_a_module_xyz",))
    assert cls.missing() == ["surely_not_a_module_xyz"]
    with pytest.raises(RuntimeUnavailableError, match="needs surely_not_a_module_xyz"):
        get_runtime("onnxruntime")


def test_builtin_adapters_when_no_entry_points_are_installed(monkeypatch):
    """The remote runner is a zipapp with no package metadata: adapters come from the built-in table."""
    import edgekit.plugins as plugins

    monkeypatch.setattr(plugins, "entry_points", lambda group: [])
    plugins._group.cache_clear()
    try:
        adapters = plugins.runtime_adapters()
        assert {"onnxruntime", "litert", "tflite-runtime", "onnxruntime-gpu"} <= set(adapters)
        assert plugins.runtime_for_format("onnx").name == "onnxruntime"
    finally:
        plugins._group.cache_clear()


def test_gpu_adapter_is_never_the_default():
    assert runtime_adapters()["onnxruntime-gpu"].explicit_only
    assert runtime_for_format("onnx").name == "onnxruntime"
