import onnx
import pytest

from edgekit.checkpoint import load_checkpoint
from edgekit.data.calibration import load_text_data
from edgekit.errors import ParityError
from edgekit.pipeline.context import StageContext
from edgekit.recipe.config import ExportConfig
from edgekit_converters.onnx_export import OnnxConverter
from tests.contract.converters import ConverterContract


class TestOnnxConverterContract(ConverterContract):
    @pytest.fixture(scope="class")
    def converter(self):
        return OnnxConverter()


@pytest.fixture
def ctx(tiny_ckpt):
    return StageContext(
        checkpoint=load_checkpoint(tiny_ckpt), data=load_text_data(), recipe_digest="test", threads=1, progress=False
    )


def test_export_has_dynamic_axes_and_passes_parity(ctx, tmp_path):
    validation, _ = OnnxConverter().convert(ctx, ExportConfig(kind="export"), tmp_path)
    assert validation["max_abs_diff"] < 1e-4
    assert validation["min_cosine"] > 0.99999
    model = onnx.load(str(tmp_path / "model.onnx"))
    for inp in model.graph.input:
        dims = inp.type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch" and dims[1].dim_param == "sequence"
    assert [o.name for o in model.graph.output] == ["embeddings", "last_hidden_state"]
    tokens = model.graph.output[1].type.tensor_type.shape.dim  # Optimum's output: per token, dynamic axes
    assert [d.dim_param or d.dim_value for d in tokens] == ["batch", "sequence", 32]


class _Sabotaged(OnnxConverter):
    """Exports correctly, then corrupts one weight: parity must catch it."""

    def export(self, ctx, config, out_dir):
        path = super().export(ctx, config, out_dir)
        model = onnx.load(str(path))
        init = max(model.graph.initializer, key=lambda t: len(t.raw_data))
        arr = onnx.numpy_helper.to_array(init).copy()
        arr *= 1.5
        init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
        onnx.save(model, str(path))
        return path


def test_parity_mismatch_is_a_typed_error(ctx, tmp_path):
    with pytest.raises(ParityError, match="onnx export: does not match the PyTorch reference"):
        _Sabotaged().convert(ctx, ExportConfig(kind="export"), tmp_path)


def test_classifier_exports_logits(tiny_cls_ckpt, tmp_path):
    ctx = StageContext(checkpoint=load_checkpoint(tiny_cls_ckpt), data=load_text_data(), recipe_digest="t", threads=1)
    OnnxConverter().convert(ctx, ExportConfig(kind="export"), tmp_path)
    model = onnx.load(str(tmp_path / "model.onnx"))
    assert [o.name for o in model.graph.output] == ["logits"]
