import numpy as np
import pytest

from edgekit.checkpoint import load_checkpoint
from edgekit.feeds import tokenize
from edgekit_runtimes.base import TensorSpec
from edgekit_runtimes.onnxruntime_cpu import OnnxRuntimeCPUAdapter
from edgekit_runtimes.torch_eager import TorchEagerAdapter
from tests.runtimes.contract import RuntimeAdapterContract

TEXTS = ["the quick brown fox", "a longer sentence about the state of the union and its budget"]


class TestOnnxRuntimeCPU(RuntimeAdapterContract):
    @pytest.fixture
    def adapter(self):
        return OnnxRuntimeCPUAdapter()

    @pytest.fixture
    def model_path(self, tiny_compressed):
        return tiny_compressed / "onnx-fp32" / "model.onnx"

    @pytest.fixture
    def reference(self, tiny_ckpt):
        ck = load_checkpoint(tiny_ckpt)
        specs = [TensorSpec(n, "int64", ("b", "s")) for n in ck.input_names]
        feeds = tokenize(ck.tokenizer, TEXTS, specs, 32)
        expected = TorchEagerAdapter().from_checkpoint(ck).run(feeds)["embeddings"]
        return feeds, expected, 1e-4


def test_loads_artifact_directory(tiny_compressed):
    s = OnnxRuntimeCPUAdapter().load(tiny_compressed / "onnx-int8-dynamic")
    assert [i.name for i in s.inputs] == ["input_ids", "attention_mask", "token_type_ids"]
    assert s.inputs[0].dtype == "int64" and not s.inputs[0].is_static
    out = s.run({i.name: np.ones((1, 5), np.int64) for i in s.inputs})
    assert out["embeddings"].shape == (1, 32)
