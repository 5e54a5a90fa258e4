from collections import Counter

import onnx
import pytest

from edgekit.artifact import Artifact
from edgekit.checkpoint import load_checkpoint
from edgekit.errors import GateFailed, RecipeError
from edgekit.recipe.config import QuantizeConfig
from edgekit.stages.quantize import run_quantize
from edgekit.stages.quantize.onnx_backend import op_types
from tests.helpers import onnx_ops


@pytest.fixture
def fused(tiny_compressed):
    return Artifact.load(tiny_compressed / "onnx-fp32-opt")


def test_dynamic_quantizes_attention_and_embeddings(ctx, fused, tmp_path):
    res = run_quantize(QuantizeConfig(kind="quantize", method="dynamic"), fused, ctx, tmp_path)
    ops = onnx_ops(tmp_path / "model.onnx")
    assert ops["QAttention"] == 2 and ops["QEmbedLayerNormalization"] == 1 and ops["MatMulInteger"] >= 4
    assert res.precision == "int8" and res.validation["cosine_mean"] > 0.99


def test_static_is_qdq_matmul_only_with_exclusions(ctx, fused, tmp_path):
    cfg = QuantizeConfig(
        kind="quantize",
        method="static",
        exclude=[r"layer\.\d+/output/dense/MatMul"],
        calibration={"samples": 16, "seq_len": 32},
    )
    res = run_quantize(cfg, fused, ctx, tmp_path)
    model = onnx.load(str(tmp_path / "model.onnx"))
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0
    # only activations feeding MatMuls are quantized: nothing on the attention-mask path
    producer = {o: n.op_type for n in model.graph.node for o in n.output}
    quantized_from = {
        producer.get(n.input[0], "initializer/input") for n in model.graph.node if n.op_type == "QuantizeLinear"
    }
    assert quantized_from <= {"SkipLayerNormalization", "EmbedLayerNormalization", "BiasGelu", "Attention", "MatMul"}
    assert len(res.extra["float_nodes"]) == 2  # one FFN output MatMul per layer
    assert res.validation["cosine_mean"] > 0.99


def test_static_on_an_unoptimized_export(ctx, tiny_compressed, tmp_path, monkeypatch):
    """Symbolic shape inference stops on a plain torch export (no contrib ops); ONNX's own inference types it,
    and the working directory stays clean."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    cfg = QuantizeConfig(kind="quantize", method="static", calibration={"samples": 8, "seq_len": 16})
    res = run_quantize(cfg, Artifact.load(tiny_compressed / "onnx-fp32"), ctx, out)
    assert onnx_ops(out / "model.onnx")["QuantizeLinear"] > 0
    assert res.precision == "int8" and res.validation["cosine_mean"] > 0.99
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_default_op_types():
    assert "Attention" in op_types(QuantizeConfig(kind="quantize", method="dynamic"))
    static = op_types(QuantizeConfig(kind="quantize", method="static", quantize_embeddings=False))
    assert static == ["MatMul", "Gemm"]


def test_sanity_floor_catches_collapse(ctx, fused, tmp_path):
    # all op types static int8: the attention-mask arithmetic gets squeezed too;
    # with an impossible floor the stage must refuse to promote
    cfg = QuantizeConfig(kind="quantize", method="dynamic", min_cosine=1.0)
    with pytest.raises(GateFailed, match="not promoted"):
        run_quantize(cfg, fused, ctx, tmp_path)


def test_reads_only_onnx(ctx, tiny_ckpt, tmp_path):
    from edgekit.pipeline.run import checkpoint_artifact

    with pytest.raises(RecipeError, match="reads ExecuTorch, ONNX, OpenVINO IR or TFLite"):
        run_quantize(
            QuantizeConfig(kind="quantize", method="dynamic"),
            checkpoint_artifact(load_checkpoint(tiny_ckpt)),
            ctx,
            tmp_path,
        )


def test_bad_exclude_pattern(ctx, fused, tmp_path):
    with pytest.raises(RecipeError, match="not a valid regular expression"):
        run_quantize(QuantizeConfig(kind="quantize", method="dynamic", exclude=["(unclosed"]), fused, ctx, tmp_path)


def test_static_quantization_leaves_the_working_directory_clean(ctx, fused, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = tmp_path / "out"
    out.mkdir()
    cfg = QuantizeConfig(kind="quantize", method="static", calibration={"samples": 8, "seq_len": 16})
    run_quantize(cfg, fused, ctx, out)
    assert (out / "model.onnx").is_file() and list(cwd.iterdir()) == []


def test_failed_shape_inference_saves_its_temporaries_in_a_temp_directory(tmp_path, monkeypatch):
    """ONNX Runtime's symbolic shape inference saves sym_shape_infer_temp.onnx (+ a .data file) in the
    current directory when it fails; the quantizer runs it elsewhere, so the user's directory stays clean."""
    from onnx import TensorProto, helper
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgekit.stages.quantize.onnx_backend import working_directory

    graph = helper.make_graph(
        [helper.make_node("Unknown", ["x"], ["y"], domain="com.example")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    onnx.save(model, str(tmp_path / "m.onnx"))
    cwd, scratch = tmp_path / "cwd", tmp_path / "scratch"
    cwd.mkdir()
    scratch.mkdir()
    monkeypatch.chdir(cwd)
    with pytest.raises(Exception, match="symbolic shape inference"), working_directory(scratch):
        quant_pre_process(str(tmp_path / "m.onnx"), str(tmp_path / "pre.onnx"), skip_optimization=True)
    assert list(cwd.iterdir()) == [] and (scratch / "sym_shape_infer_temp.onnx").exists()
