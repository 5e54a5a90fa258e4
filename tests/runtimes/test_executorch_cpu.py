"""The ExecuTorch adapter: the runtime contract on the tiny encoder lowered to XNNPACK (skipped without
executorch), batch 1 with a dynamic sequence axis, batches run row by row, its I/O description."""

import importlib.util
import json

import numpy as np
import pytest

if importlib.util.find_spec("executorch") is None:
    pytest.skip("executorch is not installed (pip install 'edgekit-ml[executorch]')", allow_module_level=True)

from edgekit.measure.model_info import detect_format  # noqa: E402
from edgekit_runtimes import executorch_cpu  # noqa: E402
from edgekit_runtimes.executorch_cpu import EXECUTORCH_FORMAT, ExecuTorchAdapter, pte_problem  # noqa: E402
from tests.runtimes.contract import RuntimeAdapterContract, torch_reference  # noqa: E402


@pytest.fixture(scope="module")
def tiny_pte(tiny_ckpt, tmp_path_factory):
    """The tiny encoder exported by the ExecuTorch converter (parity-checked against PyTorch)."""
    from edgekit.recipe.config import ExportConfig
    from edgekit_converters.executorch_export import ExecuTorchConverter
    from tests.contract.converters import stage_context

    out = tmp_path_factory.mktemp("executorch")
    validation, _ = ExecuTorchConverter().convert(
        stage_context(tiny_ckpt), ExportConfig(kind="export", format="executorch"), out
    )
    assert validation["min_cosine"] > 0.99999
    return out


class TestExecuTorch(RuntimeAdapterContract):
    @pytest.fixture
    def adapter(self):
        return ExecuTorchAdapter()

    @pytest.fixture
    def model_path(self, tiny_pte):
        return tiny_pte / "model.pte"

    @pytest.fixture
    def reference(self, tiny_ckpt):
        return torch_reference(tiny_ckpt, dtype="int32")


def test_any_length_up_to_the_bound_runs_and_longer_is_refused(tiny_pte, tiny_ckpt):
    s = ExecuTorchAdapter().load(tiny_pte, threads=2)
    assert [i.name for i in s.inputs] == ["input_ids", "attention_mask", "token_type_ids"]
    assert all(i.dtype == "int32" and i.shape == (1, None) for i in s.inputs)
    for seq in (3, 17, 64):
        out = s.run({i.name: np.ones((1, seq), np.int32) for i in s.inputs})
        assert out["embeddings"].shape == (1, 32)
    bound = json.loads((tiny_pte / "model.json").read_text())["max_shape"]["input_ids"][1]
    with pytest.raises(ValueError, match="over the exported bounds"):
        s.run({i.name: np.ones((1, bound + 1), np.int32) for i in s.inputs})
    # XNNPACK's pool is the process's, sized by its first load (an earlier test's, when they run together)
    assert s.details()["backend"] == "XnnpackBackend"
    assert s.details()["threads"] == executorch_cpu._POOL_THREADS in (1, 2)


def test_the_format_knows_its_files(tiny_pte, tmp_path):
    assert detect_format(tiny_pte / "model.pte") == "executorch"
    assert EXECUTORCH_FORMAT.weights_precision(tiny_pte / "model.pte") == "fp32"
    (tmp_path / "model.pte").write_bytes((tiny_pte / "model.pte").read_bytes())
    assert "model.json" in pte_problem(tmp_path / "model.pte")  # the I/O description must be beside it
    (tmp_path / "x.pte").write_bytes(b"not a program")
    assert "not an ExecuTorch program" in pte_problem(tmp_path / "x.pte")
