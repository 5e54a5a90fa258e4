"""PyTorch -> ExecuTorch (XNNPACK): the converter contract, int8 through torchao's PT2E XNNPACK quantizer,
and the refusals (skipped without executorch)."""

import importlib.util

import pytest

if importlib.util.find_spec("executorch") is None:
    pytest.skip("executorch is not installed (pip install 'edgekit-ml[executorch]')", allow_module_level=True)

from edgekit.pipeline.run import compress  # noqa: E402
from edgekit.recipe.config import recipe_from_dict  # noqa: E402
from edgekit_converters.executorch_export import ExecuTorchConverter  # noqa: E402
from tests.contract.converters import ConverterContract  # noqa: E402


class TestExecuTorchConverterContract(ConverterContract):
    @pytest.fixture(scope="class")
    def converter(self):
        return ExecuTorchConverter()


def test_dynamic_int8_is_smaller_and_faithful_and_a_pte_file_is_not_quantized_on_its_own(tiny_ckpt, tmp_path):
    recipe = recipe_from_dict(
        {
            "version": 1,
            "name": "et",
            "stages": [
                {"kind": "export", "format": "executorch"},
                {"kind": "quantize", "method": "dynamic"},
                {"kind": "bench", "runs": 3, "warmup": 1, "threads": 1, "fidelity_samples": 16},
            ],
        },
        "et",
    )
    result = compress(tiny_ckpt, recipe, tmp_path / "out", progress=False)
    rows = {r["name"]: r for r in result.report["results"]}
    fp32, int8 = rows["executorch-fp32"], rows["executorch-int8-dynamic"]
    assert (fp32["precision"], int8["precision"], int8["runtime"]) == ("fp32", "int8", "executorch")
    assert int8["size_bytes"] < fp32["size_bytes"]
    assert int8["fidelity"]["cosine_mean"] > 0.99, int8["fidelity"]


def test_image_models_are_refused_before_any_work():
    from types import SimpleNamespace

    assert "image models" in ExecuTorchConverter.refusal(SimpleNamespace(is_image=True, config={}))
    assert ExecuTorchConverter.refusal(SimpleNamespace(is_image=False, config={"model_type": "bert"})) is None
