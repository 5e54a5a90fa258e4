"""ONNX Runtime on an NVIDIA GPU: the same contract, plus fp16. Skips where no GPU provider exists."""

import numpy as np
import pytest

from edgekit_runtimes.onnxruntime_gpu import OnnxRuntimeGPUAdapter, gpu_providers
from tests.runtimes.contract import RuntimeAdapterContract, torch_reference

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not gpu_providers(), reason="no CUDA/TensorRT execution provider (no NVIDIA GPU here)"),
]


class TestOnnxRuntimeGPU(RuntimeAdapterContract):
    @pytest.fixture
    def adapter(self):
        return OnnxRuntimeGPUAdapter()

    @pytest.fixture
    def model_path(self, tiny_compressed):
        return tiny_compressed / "onnx-fp32" / "model.onnx"

    @pytest.fixture
    def reference(self, tiny_ckpt):
        return torch_reference(tiny_ckpt, atol=1e-3)


def test_runs_on_the_gpu_provider(tiny_compressed):
    s = OnnxRuntimeGPUAdapter().load(tiny_compressed / "onnx-fp32", threads=1)
    assert s.details()["providers"][0] in ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def test_fp16_variant_matches_fp32(tiny_fp16_onnx, tiny_ckpt):
    feeds, expected, _ = torch_reference(tiny_ckpt)
    s = OnnxRuntimeGPUAdapter().load(tiny_fp16_onnx, threads=1)
    out = s.run({i.name: feeds[i.name] for i in s.inputs})["embeddings"]
    assert out.dtype == np.float32  # inputs and outputs keep their types
    np.testing.assert_allclose(out, expected, atol=2e-2)


def test_fp32_does_its_compute_on_the_gpu(tiny_compressed):
    s = OnnxRuntimeGPUAdapter().load(tiny_compressed / "onnx-fp32", threads=1)
    assert s.details()["compute_ops_on_cpu"] == {}


def test_dynamic_int8_reports_its_cpu_fallback(tiny_compressed):
    # MatMulInteger / DynamicQuantizeLinear have no CUDA kernels: the session
    # loads, but the report must say part of the graph runs on the CPU.
    s = OnnxRuntimeGPUAdapter().load(tiny_compressed / "onnx-int8-dynamic", threads=1)
    assert "MatMulInteger" in s.details()["compute_ops_on_cpu"]
