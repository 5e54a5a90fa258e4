from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort

from edgekit.artifact import Artifact
from edgekit.recipe.config import OptimizeConfig
from edgekit.stages.optimize import run_optimize, unfuse_skip_layer_norm
from tests.helpers import onnx_ops


def _loaded_ops(path, tmp_path) -> Counter:
    """The op types of the graph ONNX Runtime runs after its own load-time fusions."""
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "as-loaded.onnx")
    so.log_severity_level = 3
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return onnx_ops(tmp_path / "as-loaded.onnx")


def _run(path, feeds):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def test_unfused_skip_layer_norm_stays_unfused_and_computes_the_same(ctx, tiny_compressed, tmp_path):
    fused_dir, plain_dir = tmp_path / "fused", tmp_path / "plain"
    fused_dir.mkdir()
    plain_dir.mkdir()
    export = Artifact.load(tiny_compressed / "onnx-fp32")
    run_optimize(OptimizeConfig(kind="optimize"), export, ctx, fused_dir)
    res = run_optimize(OptimizeConfig(kind="optimize", skip_layer_norm=False), export, ctx, plain_dir)

    fused, plain = onnx_ops(fused_dir / "model.onnx"), onnx_ops(plain_dir / "model.onnx")
    n = fused["SkipLayerNormalization"]
    assert n == 4  # 2 layers x (attention, FFN)
    assert plain["SkipLayerNormalization"] == 0 and plain["LayerNormalization"] == n
    assert plain["Attention"] == fused["Attention"] == 2  # the other fusions are kept
    assert res.extra["fused_operators"]["SkipLayerNormalization unfused"] == n
    assert "SkipLayerNormalization" not in res.extra["fused_operators"]
    # ONNX Runtime does not fuse them back when it loads the model (it does fuse the optimizer's own unfused
    # form, bias added first); a future ONNX Runtime that does would fail here
    loaded = _loaded_ops(plain_dir / "model.onnx", tmp_path)
    assert loaded["SkipLayerNormalization"] == 0 and loaded["LayerNormalization"] == n

    rng = np.random.default_rng(0)
    feeds = {
        "input_ids": rng.integers(5, 90, (2, 16)).astype(np.int64),
        "attention_mask": np.ones((2, 16), np.int64),
        "token_type_ids": np.zeros((2, 16), np.int64),
    }
    feeds = {i.name: feeds[i.name] for i in ort.InferenceSession(str(plain_dir / "model.onnx")).get_inputs()}
    np.testing.assert_allclose(_run(plain_dir / "model.onnx", feeds), _run(fused_dir / "model.onnx", feeds), atol=2e-5)
    assert res.validation["min_cosine"] > 0.9999 and res.validation["max_abs_diff"] < 1e-4


def test_unfused_recipe_quantizes_and_benches(tiny_ckpt, tmp_path):
    """ptq-dynamic with the unfused graph: dynamic int8 quantizes the same MatMuls and attention."""
    from edgekit.pipeline.run import compress
    from edgekit.recipe.config import recipe_from_dict
    from tests.helpers import fast_recipe

    data = fast_recipe("ptq-dynamic").model_dump(mode="json", exclude_none=True)
    for stage in data["stages"]:
        if stage["kind"] == "optimize":
            stage["skip_layer_norm"] = False
    recipe = recipe_from_dict(data, "unfused")
    out = tmp_path / "out"
    compress(tiny_ckpt, recipe, out, progress=False)
    int8 = Artifact.load(out / "onnx-int8-dynamic")
    ops = onnx_ops(int8.model_path)
    assert ops["SkipLayerNormalization"] == 0 and ops["LayerNormalization"] == 4
    assert ops["QAttention"] == 2 and ops["MatMulInteger"] >= 4
    assert int8.meta["validation"]["cosine_mean"] > 0.99


def test_unfuse_leaves_graphs_below_opset_17_alone(tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4])
    g = helper.make_tensor("g", TensorProto.FLOAT, [4], [1.0] * 4)
    node = helper.make_node("SkipLayerNormalization", ["x", "x", "g"], ["y"], domain="com.microsoft")
    graph = helper.make_graph([node], "g", [x], [y], [g])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), path)
    before = path.read_bytes()
    assert unfuse_skip_layer_norm(path) == 0
    assert path.read_bytes() == before
