"""The contract every runtime adapter must meet. A new adapter's test module
subclasses :class:`RuntimeAdapterContract` and provides three fixtures:
``adapter`` (an instance), ``model_path`` (a model it runs) and ``reference``
(``(feeds, expected_outputs, atol)`` computed independently)."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit_runtimes.base import RuntimeAdapter, Session

TEXTS = ["the quick brown fox", "a longer sentence about the state of the union and its budget"]


def torch_reference(ckpt_path, dtype: str = "int64", atol: float = 1e-4):
    """``(feeds, expected, atol)`` for the contract: token feeds of ``TEXTS`` cast to ``dtype``
    and the PyTorch reference embeddings for them."""
    from edgekit.checkpoint import load_checkpoint
    from edgekit.data.feeds import tokenize
    from edgekit_runtimes.base import TensorSpec
    from edgekit_runtimes.torch_eager import TorchEagerAdapter

    ck = load_checkpoint(ckpt_path)
    specs = [TensorSpec(n, "int64", ("b", "s")) for n in ck.input_names]
    feeds = tokenize(ck.tokenizer, TEXTS, specs, 32)
    expected = TorchEagerAdapter().from_checkpoint(ck).run(feeds)["embeddings"]
    return {k: v.astype(dtype) for k, v in feeds.items()}, expected, atol


class RuntimeAdapterContract:
    def test_declares_name_formats_and_requirements(self, adapter):
        assert isinstance(adapter, RuntimeAdapter)
        assert adapter.name and adapter.formats and adapter.requires
        assert adapter.available() and adapter.missing() == []

    def test_is_registered_as_entry_point(self, adapter):
        from edgekit.plugins import runtime_adapters

        assert runtime_adapters()[adapter.name] is type(adapter)

    def test_load_declares_inputs_and_outputs(self, adapter, model_path):
        session = adapter.load(model_path, threads=1)
        assert isinstance(session, Session)
        assert session.inputs and session.outputs
        for spec in session.inputs + session.outputs:
            assert spec.name and spec.dtype

    def test_run_matches_reference(self, adapter, model_path, reference):
        feeds, expected, atol = reference
        session = adapter.load(model_path, threads=1)
        out = session.run({s.name: feeds[s.name] for s in session.inputs})
        name = session.outputs[0].name
        assert set(out) >= {name}
        assert out[name].shape == expected.shape
        np.testing.assert_allclose(out[name], expected, atol=atol, rtol=0)

    def test_run_is_deterministic_and_thread_count_does_not_change_results(self, adapter, model_path, reference):
        feeds, _, atol = reference
        one = adapter.load(model_path, threads=1)
        two = adapter.load(model_path, threads=2)
        f = {s.name: feeds[s.name] for s in one.inputs}
        a, b, c = one.run(f), one.run(f), two.run(f)
        name = one.outputs[0].name
        np.testing.assert_array_equal(a[name], b[name])
        np.testing.assert_allclose(a[name], c[name], atol=atol, rtol=0)

    def test_batch_rows_are_independent(self, adapter, model_path, reference):
        feeds, expected, atol = reference
        session = adapter.load(model_path, threads=1)
        if any(isinstance(s.shape[0], int) for s in session.inputs if s.shape):
            pytest.skip("static batch size")
        single = {s.name: feeds[s.name][:1] for s in session.inputs}
        out = session.run(single)[session.outputs[0].name]
        np.testing.assert_allclose(out, expected[:1], atol=atol, rtol=0)

    def test_missing_model_raises(self, adapter, tmp_path):
        with pytest.raises(Exception):  # noqa: B017 - each runtime library raises its own type for a missing file
            adapter.load(tmp_path / "missing", threads=1)
