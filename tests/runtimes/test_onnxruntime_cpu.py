import numpy as np
import pytest

from edgekit_runtimes.onnxruntime_cpu import OnnxRuntimeCPUAdapter
from tests.runtimes.contract import RuntimeAdapterContract, torch_reference


class TestOnnxRuntimeCPU(RuntimeAdapterContract):
    @pytest.fixture
    def adapter(self):
        return OnnxRuntimeCPUAdapter()

    @pytest.fixture
    def model_path(self, tiny_compressed):
        return tiny_compressed / "onnx-fp32" / "model.onnx"

    @pytest.fixture
    def reference(self, tiny_ckpt):
        return torch_reference(tiny_ckpt)


def test_loads_artifact_directory(tiny_compressed):
    s = OnnxRuntimeCPUAdapter().load(tiny_compressed / "onnx-int8-dynamic")
    assert [i.name for i in s.inputs] == ["input_ids", "attention_mask", "token_type_ids"]
    assert s.inputs[0].dtype == "int64" and not s.inputs[0].is_static
    out = s.run({i.name: np.ones((1, 5), np.int64) for i in s.inputs})
    assert out["embeddings"].shape == (1, 32)
