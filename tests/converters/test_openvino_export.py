"""PyTorch -> OpenVINO IR: the converter contract, parity with PyTorch, recipes that name the format."""

import importlib.util

import pytest

if importlib.util.find_spec("openvino") is None:
    pytest.skip("openvino is not installed (pip install 'edgekit-ml[openvino]')", allow_module_level=True)

from edgekit.checkpoint import load_checkpoint  # noqa: E402
from edgekit.data.calibration import load_text_data  # noqa: E402
from edgekit.errors import ParityError  # noqa: E402
from edgekit.pipeline.context import StageContext  # noqa: E402
from edgekit.recipe.config import ExportConfig, load_recipe, recipe_from_dict  # noqa: E402
from edgekit_converters.openvino_export import OpenVINOConverter  # noqa: E402
from edgekit_runtimes.openvino_cpu import import_openvino  # noqa: E402
from tests.contract.converters import ConverterContract  # noqa: E402

ov = import_openvino()  # with its usage telemetry off, as edgekit imports it


class TestOpenVINOConverterContract(ConverterContract):
    @pytest.fixture(scope="class")
    def converter(self):
        return OpenVINOConverter()


@pytest.fixture
def ctx(tiny_ckpt):
    return StageContext(
        checkpoint=load_checkpoint(tiny_ckpt), data=load_text_data(), recipe_digest="test", threads=1, progress=False
    )


def test_export_writes_float32_ir_with_dynamic_axes_and_passes_parity(ctx, tmp_path):
    validation, session = OpenVINOConverter().convert(ctx, ExportConfig(kind="export", format="openvino"), tmp_path)
    assert validation["max_abs_diff"] < 1e-5 and validation["min_cosine"] > 0.99999
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "model.xml"]  # the ONNX file was temporary
    model = ov.Core().read_model(str(tmp_path / "model.xml"))
    assert [p.get_any_name() for p in model.inputs] == ["input_ids", "attention_mask", "token_type_ids"]
    assert all(p.get_partial_shape().is_dynamic for p in model.inputs)
    consts = [op for op in model.get_ordered_ops() if op.get_type_name() == "Constant"]
    assert "f16" not in {c.get_element_type().get_type_name() for c in consts}  # weights kept in float32
    assert session.details()["inference_precision"] == "f32"


class _Sabotaged(OpenVINOConverter):
    """Exports correctly, then scales the largest weight: parity must catch it."""

    def export(self, ctx, config, out_dir):
        import numpy as np

        path = super().export(ctx, config, out_dir)
        model = ov.Core().read_model(str(path))
        const = max(
            (op for op in model.get_ordered_ops() if op.get_type_name() == "Constant"),
            key=lambda op: int(np.prod(op.get_output_shape(0))),
        )
        scaled = ov.opset13.constant(const.get_data() * 1.5)
        for target in const.output(0).get_target_inputs():
            target.replace_source_output(scaled.output(0))
        # a new file: OpenVINO maps model.bin into memory, so writing over it in place would pull it from under us
        sabotaged = path.with_name("sabotaged.xml")
        ov.save_model(model, str(sabotaged), compress_to_fp16=False)
        return sabotaged


def test_parity_mismatch_is_a_typed_error(ctx, tmp_path):
    with pytest.raises(ParityError, match="openvino export: does not match the PyTorch reference"):
        _Sabotaged().convert(ctx, ExportConfig(kind="export", format="openvino"), tmp_path)


def test_classifier_exports_logits(tiny_cls_ckpt, tmp_path):
    ctx = StageContext(checkpoint=load_checkpoint(tiny_cls_ckpt), data=load_text_data(), recipe_digest="t", threads=1)
    _, session = OpenVINOConverter().convert(ctx, ExportConfig(kind="export", format="openvino"), tmp_path)
    assert [o.name for o in session.outputs] == ["logits"]


def test_recipes_plan_export_then_static_quantize():
    from edgekit.pipeline.plan import plan

    recipe = recipe_from_dict(
        {
            "version": 1,
            "name": "ov",
            "stages": [{"kind": "export", "format": "openvino"}, {"kind": "quantize", "method": "static"}],
        }
    )
    assert [(s.name, s.input) for s in plan(recipe)] == [
        ("openvino-fp32", "pytorch-fp32"),
        ("openvino-int8-static", "openvino-fp32"),
    ]
    builtin = load_recipe("ptq-openvino")
    assert [(s.name, s.input) for s in plan(builtin)] == [
        ("openvino-fp32", "pytorch-fp32"),
        ("openvino-int8-static", "openvino-fp32"),
    ]
