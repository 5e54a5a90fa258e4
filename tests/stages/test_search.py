"""The search stage: budgets, guards, limits, and the report when nothing passes."""

import json

import pytest

from edgekit.recipe.config import BudgetConfig, SearchConfig, recipe_from_dict
from edgekit.stages.search import _budget_verdict
from tests.helpers import FAST_BENCH

# every op type static int8, the attention-mask arithmetic, LayerNorm and softmax included
# (MiniLM: cosine 0.41; the tiny encoder: about 0.986)
BROKEN = {
    "kind": "quantize",
    "name": "static-everything",
    "method": "static",
    "op_types": [
        "MatMul",
        "Add",
        "Mul",
        "Div",
        "Sub",
        "Where",
        "Softmax",
        "Gather",
        "Attention",
        "SkipLayerNormalization",
        "LayerNormalization",
        "EmbedLayerNormalization",
        "BiasGelu",
        "Gelu",
        "ReduceMean",
        "Pow",
        "Sqrt",
        "Erf",
    ],
    "calibration": {"samples": 16, "seq_len": 32},
}
DYNAMIC = {"kind": "quantize", "name": "dynamic", "method": "dynamic"}


def _recipe(search: dict) -> dict:
    return {
        "version": 1,
        "name": "s",
        "stages": [
            {"kind": "export"},
            {"kind": "optimize"},
            {"kind": "search", "runs": 5, "samples": 24, "sensitivity_fallback": 0, **search},
            FAST_BENCH,
        ],
    }


def _compress(run_cli, ckpt, tmp_path, search: dict, *extra: str):
    path = tmp_path / "r.yaml"
    import yaml

    path.write_text(yaml.safe_dump(_recipe(search)))
    return run_cli("compress", str(ckpt), "-r", str(path), "-o", str(tmp_path / "out"), "-q", *extra)


def test_broken_candidate_is_never_promoted_and_nothing_passing_exits_3(tiny_ckpt, tmp_path, run_cli):
    res = _compress(run_cli, tiny_ckpt, tmp_path, {"budget": {"min_fidelity": 0.995}, "candidates": [BROKEN]})
    assert res.exit_code == 3
    assert res.stderr.count("\n") == 1 and "no candidate of 1 met the budget" in res.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())  # written anyway
    search = report["search"]
    assert search["winner"] is None
    trial = search["trials"][0]
    assert trial["verdict"] == "outside budget" and trial["fidelity"]["cosine_mean"] < 0.995
    assert search["best_candidate"]["candidate"] == "static-everything"
    assert "search-best" not in [r["name"] for r in report["results"]]
    assert not (tmp_path / "out" / "search-best").exists()
    assert "no candidate met the budget" in (tmp_path / "out" / "report.md").read_text()
    assert "| 1 | onnx-fp32-opt | static-everything |" in res.output


def test_broken_next_to_a_good_candidate(tiny_ckpt, tmp_path, run_cli):
    res = _compress(run_cli, tiny_ckpt, tmp_path, {"budget": {"min_fidelity": 0.995}, "candidates": [BROKEN, DYNAMIC]})
    assert res.exit_code in (0, 3)  # the tiny model's int8 may or may not beat fp32 on time: both are verdicts
    search = json.loads((tmp_path / "out" / "report.json").read_text())["search"]
    verdicts = {t["candidate"]: t["verdict"] for t in search["trials"]}
    assert verdicts["static-everything"] == "outside budget"
    assert verdicts["dynamic"] in ("pass", "slower than fp32")
    assert search["winner"] in (None, "onnx-fp32-opt/dynamic")
    if search["winner"]:
        assert res.exit_code == 0 and (tmp_path / "out" / "search-best" / "model.onnx").is_file()
        assert search["diagnostics"]["layers"]


@pytest.mark.slow  # 14-23 s on 2 cores; the default run stays under 10 minutes
def test_time_limit_and_trial_count_bound_the_search(tiny_ckpt, tmp_path, run_cli):
    _compress(run_cli, tiny_ckpt, tmp_path, {"budget": {"min_fidelity": 0.5}, "time_limit_s": 0.001})
    search = json.loads((tmp_path / "out" / "report.json").read_text())["search"]
    assert search["trials_run"] == 1 and search["stopped"].startswith("time_limit_s")


def test_accuracy_budget_needs_a_classifier_and_labels(tiny_ckpt, tiny_cls_ckpt, tmp_path, run_cli):
    res = _compress(run_cli, tiny_ckpt, tmp_path, {"budget": {"max_accuracy_drop": 1}})
    assert res.exit_code == 2 and "needs a task scored on labelled data, not feature-extraction" in res.stderr
    res = _compress(run_cli, tiny_cls_ckpt, tmp_path, {"budget": {"max_accuracy_drop": 1}})
    assert res.exit_code == 2 and "needs a labelled evaluation set" in res.stderr


@pytest.mark.slow  # 14-23 s on 2 cores; the default run stays under 10 minutes
def test_accuracy_budget_on_a_labelled_set(tiny_cls_ckpt, tmp_path, run_cli):
    from edgekit.data.calibration import load_text_data

    rows = [{"text": t, "label": f"label_{i % 3}"} for i, t in enumerate(load_text_data().heldout[:60])]
    labelled = tmp_path / "eval.jsonl"
    labelled.write_text("\n".join(json.dumps(r) for r in rows))
    res = _compress(
        run_cli,
        tiny_cls_ckpt,
        tmp_path,
        {"budget": {"max_accuracy_drop": 0}, "candidates": [BROKEN]},
        "--eval",
        str(labelled),
    )
    search = json.loads((tmp_path / "out" / "report.json").read_text())["search"]
    f = search["trials"][0]["fidelity"]
    assert {"accuracy", "macro_f1", "reference_accuracy", "accuracy_drop"} <= set(f)
    assert f["accuracy_drop"] == pytest.approx(f["reference_accuracy"] - f["accuracy"])
    assert res.exit_code == (0 if f["accuracy_drop"] <= 0 and search["winner"] else 3)


def test_budget_verdicts():
    cfg = SearchConfig(kind="search", budget=BudgetConfig(min_fidelity=0.99, max_size_mb=10))
    ok = {"cosine_mean": 0.995}
    assert _budget_verdict(cfg, ok, 5, None, 1.0, 2.0)[0] == "pass"
    assert _budget_verdict(cfg, {"cosine_mean": 0.98}, 5, None, 1.0, 2.0)[0] == "outside budget"
    assert _budget_verdict(cfg, ok, 5, None, 2.0, 2.0)[0] == "slower than fp32"  # never promoted
    assert _budget_verdict(cfg, ok, 11, None, 1.0, 2.0)[0] == "over limit"


def test_search_config_is_strict():
    from edgekit.errors import RecipeError

    with pytest.raises(
        RecipeError, match="exactly one of min_fidelity, max_accuracy_drop, max_perplexity_increase and max_metric_drop"
    ):
        recipe_from_dict(_recipe({"budget": {"min_fidelity": 0.9, "max_accuracy_drop": 1}}))
    with pytest.raises(RecipeError, match="unknown key"):
        recipe_from_dict(_recipe({"budget": {"min_fidelity": 0.9}, "trials": 3}))


def test_the_report_says_how_the_finalists_were_timed():
    from edgekit.report.build import search_markdown

    trial = {"fidelity": {"cosine_mean": 0.998}, "p50_ms": 2.0, "fp32_p50_ms": 6.0, "speedup_vs_fp32": 3.0}
    trial.update(size_bytes=2e6, verdict="pass", reason="ok", format="tflite")
    trials = [
        {**trial, "trial": 1, "target": "tflite-fp32", "candidate": "dynamic", "final_p50_ms": 2.5, "winner": True},
        {**trial, "trial": 2, "target": "onnx-fp32-opt", "candidate": "dynamic", "final_p50_ms": 3.25},
        {**trial, "trial": 3, "target": "onnx-fp32-opt", "candidate": "static", "verdict": "outside budget"},
    ]
    search = {"budget": {"min_fidelity": 0.995}, "metric": "cosine_mean", "winner": "tflite-fp32/dynamic"}
    lines = search_markdown({**search, "samples": 24, "trials_run": 3, "elapsed_s": 9.0, "trials": trials})
    assert (
        "Finalists re-timed alternately, each in its own process (p50 ms): tflite-fp32/dynamic 2.50, "
        "onnx-fp32-opt/dynamic 3.25." in lines
    )
