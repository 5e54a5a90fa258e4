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
