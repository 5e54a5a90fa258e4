"""plan() checks a whole recipe from the recipe alone: formats, precisions, names. No model work, so every
bad recipe here fails in well under a second."""

import time

import pytest

from edgekit.errors import ExitCode, RecipeError
from edgekit.pipeline.plan import REFERENCE_NAME, _name, plan
from edgekit.recipe.config import QATConfig, QuantizeConfig, builtin_recipe_names, load_recipe, recipe_from_dict
from edgekit.stages import describe_formats, output_format, stage_io


def _recipe(*stages: dict):
    return recipe_from_dict({"version": 1, "name": "r", "stages": list(stages)}, "r")


def _fails(*stages: dict) -> str:
    """The one-line message plan() refuses ``stages`` with; checked to come fast, with exit code 2."""
    t0 = time.perf_counter()
    with pytest.raises(RecipeError) as err:
        plan(_recipe(*stages))
    assert time.perf_counter() - t0 < 2.0  # no stage ran: validation is ~50 µs warm, 0.2 s with first imports
    assert err.value.exit_code == ExitCode.INPUT and "\n" not in err.value.message
    return err.value.message


EXPORT = {"kind": "export"}
TFLITE = {"kind": "export", "format": "tflite", "input": REFERENCE_NAME}
DISTILL = {"kind": "distill", "train": {"epochs": 20}}  # an hour of training, if it ever ran


# planned by edgekit.generation.pipeline and seq2seq_pipeline (tests/generation)
GENERATIVE = {"decoder", "decoder-distill-int4", "decoder-distill-int8", "seq2seq", "seq2seq-distill-int8"}


def test_decoder_recipes_are_refused_for_encoders_before_any_work():
    assert GENERATIVE <= set(builtin_recipe_names())
    for name in sorted(GENERATIVE):
        refused = "applies to generative models|decoder language models|applies to encoder-decoders"
        with pytest.raises(RecipeError, match=refused):
            plan(load_recipe(name))


@pytest.mark.parametrize("name", sorted(set(builtin_recipe_names()) - GENERATIVE))
def test_every_builtin_recipe_plans(name):
    recipe = load_recipe(name)
    steps = plan(recipe)
    names = [s.name for s in steps]
    assert len(names) == len(set(names)) and REFERENCE_NAME not in names
    assert len(steps) == sum(s.kind != "bench" for s in recipe.stages)
    assert all(s.input == REFERENCE_NAME or s.input in names[: names.index(s.name)] for s in steps)


def test_builtin_names_come_from_the_format_each_stage_makes():
    assert [s.name for s in plan(load_recipe("qat"))] == [
        "onnx-fp32",
        "onnx-fp32-opt",
        "onnx-int8-dynamic",
        "onnx-int8-static",
        "onnx-int8-pt2e-static",
        "onnx-int8-qat",
    ]
    assert [(s.name, s.input) for s in plan(load_recipe("tflite-int8"))] == [
        ("tflite-fp32", REFERENCE_NAME),
        ("tflite-int8-static", "tflite-fp32"),
        ("tflite-int8-dynamic", "tflite-fp32"),
    ]
    # a student is a checkpoint: what follows it is named for what it makes, not for the student
    assert [s.name for s in plan(_recipe(DISTILL, EXPORT, {"kind": "quantize", "method": "dynamic"}))] == [
        "student",
        "onnx-fp32",
        "onnx-int8-dynamic",
    ]


def test_each_stage_kind_declares_what_it_takes_and_makes():
    qat = QATConfig(kind="qat")
    assert stage_io(qat).takes == {"hf-checkpoint"} and output_format(qat, "hf-checkpoint") == "onnx"
    q = QuantizeConfig(kind="quantize", method="dynamic")
    assert stage_io(q).takes == {"executorch", "onnx", "openvino", "tflite"} and output_format(q, "tflite") == "tflite"
    assert describe_formats(stage_io(q).takes) == "ExecuTorch, ONNX, OpenVINO IR or TFLite"


def test_wrong_input_format_fails_before_the_training_that_precedes_it():
    msg = _fails(DISTILL, {"kind": "optimize"})
    assert msg == (
        "recipe r: stages.1 (optimize) reads ONNX, but its input 'student' (stages.0, distill) is hf-checkpoint"
    )


def test_stage_after_an_export_of_the_wrong_format():
    assert _fails(TFLITE, {"kind": "optimize"}) == (
        "recipe r: stages.1 (optimize) reads ONNX, but its input 'tflite-fp32' (stages.0, export) is tflite"
    )
    assert _fails(EXPORT, {"kind": "export", "format": "tflite"}) == (
        "recipe r: stages.1 (export) reads a checkpoint, but its input 'onnx-fp32' (stages.0, export) is onnx"
    )
    assert _fails({"kind": "quantize", "method": "dynamic"}) == (
        "recipe r: stages.0 (quantize) reads ExecuTorch, ONNX, OpenVINO IR or TFLite, but its input 'pytorch-fp32' "
        "(the checkpoint) is hf-checkpoint"
    )


def test_qat_makes_int8_onnx_which_nothing_quantizes_again():
    # before: qat was assumed to keep its input's format, so this quantize was planned as hf-checkpoint-int8-dynamic
    msg = _fails({"kind": "qat"}, {"kind": "quantize", "method": "dynamic"})
    assert msg == (
        "recipe r: stages.1 (quantize) reads fp32 models only, but its input 'onnx-int8-qat' "
        "(stages.0, qat) is onnx int8"
    )
    assert "is onnx fp16" in _fails(EXPORT, {"kind": "quantize", "method": "fp16"}, {"kind": "optimize"})


def test_method_the_format_lacks():
    assert _fails(EXPORT, {"kind": "quantize", "method": "weight_only"}) == (
        "recipe r: stages.1 (quantize) cannot run on its input 'onnx-fp32' (stages.0, export): method 'weight_only' "
        "is not available for onnx (choose from dynamic, static, fp16)"
    )


def test_two_stages_writing_one_name():
    # a student's export and the teacher's both default to onnx-fp32: the second would delete the first
    assert _fails(DISTILL, EXPORT, {**EXPORT, "input": REFERENCE_NAME}) == (
        "recipe r: stages.1 (export) and stages.2 (export) both write an artifact named 'onnx-fp32'; the second "
        "would replace the first: give one of them another `name`"
    )
    msg = _fails({**EXPORT, "name": "m"}, {"kind": "bench"}, {"kind": "quantize", "method": "dynamic", "name": "m"})
    assert msg.startswith("recipe r: stages.0 (export) and stages.2 (quantize) both write an artifact named 'm'")
    # named apart, the same recipe plans
    steps = plan(_recipe(DISTILL, EXPORT, {**EXPORT, "input": REFERENCE_NAME, "name": "teacher-onnx"}))
    assert [(s.name, s.input) for s in steps][1:] == [("onnx-fp32", "student"), ("teacher-onnx", REFERENCE_NAME)]


@pytest.mark.parametrize(
    "name, why",
    [
        ("pytorch-fp32", "is the output's own"),
        ("report.json", "is the output's own"),
        ("../outside", "is not a plain directory name"),
        ("a/b", "is not a plain directory name"),
        (".train-student", "is not a plain directory name"),
        ("two\nlines", "is not a plain directory name"),
        ("x" * 256, "is not a plain directory name"),
    ],
)
def test_artifact_names_stay_inside_the_output(name, why):
    assert why in _fails({**EXPORT, "name": name})


def test_search_targets_must_be_earlier_fp32_onnx_or_tflite_artifacts():
    search = {"kind": "search", "budget": {"min_fidelity": 0.99}}
    assert _fails(EXPORT, {**search, "targets": ["onnx-fp32", "nope"]}) == (
        "recipe r: stages.1.targets: no earlier artifact named 'nope'"
    )
    assert _fails(EXPORT, {**search, "targets": [REFERENCE_NAME]}) == (
        "recipe r: stages.1 (search) reads ExecuTorch, ONNX, OpenVINO IR or TFLite, but its input 'pytorch-fp32' "
        "(the checkpoint) is hf-checkpoint"
    )
    assert _fails(
        EXPORT, {"kind": "quantize", "method": "dynamic"}, {**search, "targets": ["onnx-int8-dynamic"]}
    ).endswith("its input 'onnx-int8-dynamic' (stages.1, quantize) is onnx int8")
    # the targets, not the previous artifact, are what search reads
    steps = plan(_recipe(EXPORT, DISTILL | {"input": REFERENCE_NAME}, {**search, "targets": ["onnx-fp32"]}))
    assert steps[-1].name == "search-best"
    # what search makes is int8 or fp16: nothing quantizes it again
    assert _fails(EXPORT, search, {"kind": "quantize", "method": "dynamic"}).endswith(
        "its input 'search-best' (stages.1, search) is onnx int8 or fp16"
    )


def test_a_stage_that_may_write_two_formats_needs_a_name():
    q = QuantizeConfig(kind="quantize", method="dynamic")
    with pytest.raises(
        RecipeError,
        match=r"may write ONNX or TFLite \(onnx-int8-dynamic, tflite-int8-dynamic\): "
        "give it a `name`",
    ):
        _name(q, {"onnx", "tflite"}, "recipe r: stages.3 (quantize)")
    assert _name(q.model_copy(update={"name": "q"}), {"onnx", "tflite"}, "w") == "q"


def test_compress_refuses_a_bad_recipe_before_writing_anything(tiny_ckpt, tmp_path, run_cli):
    f = tmp_path / "bad.yaml"
    f.write_text("name: bad\nstages:\n  - kind: export\n    format: tflite\n  - kind: optimize\n")
    res = run_cli("compress", str(tiny_ckpt), "-r", str(f), "-o", str(tmp_path / "out"), "-q")
    assert res.exit_code == 2
    assert res.stderr.strip() == (
        "edgekit: error: recipe bad: stages.1 (optimize) reads ONNX, but its input "
        "'tflite-fp32' (stages.0, export) is tflite"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]
