"""The OpenVINO CPU adapter: the runtime contract, on the tiny encoder exported to IR (skipped without openvino)."""

import importlib.util

import numpy as np
import pytest

if importlib.util.find_spec("openvino") is None:
    pytest.skip("openvino is not installed (pip install 'edgekit-ml[openvino]')", allow_module_level=True)

from edgekit import formats  # noqa: E402
from edgekit.errors import ModelFileError  # noqa: E402
from edgekit.measure.model_info import detect_format, token_limits  # noqa: E402
from edgekit_runtimes.openvino_cpu import OPENVINO_FORMAT, OpenVINOCPUAdapter, import_openvino  # noqa: E402
from tests.runtimes.contract import RuntimeAdapterContract, torch_reference  # noqa: E402

ov = import_openvino()  # with its usage telemetry off, as edgekit imports it


@pytest.fixture(scope="module")
def tiny_ir(tiny_ckpt, tmp_path_factory):
    """The tiny encoder exported to OpenVINO IR by its converter (parity-checked against PyTorch)."""
    from edgekit.checkpoint import load_checkpoint
    from edgekit.data.calibration import load_text_data
    from edgekit.pipeline.context import StageContext
    from edgekit.recipe.config import ExportConfig
    from edgekit_converters.openvino_export import OpenVINOConverter

    out = tmp_path_factory.mktemp("openvino-ir")
    ctx = StageContext(checkpoint=load_checkpoint(tiny_ckpt), data=load_text_data(), recipe_digest="t", threads=1)
    OpenVINOConverter().convert(ctx, ExportConfig(kind="export", format="openvino"), out)
    return out


class TestOpenVINOCPU(RuntimeAdapterContract):
    @pytest.fixture
    def adapter(self):
        return OpenVINOCPUAdapter()

    @pytest.fixture
    def model_path(self, tiny_ir):
        return tiny_ir / "model.xml"

    @pytest.fixture
    def reference(self, tiny_ckpt):
        return torch_reference(tiny_ckpt)


def test_loads_an_artifact_directory_with_dynamic_batch_and_sequence(tiny_ir):
    s = OpenVINOCPUAdapter().load(tiny_ir, threads=2)
    assert [i.name for i in s.inputs] == ["input_ids", "attention_mask", "token_type_ids"]
    assert all(i.dtype == "int64" and i.shape == (None, None) and not i.is_static for i in s.inputs)
    assert [o.name for o in s.outputs] == ["embeddings", "last_hidden_state"] and s.outputs[0].dtype == "float32"
    for batch, seq in ((1, 5), (3, 40)):
        out = s.run({i.name: np.ones((batch, seq), np.int64) for i in s.inputs})
        assert out["embeddings"].shape == (batch, 32)
    assert s.details() == {
        "device": "CPU",
        "threads": 2,
        "inference_precision": s.details()["inference_precision"],
        "openvino": s.details()["openvino"],
    }
    assert s.details()["inference_precision"] == "f32"  # float layers in float32, never the CPU's bf16 default


def test_outputs_are_copies(tiny_ir):
    """The infer request reuses its output buffers: a result must not change when the session runs again."""
    s = OpenVINOCPUAdapter().load(tiny_ir)
    first = s.run({i.name: np.ones((1, 8), np.int64) for i in s.inputs})["embeddings"]
    kept = first.copy()
    s.run({i.name: np.full((1, 8), 7, np.int64) for i in s.inputs})
    np.testing.assert_array_equal(first, kept)


def test_wrong_dtype_and_missing_input_are_named(tiny_ir):
    s = OpenVINOCPUAdapter().load(tiny_ir)
    with pytest.raises(TypeError, match="has dtype int32, the model takes int64"):
        s.run({i.name: np.ones((1, 8), np.int32) for i in s.inputs})
    with pytest.raises(ValueError, match="missing input 'token_type_ids'"):
        s.run({"input_ids": np.ones((1, 8), np.int64), "attention_mask": np.ones((1, 8), np.int64)})


def test_the_format_is_registered_and_checks_its_files(tiny_ir, tmp_path):
    assert formats.get("openvino") is OPENVINO_FORMAT
    assert OPENVINO_FORMAT.model_file == "model.xml" and OPENVINO_FORMAT.label == "OpenVINO IR"
    assert formats.by_suffix(tiny_ir / "model.xml") is OPENVINO_FORMAT
    assert formats.get("openvino").quantize_backend().MODEL_FILE == "model.xml"
    assert detect_format(tiny_ir / "model.xml") == "openvino"
    assert token_limits(tiny_ir / "model.xml", "openvino") == {"vocab": 600, "positions": 128}
    other = tmp_path / "config.xml"
    other.write_text("<config><a/></config>")
    with pytest.raises(ModelFileError, match="not an OpenVINO IR model"):
        detect_format(other)
    lone = tmp_path / "lone.xml"
    lone.write_bytes((tiny_ir / "model.xml").read_bytes())
    with pytest.raises(ModelFileError, match="its weights file lone.bin is not beside it"):
        detect_format(lone)
    with pytest.raises(ValueError, match="lone.bin is not beside it"):
        OpenVINOCPUAdapter().load(lone)


def test_unavailable_without_openvino(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    assert OpenVINOCPUAdapter.missing() == ["openvino"] and not OpenVINOCPUAdapter.available()


def test_the_runner_fallback_table_has_the_adapter(monkeypatch):
    """The remote runner (no package metadata) finds the adapter and format from plugins.BUILTIN."""
    import edgekit.plugins as plugins

    monkeypatch.setattr(plugins, "entry_points", lambda group: [])
    plugins._group.cache_clear()
    try:
        assert plugins.runtime_adapters()["openvino"] is OpenVINOCPUAdapter
        assert plugins.runtime_for_format("openvino").name == "openvino"
        assert "openvino" in formats.names(bundled=True)
    finally:
        plugins._group.cache_clear()
