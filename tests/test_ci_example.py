"""The CI example (examples/ci): the workflow is one benchmarks/ci_example.py can execute, its recipe is
valid and gates, and it pins the tested dependency set (issue 19)."""

import importlib.util
from pathlib import Path

import yaml

from edgekit.recipe.config import load_recipe

ROOT = Path(__file__).parents[1]
EXAMPLE = ROOT / "examples" / "ci"


def _runner():
    spec = importlib.util.spec_from_file_location("ci_example", ROOT / "benchmarks" / "ci_example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_step_is_one_the_runner_executes():
    flow = yaml.safe_load((EXAMPLE / ".github" / "workflows" / "edgekit.yml").read_text())
    runner = _runner()
    (job,) = flow["jobs"].values()
    known = {"actions/checkout", "actions/setup-python", "actions/upload-artifact"}
    for step in job["steps"]:
        assert ("run" in step) != ("uses" in step)
        if "uses" in step:
            assert step["uses"].split("@")[0] in known
        runner.should_run(str(step.get("if", "success()")), failed=False)
    assert runner.should_run("always()", failed=True) and not runner.should_run("success()", failed=True)
    # reports only: no model file is uploaded
    upload = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    assert "out/\n" not in upload["with"]["path"] and "reports/" in upload["with"]["path"]


def test_the_recipe_is_valid_gates_and_loses_its_int8_row_in_the_regression(tmp_path):
    recipe = load_recipe(str(EXAMPLE / "edgekit-ci" / "recipe.yaml"))
    assert recipe.gates is not None and recipe.gates.max_latency_regression is not None
    copy = tmp_path / "recipe.yaml"
    copy.write_text((EXAMPLE / "edgekit-ci" / "recipe.yaml").read_text())
    _runner().drop_int8_stage(copy)
    assert [s.kind for s in load_recipe(str(copy)).stages] == ["export", "optimize", "bench"]


def test_it_pins_the_tested_dependency_set():
    ours = (ROOT / "constraints.txt").read_text().splitlines()[1:]
    theirs = (EXAMPLE / "edgekit-ci" / "constraints.txt").read_text().splitlines()[1:]
    assert ours == theirs, "run .ci/lock: it writes both"
    req = (EXAMPLE / "edgekit-ci" / "requirements.txt").read_text()
    import edgekit

    assert f"edgekit-ml[demo]=={edgekit.__version__}" in req
