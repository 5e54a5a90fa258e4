"""distill and prune stages inside a recipe: smaller students, exported and scored on a labelled test set."""

import json

import pytest
import yaml

from edgekit.artifact import Artifact
from edgekit.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def chain(tiny_cls_ckpt, task_dir, tmp_path_factory):
    from edgekit.pipeline.run import compress
    from edgekit.recipe.config import recipe_from_dict

    train = {"epochs": 1, "lr": 1e-3, "batch_size": 32, "max_len": 32}
    recipe = recipe_from_dict(
        {
            "version": 1,
            "name": "chain",
            "stages": [
                {"kind": "distill", "name": "student", "data": str(task_dir), "layers": 1, "train": train},
                {
                    "kind": "prune",
                    "name": "student-pruned",
                    "data": str(task_dir),
                    "heads": 1,
                    "ffn": 0.5,
                    "vocabulary": True,
                    "importance_batches": 2,
                    "recover": train,
                },
                {"kind": "export", "format": "onnx"},
                {"kind": "quantize", "method": "dynamic"},
                {
                    "kind": "bench",
                    "eval": str(task_dir),
                    "fidelity_samples": 120,
                    "runs": 5,
                    "warmup": 1,
                    "seq_len": 32,
                    "threads": 1,
                },
            ],
        }
    )
    out = tmp_path_factory.mktemp("chain") / "out"
    return compress(tiny_cls_ckpt, recipe, out, progress=False), out


def test_student_and_pruned_checkpoints(chain, tiny_cls_ckpt):
    result, out = chain
    teacher = load_checkpoint(tiny_cls_ckpt).model
    student = load_checkpoint(out / "student").model
    pruned = load_checkpoint(out / "student-pruned").model
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert student.config.num_hidden_layers == 1 < teacher.config.num_hidden_layers
    assert pruned.config.intermediate_size == 64 and pruned.config.edgekit_attention_heads == 1
    assert n(pruned) < n(student) < n(teacher)
    meta = Artifact.load(out / "student-pruned").meta
    assert meta["format"] == "hf-checkpoint" and meta["parent"]["name"] == "student"
    assert meta["kept"]["heads_per_layer"] == 1 and "before_pruning" in meta
    vocab = meta["vocabulary"]
    assert vocab["after"] < vocab["before"] and pruned.config.vocab_size == vocab["after"]
    tok = load_checkpoint(out / "student-pruned").tokenizer
    assert len(tok.get_vocab()) == vocab["after"]
    ids = tok(["the state of the union is strong"])["input_ids"][0]
    assert max(ids) < vocab["after"] and tok.decode(ids, skip_special_tokens=True) == "the state of the union is strong"
    assert not list(out.glob(".train-*"))  # finished runs leave nothing to resume


def test_pruned_student_exports_with_parity_and_is_scored(chain):
    result, out = chain
    onnx_meta = Artifact.load(out / "onnx-fp32").meta
    assert onnx_meta["validation"]["max_abs_diff"] < 1e-4  # against the student, not the teacher
    rows = {r["name"]: r for r in result.report["results"]}
    assert rows["pytorch-fp32"]["fidelity"]["reference"]
    for name in ("student", "student-pruned", "onnx-fp32", "onnx-int8-dynamic"):
        f = rows[name]["fidelity"]
        assert 0 <= f["accuracy"] <= 100 and f["eval_samples"] == 120
        assert f["accuracy_drop"] == pytest.approx(rows["pytorch-fp32"]["fidelity"]["accuracy"] - f["accuracy"])
    assert rows["onnx-int8-dynamic"]["size_bytes"] < rows["onnx-fp32"]["size_bytes"]
    assert "acc " in (out / "report.md").read_text()


def test_training_stage_configs_are_strict():
    from edgekit.errors import RecipeError
    from edgekit.recipe.config import recipe_from_dict

    with pytest.raises(RecipeError, match="unknown key"):
        recipe_from_dict({"name": "x", "stages": [{"kind": "distill", "epochs": 3}]})
    with pytest.raises(RecipeError, match="stages.0.distill.train.lr"):
        recipe_from_dict({"name": "x", "stages": [{"kind": "distill", "train": {"lr": -1}}]})


def test_builtin_training_recipes_plan(tmp_path):
    from edgekit.pipeline.run import plan
    from edgekit.recipe.config import load_recipe

    steps = [n for _, n, _ in plan(load_recipe("distill-prune-int8"))]
    assert steps == [
        "student",
        "student-pruned",
        "onnx-fp32",
        "onnx-fp32-opt",
        "onnx-int8-dynamic",
        "tflite-fp32",
        "tflite-int8-dynamic",
    ]
    stages = yaml.safe_load(load_recipe("distill-prune-int8").to_yaml())["stages"]
    assert stages[1]["heads"] == 0.333
    # one schedule for spam (132 batches an epoch) and digits (40): min_steps gives the small set more epochs
    assert (stages[0]["train"]["min_steps"], stages[1]["recover"]["min_steps"]) == (400, 200)
    assert stages[0]["losses"]["hidden"] == 1.0
    digits = load_recipe("distill-prune-int8").with_data("digits")
    assert [s.data for s in digits.stages[:2]] == ["digits", "digits"] and digits.bench_config().eval == "digits"
    assert [s.kind for s in digits.stages] == [s.kind for s in load_recipe("distill-prune-int8").stages]
    assert json.loads(load_recipe("prune").to_json())["stages"][0]["recover"]["epochs"] == 1.0


def test_unstructured_sparsity_shrinks_the_compressed_file_only(tiny_cls_ckpt, task_dir, tmp_path):
    from edgekit.pipeline.run import compress
    from edgekit.recipe.config import recipe_from_dict

    train = {"epochs": 0.5, "lr": 1e-3, "batch_size": 32, "max_len": 32}
    recipe = recipe_from_dict(
        {
            "version": 1,
            "name": "sparse",
            "stages": [
                {"kind": "prune", "data": str(task_dir), "sparsity": 0.7, "importance_batches": 1, "recover": train},
                {
                    "kind": "bench",
                    "runs": 3,
                    "warmup": 1,
                    "seq_len": 16,
                    "threads": 1,
                    "fidelity_samples": 16,
                    "reference": False,
                },
            ],
        }
    )
    compress(tiny_cls_ckpt, recipe, tmp_path / "out", progress=False)
    meta = Artifact.load(tmp_path / "out" / "pruned").meta
    assert meta["unstructured_sparsity"] >= 0.69  # zeros stayed zero through recovery training
    dense = load_checkpoint(tiny_cls_ckpt).model
    sparse = load_checkpoint(tmp_path / "out" / "pruned").model
    assert sum(p.numel() for p in sparse.parameters()) == sum(p.numel() for p in dense.parameters())
    assert meta["gzip_bytes"] < 0.8 * meta["size_bytes"]


@pytest.mark.slow  # ~30 s on 2 cores: run with `python -m pytest -m slow`
def test_qat_exports_qdq_onnx_scored_beside_ptq(tiny_cls_ckpt, task_dir, tmp_path):
    import onnx

    from edgekit.pipeline.run import compress
    from edgekit.recipe.config import recipe_from_dict

    recipe = recipe_from_dict(
        {
            "version": 1,
            "name": "qat",
            "stages": [
                {"kind": "export"},
                {"kind": "quantize", "method": "dynamic"},
                {
                    "kind": "qat",
                    "input": "pytorch-fp32",
                    "mode": "ptq",
                    "data": str(task_dir),
                    "calibration_batches": 2,
                    "train": {"max_len": 32},
                },
                {
                    "kind": "qat",
                    "input": "pytorch-fp32",
                    "data": str(task_dir),
                    "calibration_batches": 2,
                    "train": {"epochs": 0.5, "lr": 1e-4, "batch_size": 32, "max_len": 32},
                },
                {
                    "kind": "bench",
                    "eval": str(task_dir),
                    "fidelity_samples": 120,
                    "runs": 3,
                    "warmup": 1,
                    "seq_len": 32,
                    "threads": 1,
                },
            ],
        }
    )
    result = compress(tiny_cls_ckpt, recipe, tmp_path / "out", progress=False)
    graph = onnx.load(str(tmp_path / "out" / "onnx-int8-qat" / "model.onnx")).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "MatMul"} <= ops
    assert any(t.data_type == onnx.TensorProto.INT8 for t in graph.initializer)  # int8 weights stored
    rows = {r["name"]: r for r in result.report["results"]}
    assert rows["onnx-int8-qat"]["precision"] == "int8"
    assert "accuracy" in rows["onnx-int8-qat"]["fidelity"] and "accuracy" in rows["onnx-int8-dynamic"]["fidelity"]
    meta = Artifact.load(tmp_path / "out" / "onnx-int8-qat").meta
    assert meta["validation"]["cosine_mean"] > 0.9 and meta["history"][0]["step"] == 0
    # keep_best: QAT never ends below its calibrated start on the validation split
    assert meta["validation"]["val_accuracy"] >= meta["validation_after_calibration"]
    assert meta["frozen_observers"] > 0  # the calibrated ranges stay fixed while the weights train
    ptq = Artifact.load(tmp_path / "out" / "onnx-int8-pt2e-static").meta
    assert ptq["scheme"][0].startswith("static PTQ") and len(ptq["history"]) == 1
    assert "accuracy" in rows["onnx-int8-pt2e-static"]["fidelity"]


def test_bundle_of_a_pruned_vocabulary_student_carries_its_tokenizer(chain, tmp_path):
    import edgekit
    from edgekit.pipeline.bundling import build_bundle

    result, out = chain
    bundle = build_bundle(out, tmp_path / "b", artifacts=["onnx-int8-dynamic"])
    student_tok = json.loads((out / "student-pruned" / "tokenizer.json").read_text())["model"]["vocab"]
    bundled_tok = json.loads((bundle.path / "tokenizer" / "tokenizer.json").read_text())["model"]["vocab"]
    assert bundled_tok == student_tok
    model = edgekit.load(bundle.path, threads=1)
    assert model.check()["passed"]
    assert model.classify(["the budget and taxes"])[0].label in {"label_0", "label_1", "label_2"}


def test_vocabulary_pruned_to_a_small_set_still_records_and_exports(tiny_cls_ckpt, tmp_path):
    """Parity and self-check texts use words outside the kept vocabulary: the student's own tokenizer feeds it."""
    from edgekit.pipeline.run import compress
    from edgekit.recipe.config import recipe_from_dict

    data = tmp_path / "small"
    data.mkdir()
    rows = [
        {"text": t, "label": f"label_{i % 3}"}
        for i, t in enumerate(
            ["the budget", "our nation", "the economy grows", "taxes are low", "we will win", "america is strong"] * 6
        )
    ]
    for split in ("train", "validation", "test"):
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = recipe_from_dict(
        {
            "version": 1,
            "name": "v",
            "stages": [
                {"kind": "prune", "data": str(data), "vocabulary": True, "importance_batches": 1, "recover": None},
                {"kind": "export"},
                {"kind": "bench", "runs": 3, "warmup": 1, "seq_len": 16, "threads": 1, "fidelity_samples": 16},
            ],
        }
    )
    result = compress(tiny_cls_ckpt, recipe, tmp_path / "out", progress=False)
    meta = Artifact.load(tmp_path / "out" / "pruned").meta
    assert meta["vocabulary"]["after"] < 0.5 * meta["vocabulary"]["before"]
    assert Artifact.load(tmp_path / "out" / "onnx-fp32").meta["validation"]["max_abs_diff"] < 1e-4
    assert {r["name"] for r in result.report["results"]} == {"pytorch-fp32", "pruned", "onnx-fp32"}


def test_qat_leaves_the_fp32_model_untouched(tiny_cls_ckpt, task_dir):
    import torch

    from edgekit.training.qat import prepare

    ck = load_checkpoint(tiny_cls_ckpt)
    before = {k: v.clone() for k, v in ck.model.state_dict().items()}
    adapter = prepare(ck)
    with torch.no_grad():
        for p in adapter.parameters():
            p.add_(1.0)  # what training would do to shared storage
    after = ck.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_min_steps_gives_a_small_set_more_epochs():
    from edgekit.recipe.config import TrainConfig
    from edgekit.stages.train import _settings

    assert _settings(TrainConfig(epochs=2, batch_size=32, min_steps=400), 1257).epochs == 10.0  # 40 steps an epoch
    assert _settings(TrainConfig(epochs=2, batch_size=32, min_steps=400), 4213).epochs == pytest.approx(400 / 132)
    assert _settings(TrainConfig(epochs=2, batch_size=32, min_steps=400), 100_000).epochs == 2
    assert _settings(TrainConfig(epochs=2), 10).epochs == 2
