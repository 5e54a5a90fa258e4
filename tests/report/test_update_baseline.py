"""`edgekit report --baseline B --update-baseline`: the first run creates B, a passing run refreshes it, a
failing run leaves it as it was, and a file edgekit did not write is never replaced (issue 19)."""

import json
import shutil
from pathlib import Path

from edgekit.output import is_edgekit_file
from tests.cli.test_cli import _one_line_error

REAL = Path(__file__).parents[2] / "benchmarks" / "baselines" / "tiny-ptq-dynamic.json"


def _report(tmp_path: Path, name: str = "report.json", drop: str | None = None) -> Path:
    data = json.loads(REAL.read_text())
    if drop:
        data["results"] = [r for r in data["results"] if r["name"] != drop]
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_first_run_creates_the_baseline_and_says_nothing_was_gated(tmp_path, run_cli):
    new, base = _report(tmp_path), tmp_path / "ci" / "baseline.json"
    res = run_cli(
        "report", str(new), "--baseline", str(base), "--update-baseline",
        "--markdown", str(tmp_path / "s.md"), "--junit", str(tmp_path / "g.xml"), "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.output)
    assert (out["passed"], out["baseline_created"], out["baseline_updated"]) == (None, True, True)
    assert is_edgekit_file(base)
    assert json.loads(base.read_text())["results"] == json.loads(new.read_text())["results"]
    assert (tmp_path / "s.md").read_text().startswith(f"> **No baseline at {base} yet: nothing was gated.")
    assert 'skipped="1"' in (tmp_path / "g.xml").read_text()


def test_a_passing_run_refreshes_it_and_a_failing_one_leaves_it(tmp_path, run_cli):
    base = tmp_path / "baseline.json"
    assert run_cli("report", str(_report(tmp_path)), "--baseline", str(base), "--update-baseline").exit_code == 0
    before = base.read_bytes()
    gate = ("--baseline", str(base), "--update-baseline", "--max-size-growth", "1")
    res = run_cli("report", str(_report(tmp_path, "again.json")), *gate, "--json")
    assert res.exit_code == 0 and json.loads(res.output)["baseline_updated"] is True
    res = run_cli("report", str(_report(tmp_path, "broken.json", drop="onnx-int8-dynamic")), *gate, "--json")
    assert res.exit_code == 3
    assert json.loads(res.output)["baseline_updated"] is False
    assert base.read_bytes() == before


def test_no_baseline_without_the_flag_and_a_user_file_are_refused(tmp_path, run_cli):
    new = _report(tmp_path)
    _one_line_error(run_cli("report", str(new), "--baseline", str(tmp_path / "none.json")), 2, "--update-baseline")
    user = tmp_path / "mine.json"
    shutil.copy(REAL, user)  # a real report, but copied by the user: not edgekit's to replace
    before = user.read_bytes()
    res = run_cli("report", str(new), "--baseline", str(user), "--update-baseline")
    _one_line_error(res, 2, "was not written by edgekit")
    assert user.read_bytes() == before
