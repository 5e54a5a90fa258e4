"""Which GPU providers the adapter offers; runs without a GPU."""

import onnxruntime

from edgekit_runtimes import onnxruntime_gpu


def test_tensorrt_is_dropped_when_its_libraries_do_not_load(monkeypatch):
    listed = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: listed)
    monkeypatch.setattr(onnxruntime_gpu, "tensorrt_loadable", lambda: False)
    assert onnxruntime_gpu.gpu_providers() == ["CUDAExecutionProvider"]
    monkeypatch.setattr(onnxruntime_gpu, "tensorrt_loadable", lambda: True)
    assert onnxruntime_gpu.gpu_providers() == ["TensorrtExecutionProvider", "CUDAExecutionProvider"]


def test_no_gpu_provider_on_the_cpu_package(monkeypatch):
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert onnxruntime_gpu.gpu_providers() == []
