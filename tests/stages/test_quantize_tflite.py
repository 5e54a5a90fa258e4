import pytest

from edgekit.artifact import Artifact
from edgekit.errors import RecipeError
from edgekit.recipe.config import QuantizeConfig
from edgekit.stages.quantize import run_quantize
from edgekit_runtimes.litert import LiteRTAdapter


@pytest.fixture
def fp32(tiny_tflite):
    return Artifact.load(tiny_tflite / "tflite-fp32")


def _tensor_types(path):
    s = LiteRTAdapter().load(path)
    return {d["dtype"].__name__ for d in s._interp.get_tensor_details()}


@pytest.mark.parametrize(
    "method,precision,smaller_than", [("dynamic", "int8", 0.7), ("weight_only", "int8", 0.7), ("fp16", "fp16", 0.8)]
)
def test_methods_shrink_and_stay_faithful(ctx, fp32, tmp_path, method, precision, smaller_than):
    res = run_quantize(QuantizeConfig(kind="quantize", method=method), fp32, ctx, tmp_path)
    assert res.precision == precision and res.format == "tflite"
    assert (tmp_path / "model.tflite").stat().st_size < smaller_than * fp32.size_bytes
    assert res.validation["cosine_mean"] > 0.99
    expected = "float16" if method == "fp16" else "int8"
    assert expected in _tensor_types(tmp_path / "model.tflite")


def test_static_selective_scheme(tiny_tflite):
    art = Artifact.load(tiny_tflite / "tflite-int8-static")
    assert art.meta["parent"]["name"] == "tflite-fp32"
    assert "FULLY_CONNECTED: static int8" in art.meta["scheme"]
    # the scheme says how many ops each rule took: the FFN output projection of both layers; the word and
    # token-type tables
    assert "BertOutput_output/.*Linear_dense|MLP_mlp/.*Linear_fc2: dynamic (2 ops)" in art.meta["scheme"]
    assert "EMBEDDING_LOOKUP: int8 table (2 ops)" in art.meta["scheme"]
    assert art.meta["validation"]["cosine_mean"] > 0.99
    assert art.size_bytes < 0.7 * Artifact.load(tiny_tflite / "tflite-fp32").size_bytes


def test_onnx_only_methods_and_patterns_are_checked(ctx, fp32, tiny_compressed, tmp_path):
    with pytest.raises(RecipeError, match="not a valid regular expression"):
        run_quantize(QuantizeConfig(kind="quantize", method="static", exclude=["("]), fp32, ctx, tmp_path)
    onnx_art = Artifact.load(tiny_compressed / "onnx-fp32-opt")
    with pytest.raises(RecipeError, match="'weight_only' is not available for onnx"):
        run_quantize(QuantizeConfig(kind="quantize", method="weight_only"), onnx_art, ctx, tmp_path)
    with pytest.raises(RecipeError, match="fallback: float"):
        run_quantize(QuantizeConfig(kind="quantize", method="static", fallback="dynamic"), onnx_art, ctx, tmp_path)
