import numpy as np
import pytest

from edgekit.checkpoint import load_checkpoint
from edgekit.data.feeds import tokenize
from edgekit.errors import ParityError
from edgekit_runtimes.base import TensorSpec
from edgekit_runtimes.litert import LegacyTFLiteRuntimeAdapter, LiteRTAdapter
from edgekit_runtimes.torch_eager import TorchEagerAdapter
from tests.runtimes.contract import TEXTS, RuntimeAdapterContract, torch_reference


class TestLiteRT(RuntimeAdapterContract):
    @pytest.fixture
    def adapter(self):
        return LiteRTAdapter()

    @pytest.fixture
    def model_path(self, tiny_tflite):
        return tiny_tflite / "tflite-fp32" / "model.tflite"

    @pytest.fixture
    def reference(self, tiny_ckpt):
        return torch_reference(tiny_ckpt, dtype="int32")


class TestLegacyTFLiteRuntime(TestLiteRT):
    """The same contract, same model. Runs where the legacy package installs (numpy<2); skipped otherwise."""

    @pytest.fixture
    def adapter(self):
        if not LegacyTFLiteRuntimeAdapter.available():
            pytest.skip("tflite-runtime is not installable next to numpy 2 (it needs numpy<2)")
        return LegacyTFLiteRuntimeAdapter()


def test_xnnpack_delegate_is_in_the_executed_plan(tiny_tflite):
    s = LiteRTAdapter().load(tiny_tflite / "tflite-fp32", threads=2)
    assert s.delegated is True
    assert s.details()["xnnpack_delegate"] is True


def test_buckets_pad_to_the_smallest_signature_that_fits(tiny_bucketed_tflite, tiny_ckpt):
    s = LiteRTAdapter().load(tiny_bucketed_tflite / "model.tflite", threads=1)
    assert s.buckets == [16, 32]
    assert s.inputs[0].shape == (1, "sequence") and s.inputs[0].dtype == "int32"
    ck = load_checkpoint(tiny_ckpt)
    specs = [TensorSpec(n, "int64", ("b", "s")) for n in ck.input_names]
    feeds = tokenize(ck.tokenizer, TEXTS, specs, 32)  # padded to the longest text (> 16 tokens)
    assert 16 < feeds["input_ids"].shape[1] < 32
    ref = TorchEagerAdapter().from_checkpoint(ck).run(feeds)["embeddings"]
    got = s.run({k: v.astype(np.int32) for k, v in feeds.items()})["embeddings"]
    np.testing.assert_allclose(got, ref, atol=1e-4)
    with pytest.raises(ValueError, match="exceeds the largest bucket 32"):
        s.run({k: np.zeros((1, 40), np.int32) for k in feeds})


def test_wrong_dtype_is_named(tiny_tflite):
    s = LiteRTAdapter().load(tiny_tflite / "tflite-fp32", threads=1)
    with pytest.raises(TypeError, match="has dtype int64, the model takes int32"):
        s.run({i.name: np.ones((1, 128), np.int64) for i in s.inputs})


def test_not_a_flatbuffer(tmp_path):
    f = tmp_path / "m.tflite"
    f.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        LiteRTAdapter().load(f)


def test_legacy_adapter_refuses_a_model_it_cannot_verify(tiny_tflite, tmp_path, monkeypatch):
    """The self-check logic, exercised with ai-edge-litert standing in for the legacy interpreter."""
    import shutil

    from edgekit_runtimes import selfcheck

    monkeypatch.setattr(LegacyTFLiteRuntimeAdapter, "module", LiteRTAdapter.module)
    legacy = LegacyTFLiteRuntimeAdapter()
    good = tiny_tflite / "tflite-int8-dynamic"
    with pytest.warns(UserWarning, match="unmaintained"):
        assert legacy.load(good).outputs[0].name == "embeddings"
    # recorded outputs that the runtime does not reproduce -> refused, not garbage
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    data = dict(np.load(bad / selfcheck.FILE))
    for k in data:
        if k.startswith("out"):
            data[k] = -data[k] + np.random.default_rng(0).normal(size=data[k].shape).astype(data[k].dtype)
    np.savez(bad / selfcheck.FILE, **data)
    with pytest.warns(UserWarning), pytest.raises(ParityError, match="gives wrong output"):
        legacy.load(bad)
    (bad / selfcheck.FILE).unlink()
    with pytest.warns(UserWarning), pytest.raises(ParityError, match="only runs models it can verify"):
        legacy.load(bad)
