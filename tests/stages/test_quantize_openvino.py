"""The quantize stage's OpenVINO backend (NNCF), through a recipe on the tiny encoder (skipped without NNCF)."""

import importlib.util

import numpy as np
import pytest

if importlib.util.find_spec("openvino") is None:
    pytest.skip("openvino is not installed (pip install 'edgekit-ml[openvino-compress]')", allow_module_level=True)
if importlib.util.find_spec("nncf") is None:
    pytest.skip("nncf is not installed (pip install 'edgekit-ml[openvino-compress]')", allow_module_level=True)

from edgekit.artifact import Artifact  # noqa: E402
from edgekit.errors import RecipeError  # noqa: E402
from edgekit.recipe.config import QuantizeConfig, recipe_from_dict  # noqa: E402
from edgekit.stages.quantize import run_quantize  # noqa: E402
from edgekit.stages.quantize.openvino_backend import FFN_OUTPUT, space  # noqa: E402
from edgekit_runtimes.openvino_cpu import OpenVINOCPUAdapter, import_openvino  # noqa: E402
from tests.conftest import read_json  # noqa: E402
from tests.helpers import FAST_BENCH  # noqa: E402

ov = import_openvino()  # with its usage telemetry off, as edgekit imports it

CAL = {"samples": 32, "seq_len": 32}


@pytest.fixture(scope="module")
def tiny_openvino(tiny_ckpt, tmp_path_factory):
    """export openvino -> static int8 (NNCF, the defaults), static int8 with the FFN output in float,
    dynamic int8, int8 weights only, float16 weights; benched."""
    from edgekit.pipeline.run import compress

    recipe = recipe_from_dict(
        {
            "version": 1,
            "name": "openvino",
            "stages": [
                {"kind": "export", "format": "openvino"},
                {"kind": "quantize", "method": "static", "calibration": CAL},
                {
                    "kind": "quantize",
                    "input": "openvino-fp32",
                    "name": "openvino-int8-ffn-float",
                    "method": "static",
                    "exclude": [FFN_OUTPUT],
                    "calibration": CAL,
                },
                {"kind": "quantize", "input": "openvino-fp32", "method": "dynamic"},
                {"kind": "quantize", "input": "openvino-fp32", "method": "weight_only"},
                {"kind": "quantize", "input": "openvino-fp32", "method": "fp16"},
                FAST_BENCH,
            ],
        },
        "openvino",
    )
    out = tmp_path_factory.mktemp("openvino") / "out"
    compress(tiny_ckpt, recipe, out, progress=False)
    return out


def _weights_mb(artifact_dir):
    return (artifact_dir / "model.bin").stat().st_size / 1e6


def _embeddings(path, texts, tokenizer):
    from edgekit.data.feeds import tokenize

    s = OpenVINOCPUAdapter().load(path, threads=1)
    return np.concatenate(
        [s.run(tokenize(tokenizer, texts[i : i + 8], s.inputs, 128))["embeddings"] for i in range(0, len(texts), 8)]
    )


def test_static_int8_is_faithful_to_fp32_on_held_out_texts(tiny_openvino, tiny_ckpt):
    from edgekit.checkpoint import load_checkpoint
    from edgekit.data.calibration import load_text_data
    from edgekit.measure.fidelity import cosine_rows

    art = Artifact.load(tiny_openvino / "openvino-int8-static")
    assert (art.format, art.precision, art.model_file) == ("openvino", "int8", "model.xml")
    assert art.meta["parent"]["name"] == "openvino-fp32"
    assert art.meta["scheme"][0].startswith("NNCF transformer PTQ: int8 weights and activations, mixed")
    assert art.meta["nncf"] and art.meta["float_nodes"] == []
    data, tok = load_text_data(), load_checkpoint(tiny_ckpt).tokenizer
    held = data.heldout[100:164]  # texts neither the calibration nor the stage's own sanity check used
    assert not set(held) & set(data.calibration[: CAL["samples"]])
    fp32 = _embeddings(tiny_openvino / "openvino-fp32", held, tok)
    int8 = _embeddings(tiny_openvino / "openvino-int8-static", held, tok)
    cos = cosine_rows(fp32, int8)
    assert cos.min() >= 0.99, cos.min()
    assert _weights_mb(tiny_openvino / "openvino-int8-static") < 0.5 * _weights_mb(tiny_openvino / "openvino-fp32")


def test_the_int8_graph_holds_int8_weights_and_quantize_ops(tiny_openvino):
    model = ov.Core().read_model(str(tiny_openvino / "openvino-int8-static" / "model.xml"))
    types = {op.get_type_name() for op in model.get_ordered_ops()}
    consts = {
        op.get_element_type().get_type_name() for op in model.get_ordered_ops() if op.get_type_name() == "Constant"
    }
    assert "FakeQuantize" in types and "i8" in consts


def test_excluded_nodes_stay_in_float(tiny_openvino):
    art = Artifact.load(tiny_openvino / "openvino-int8-ffn-float")
    assert [n.split("/encoder/")[-1] for n in art.meta["float_nodes"]] == [
        "layer.0/output/dense/MatMul",
        "layer.1/output/dense/MatMul",
    ]
    assert "2 nodes kept in float (exclude)" in art.meta["scheme"]
    assert art.meta["validation"]["cosine_mean"] > 0.99


@pytest.mark.parametrize(
    "name,precision,ratio,group",
    [
        ("openvino-int8-dynamic", "int8", 0.5, "32"),
        ("openvino-int8-weight_only", "int8", 0.5, "0"),
        ("openvino-fp16", "fp16", 0.6, None),
    ],
)
def test_weight_compression_shrinks_the_weights(tiny_openvino, name, precision, ratio, group):
    art = Artifact.load(tiny_openvino / name)
    assert art.precision == precision
    assert _weights_mb(tiny_openvino / name) < ratio * _weights_mb(tiny_openvino / "openvino-fp32")
    assert art.meta["validation"]["cosine_mean"] > 0.999
    model = ov.Core().read_model(str(tiny_openvino / name / "model.xml"))
    key = ["runtime_options", "DYNAMIC_QUANTIZATION_GROUP_SIZE"]
    assert (model.get_rt_info(key).astype(str) if model.has_rt_info(key) else None) == group
    if group is not None:  # the runtime compiles it with the recorded setting
        compiled = ov.Core().compile_model(model, "CPU", OpenVINOCPUAdapter().config(1))
        assert str(compiled.get_property("DYNAMIC_QUANTIZATION_GROUP_SIZE")) == group


def test_bench_rows_run_on_openvino_with_fidelity(tiny_openvino):
    rows = {r["name"]: r for r in read_json(tiny_openvino / "report.json")["results"]}
    for name in ("openvino-fp32", "openvino-int8-static", "openvino-int8-dynamic", "openvino-fp16"):
        row = rows[name]
        assert row["runtime"] == "openvino" and row["format"] == "openvino"
        assert row["latency_ms"]["p50"] > 0
        assert row["fidelity"]["cosine_mean"] > 0.99
    assert rows["openvino-fp32"]["fidelity"]["max_abs_diff"] < 1e-4


def test_edgekit_bench_times_an_openvino_artifact(tiny_openvino, run_cli, tmp_path):
    report = tmp_path / "bench.json"
    r = run_cli(
        "bench", str(tiny_openvino / "openvino-int8-static"), "--runs", "5", "--warmup", "1", "-o", str(report), "-q"
    )
    assert r.exit_code == 0, r.output + r.stderr
    (row,) = read_json(report)["results"]
    assert (row["runtime"], row["format"], row["precision"]) == ("openvino", "openvino", "int8")


def test_unsupported_settings_are_recipe_errors(ctx, tiny_openvino, tmp_path):
    fp32 = Artifact.load(tiny_openvino / "openvino-fp32")
    with pytest.raises(RecipeError, match="fallback: float"):
        run_quantize(QuantizeConfig(kind="quantize", method="static", fallback="dynamic"), fp32, ctx, tmp_path)
    with pytest.raises(RecipeError, match="op_types is not used for OpenVINO"):
        run_quantize(QuantizeConfig(kind="quantize", method="static", op_types=["MatMul"]), fp32, ctx, tmp_path)
    with pytest.raises(RecipeError, match="not a valid regular expression"):
        run_quantize(QuantizeConfig(kind="quantize", method="static", exclude=["("]), fp32, ctx, tmp_path)


def test_the_search_space_is_the_backends():
    from edgekit.stages.search_space import searchable
    from edgekit.stages.search_space import space as space_of

    assert "openvino" in searchable()
    names = [c.name for c in space_of("openvino")]
    assert names == [c.name for c in space()]
    assert names == ["nncf-mixed", "nncf-performance", "dynamic", "nncf-ffn-output-float", "nncf-accuracy-control"]
    assert {c.method for c in space()} == {"static", "dynamic"}


def test_a_bundle_carries_the_ir_and_its_weights(tiny_openvino, tmp_path):
    import edgekit
    from edgekit.pipeline.bundling import build_bundle

    bundle = build_bundle(tiny_openvino, tmp_path / "bundle", artifacts=["openvino-int8-static"])
    files = {p.relative_to(bundle.path).as_posix() for p in bundle.path.rglob("*") if p.is_file()}
    assert {"models/openvino-int8-static/model.xml", "models/openvino-int8-static/model.bin"} <= files
    model = edgekit.load(bundle.path, runtime="openvino", threads=1)
    assert model.info()["runtime"] == "openvino" and model.embed(["hello world"]).shape == (1, 32)
    assert model.check()["passed"]


def test_the_search_quantizes_and_promotes_an_openvino_artifact(tmp_path):
    from edgekit.pipeline.run import compress
    from edgekit.testing import make_tiny_checkpoint

    # wide enough that int8 beats fp32 by a clear margin (on the hidden-32 encoder timing noise decides)
    ckpt = make_tiny_checkpoint(tmp_path / "ckpt", hidden_size=256, heads=4)
    recipe = recipe_from_dict(
        {
            "version": 1,
            "name": "search-openvino",
            "stages": [
                {"kind": "export", "format": "openvino"},
                {"kind": "search", "budget": {"min_fidelity": 0.99}, "max_trials": 2, "runs": 10, "samples": 16},
                {**FAST_BENCH, "seq_len": 128},
            ],
        },
        "search-openvino",
    )
    compress(ckpt, recipe, tmp_path / "out", progress=False)
    best = Artifact.load(tmp_path / "out" / "search-best")
    record = best.meta["search"]
    assert best.format == "openvino" and best.precision == "int8"
    assert [t["candidate"] for t in record["trials"]] == ["nncf-mixed", "nncf-performance"]
    assert all(t["verdict"] != "error" for t in record["trials"])
    # the per-layer diff reads ONNX and TFLite only: the winner's diagnostics say so instead of failing the search
    assert "not openvino" in record["diagnostics"]["error"]
    assert {"model.xml", "model.bin"} <= {p.name for p in best.path.iterdir()}


@pytest.mark.parametrize(
    "settings",
    [
        {"activation_type": "int8", "per_channel": False, "calibration": {**CAL, "method": "percentile"}},
        {"quantize_embeddings": False, "calibration": {**CAL, "method": "entropy"}},
    ],
)
def test_static_settings_map_to_nncf(ctx, tiny_openvino, tmp_path, settings):
    config = QuantizeConfig.model_validate({"kind": "quantize", "method": "static", **settings})
    fp32 = Artifact.load(tiny_openvino / "openvino-fp32")
    res = run_quantize(config, fp32, ctx, tmp_path)
    assert res.precision == "int8" and res.validation["cosine_mean"] > 0.99
    scheme = res.extra["scheme"]
    assert ("performance (symmetric)" if settings.get("activation_type") == "int8" else "mixed") in scheme[0]
    assert settings["calibration"]["method"] in scheme[0]
    assert ("embedding tables: float" in scheme) == (settings.get("quantize_embeddings") is False)


def test_missing_libraries_are_one_line_errors(ctx, tiny_openvino, tmp_path, monkeypatch):
    import importlib.util

    from edgekit.errors import RuntimeUnavailableError
    from edgekit_converters.openvino_export import OpenVINOConverter

    fp32 = Artifact.load(tiny_openvino / "openvino-fp32")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nncf" else real(name, *a))
    with pytest.raises(RuntimeUnavailableError, match=r"NNCF, which is not installed here .*openvino-compress"):
        run_quantize(QuantizeConfig(kind="quantize", method="static"), fp32, ctx, tmp_path)
    monkeypatch.setattr(OpenVINOCPUAdapter, "missing", classmethod(lambda c: ["openvino"]))
    with pytest.raises(RuntimeUnavailableError, match="runtime 'openvino' needs openvino"):
        OpenVINOConverter().export(ctx, None, tmp_path)
    with pytest.raises(RuntimeUnavailableError, match="runtime 'openvino' needs openvino"):
        run_quantize(QuantizeConfig(kind="quantize", method="fp16"), fp32, ctx, tmp_path)


def test_openvino_and_nncf_send_and_write_no_telemetry(tiny_openvino, tmp_path):
    """Imported as edgekit imports them, neither library records usage (its client id and counts live
    under ~/intel): in a fresh process with a clean home directory, nothing appears there."""
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from edgekit_runtimes.openvino_cpu import OpenVINOCPUAdapter\n"
        "from edgekit.stages.quantize.openvino_backend import _nncf\n"
        f"OpenVINOCPUAdapter().load({str(tiny_openvino / 'openvino-int8-static')!r}).run\n"
        "nncf = _nncf()\n"
        "import openvino.tools.ovc.telemetry_utils as t\n"
        "print(t.tm.__name__, type(nncf.telemetry.wrapper.telemetry).__name__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("NNCF_CI", "CI")} | {"HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["openvino.tools.ovc.telemetry_stub", "MagicMock"]
    assert not (tmp_path / "intel").exists()


def test_accuracy_control_keeps_the_cosine_drop_within_the_limit(tiny_ckpt, tmp_path):
    """NNCF's accuracy-control mode, measured by edgekit's metric (mean cosine to the fp32 IR on held-out
    texts): the artifact stays int8 and its fidelity to PyTorch is within the limit it was given."""
    from edgekit.pipeline.run import compress

    limit = 0.001
    recipe = recipe_from_dict(
        {
            "version": 1,
            "name": "ac",
            "stages": [
                {"kind": "export", "format": "openvino"},
                {"kind": "quantize", "method": "static", "calibration": CAL, "max_fidelity_drop": limit},
                FAST_BENCH,
            ],
        },
        "ac",
    )
    result = compress(tiny_ckpt, recipe, tmp_path / "out", progress=False)
    art = result.artifacts["openvino-int8-static"]
    assert art.precision == "int8" and "accuracy control" in art.meta["scheme"][0]
    row = next(r for r in result.report["results"] if r["name"] == "openvino-int8-static")
    assert row["fidelity"]["cosine_mean"] >= 1 - limit - 1e-4, row["fidelity"]


def test_accuracy_control_is_refused_where_it_does_not_apply():
    from edgekit.pipeline.plan import plan

    def recipe(fmt: str, **quantize) -> dict:
        return {
            "version": 1,
            "name": "r",
            "stages": [{"kind": "export", "format": fmt}, {"kind": "quantize", "method": "static", **quantize}],
        }

    with pytest.raises(RecipeError, match="OpenVINO static only"):
        plan(recipe_from_dict(recipe("onnx", max_fidelity_drop=0.01), "r"))
    with pytest.raises(RecipeError, match="in a quantize stage give a number"):
        plan(recipe_from_dict(recipe("openvino", max_fidelity_drop="budget"), "r"))
    assert space()[-1].max_fidelity_drop == "budget"
