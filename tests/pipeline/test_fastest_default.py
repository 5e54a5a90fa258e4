"""The default recipe (issue 18): `compress CHECKPOINT` without -r runs `fastest`, which searches every
installed format and leaves out, with the reason, the formats whose tools are missing here."""

from __future__ import annotations

import importlib
import json
from contextlib import ExitStack
from types import SimpleNamespace
from unittest import mock

import pytest

import edgekit.stages.quantize.openvino_backend as openvino_backend
from edgekit.pipeline.model_file import default_recipe
from edgekit.pipeline.plan import plan, without_unavailable
from edgekit.recipe.config import load_recipe, recipe_from_dict
from edgekit_converters.openvino_export import OpenVINOConverter
from edgekit_converters.tflite_export import TFLiteConverter
from tests.foreign_models import mlp_onnx


def _names(recipe):
    return [s.name for s in recipe.stages if s.kind != "bench"]


@pytest.fixture(autouse=True)
def everything_installed(request):
    """Every converter, runtime and quantizer counted as installed (OpenVINO and ExecuTorch are extras), so
    each plan-level test leaves out exactly what it patches away (the slow end-to-end run uses what is here)."""
    from edgekit.plugins import converters, runtime_adapters

    with ExitStack() as stack:
        if request.node.get_closest_marker("slow"):
            yield
            return
        for cls in [*converters().values(), *runtime_adapters().values()]:
            stack.enter_context(mock.patch.object(cls, "requires", ()))
        for name in ("openvino_backend", "executorch_backend"):
            module = importlib.import_module(f"edgekit.stages.quantize.{name}")
            stack.enter_context(mock.patch.object(module, "REQUIRES", ()))
        yield


def test_the_default_is_fastest_for_a_checkpoint_and_ptq_dynamic_for_a_file(tmp_path, tiny_ckpt):
    assert default_recipe(tiny_ckpt) == "fastest"
    assert default_recipe(mlp_onnx(tmp_path / "m.onnx")) == "ptq-dynamic"
    recipe = load_recipe("fastest")
    assert recipe.skip_unavailable and recipe.stages[-2].budget.min_fidelity == 0.995
    plan(recipe)  # valid as a whole


def test_a_missing_exporter_leaves_out_its_stages_and_the_search_keeps_the_rest():
    with mock.patch.object(OpenVINOConverter, "requires", ("edgekit_no_such_module",)):
        recipe, skipped = without_unavailable(load_recipe("fastest"))
    assert skipped == [
        "openvino-fp32 (export): needs edgekit_no_such_module",
        "openvino-int8-static (quantize): built on openvino-fp32, left out",
    ]
    assert _names(recipe) == [
        "onnx-fp32", "onnx-fp32-opt", "onnx-int8-dynamic", "onnx-fp32-fast", "tflite-fp32", "executorch-fp32",
        "search-best",
    ]  # fmt: skip
    assert recipe.stages[-2].targets == ["tflite-fp32", "onnx-fp32-fast", "executorch-fp32"]
    plan(recipe)


def test_a_missing_quantizer_drops_its_stage_and_its_search_target():
    with mock.patch.object(openvino_backend, "REQUIRES", ("edgekit_no_such_module",)):
        recipe, skipped = without_unavailable(load_recipe("fastest"))
    assert skipped == ["openvino-int8-static (quantize): needs edgekit_no_such_module"]
    assert "openvino-fp32" in _names(recipe)
    assert recipe.stages[-2].targets == ["tflite-fp32", "onnx-fp32-fast", "executorch-fp32"]


def test_a_model_type_the_exporter_gets_wrong_is_left_out_not_refused():
    ckpt = SimpleNamespace(config={"model_type": "deberta-v2"}, is_image=False)
    with mock.patch.object(TFLiteConverter, "unsupported", {"deberta-v2": "it gets it wrong"}):
        recipe, skipped = without_unavailable(load_recipe("fastest"), checkpoint=ckpt)
    assert skipped == ["tflite-fp32 (export): needs an exporter for this model (it gets it wrong)"]
    assert recipe.stages[-2].targets == ["onnx-fp32-fast", "openvino-fp32", "executorch-fp32"]


def test_a_search_with_every_target_gone_is_left_out_and_other_recipes_are_untouched():
    data = {
        "version": 1,
        "name": "r",
        "skip_unavailable": True,
        "stages": [
            {"kind": "export", "format": "tflite", "name": "t"},
            {"kind": "search", "targets": ["t"], "budget": {"min_fidelity": 0.99}},
        ],
    }
    with mock.patch.object(TFLiteConverter, "requires", ("edgekit_no_such_module",)):
        recipe, skipped = without_unavailable(recipe_from_dict(data, "r"))
        assert [s.kind for s in recipe.stages] == [] or all(s.kind == "bench" for s in recipe.stages)
        assert skipped[1] == "search-best (search): every target left out"
        strict = recipe_from_dict({**data, "skip_unavailable": False}, "r")
        assert without_unavailable(strict) == (strict, [])


@pytest.mark.slow
def test_compress_without_a_recipe_promotes_the_fastest_faithful_artifact(tmp_path, tiny_ckpt, run_cli):
    res = run_cli("compress", str(tiny_ckpt), "-o", str(tmp_path / "out"), "-q", "--json")
    assert res.exit_code in (0, 3), res.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["recipe"]["name"] == "fastest"
    assert {t["target"] for t in report["search"]["trials"]} >= {"tflite-fp32", "onnx-fp32-fast"}
