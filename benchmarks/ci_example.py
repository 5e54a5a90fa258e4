"""Execute the CI example workflow (examples/ci/.github/workflows/edgekit.yml) the way a runner does: read the
YAML, run its steps in order, four times in a row.

    python benchmarks/ci_example.py [--output benchmarks/results/ci_example.json] [--env KEY=VALUE ...]

`act` needs Docker, which this machine does not have, so this script is the runner. It reads the same YAML a
GitHub runner reads and executes every `run:` step with `bash -e` (GitHub's default shell) in the job's
workspace, with the workflow's `env:`, `GITHUB_STEP_SUMMARY`, `GITHUB_WORKSPACE` and `CI=true`; a step runs
when every earlier step passed, or when its `if:` is `always()` (`failure()`/`success()` as on GitHub). The
three actions the workflow uses are done here as the actions do them:

- `actions/checkout`: a fresh copy of the example repository (the examples/ci folder, plus what earlier runs
  committed) in a new workspace;
- `actions/setup-python` with `cache: pip`: a new virtual environment of this machine's Python 3.11 first on
  PATH, and a pip cache directory keyed by the sha256 of the `cache-dependency-path` files, restored when a
  run with the same key saved it before (hit or miss, and the bytes saved, are recorded; pip caches what it
  downloads, so on this machine, whose wheels come from local folders, it stays small);
- `actions/upload-artifact`: the `path:` entries copied out of the workspace; their total size is recorded.

Two environment values differ from a hosted runner, and are recorded in the JSON: edgekit-ml is not on PyPI
yet, so the wheel built from this checkout is offered through PIP_FIND_LINKS (pip then resolves
`edgekit-ml[demo]==0.1.0` as it would from PyPI); and this machine reaches PyPI and its own wheel folders but
not download.pytorch.org, so the workflow's PIP_EXTRA_INDEX_URL is replaced with this machine's pip index
setting (torch==2.13.0 resolves to the same CPU wheel).

The runs: (1) the first run, with no baseline committed: green, and the report becomes the baseline, which is
then committed to the example repository as a user would; (2) and (3) unchanged code: green, gated; (4) a
deliberate regression, the recipe's int8 stage removed: red, with the gate's summary. The JSON has each
run's steps, times, cache hit, uploaded bytes and job summary.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "ci"
WORKFLOW = Path(".github/workflows/edgekit.yml")
SCENARIOS = [
    ("first run, no baseline", "success", None),
    ("unchanged code", "success", None),
    ("unchanged code, again", "success", None),
    ("regression: the int8 stage removed from the recipe", "failure", "drop-int8"),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "ci_example.json")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="override a workflow env value")
    ap.add_argument("--keep", type=Path, help="keep the workspaces and caches here (default: a temporary folder)")
    args = ap.parse_args()

    base = args.keep or Path(tempfile.mkdtemp(prefix="edgekit-ci-example-"))
    base.mkdir(parents=True, exist_ok=True)
    wheels = base / "wheels"
    print(f"building the edgekit-ml wheel into {wheels}", flush=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
        check=True,
    )
    overrides = machine_overrides(wheels)
    overrides.update(dict(kv.split("=", 1) for kv in args.env))

    repo = base / "repo"  # the user's repository: the example folder, plus what the runs commit
    shutil.copytree(EXAMPLE, repo)
    workflow = yaml.safe_load((repo / WORKFLOW).read_text())
    runs = []
    for i, (scenario, expected, change) in enumerate(SCENARIOS, 1):
        print(f"\n=== run {i}: {scenario} (expected: {expected})", flush=True)
        if change == "drop-int8":
            drop_int8_stage(repo / "edgekit-ci" / "recipe.yaml")
        result = run_workflow(workflow, repo, base / f"run-{i}", base / "cache", overrides)
        result.update(run=i, scenario=scenario, expected=expected, as_expected=result["job"] == expected)
        runs.append(result)
        print(f"=== run {i}: job {result['job']} in {result['wall_s']:.0f} s", flush=True)
        created = base / f"run-{i}" / "artifacts" / "reports" / "baseline.json"
        if i == 1 and created.exists():  # the user downloads the uploaded baseline and commits it
            shutil.copy(created, repo / "edgekit-ci" / "baseline.json")
    record = {
        "workflow": str((EXAMPLE / WORKFLOW).relative_to(ROOT)),
        "runner": "benchmarks/ci_example.py (reads the YAML; executes run: steps with bash -e in order; "
        "checkout, setup-python with its pip cache and upload-artifact done as those actions do)",
        "env_overrides": overrides,
        "runs": runs,
        "all_as_expected": all(r["as_expected"] for r in runs),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    for r in runs:
        print(f"run {r['run']} {r['scenario']}: {r['job']} (expected {r['expected']}), {r['wall_s']:.0f} s")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0 if record["all_as_expected"] else 1


def machine_overrides(wheels: Path) -> dict[str, str]:
    """The environment values this machine needs in place of a hosted runner's (see the module text)."""
    links = " ".join(filter(None, [str(wheels), os.environ.get("PIP_FIND_LINKS", "")]))
    index = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.extra-index-url"], capture_output=True, text=True
    ).stdout.strip()
    return {"PIP_FIND_LINKS": links, "PIP_EXTRA_INDEX_URL": index}


def drop_int8_stage(recipe: Path) -> None:
    data = yaml.safe_load(recipe.read_text())
    data["stages"] = [s for s in data["stages"] if s["kind"] != "quantize"]
    recipe.write_text(yaml.safe_dump(data, sort_keys=False))


def run_workflow(workflow: dict, repo: Path, run_dir: Path, cache_root: Path, overrides: dict) -> dict:
    (job_name, job), *_ = workflow["jobs"].items()
    workspace = run_dir / "workspace"
    artifacts = run_dir / "artifacts"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    summary = run_dir / "step_summary.md"
    summary.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env["PATH"] = ":".join(p for p in env["PATH"].split(":") if not p.startswith(os.environ.get("VIRTUAL_ENV", "\0")))
    env.update({k: str(v) for k, v in (workflow.get("env") or {}).items()})
    env.update({k: str(v) for k, v in (job.get("env") or {}).items()})
    env.update(overrides)
    env.update(CI="true", GITHUB_WORKSPACE=str(workspace), GITHUB_STEP_SUMMARY=str(summary))
    steps: list[dict] = []
    failed = False
    cache: dict = {}
    t_job = time.perf_counter()
    for n, step in enumerate(job["steps"], 1):
        name = step.get("name") or step.get("uses") or step["run"].splitlines()[0]
        cond = str(step.get("if", "success()")).strip()
        if not should_run(cond, failed):
            steps.append({"step": n, "name": name, "status": "skipped"})
            continue
        t0 = time.perf_counter()
        log = run_dir / f"step-{n}.log"
        try:
            if "uses" in step:
                detail = use_action(step, workspace, artifacts, repo, env, cache_root, cache)
                ok, rc = True, 0
            else:
                step_env = {**env, **{k: str(v) for k, v in (step.get("env") or {}).items()}}
                with open(log, "w") as out:
                    rc = subprocess.run(
                        ["bash", "-e", "-c", step["run"]], cwd=workspace, env=step_env, stdout=out, stderr=out
                    ).returncode
                ok, detail = rc == 0, {}
        except Exception as err:  # noqa: BLE001 - an action that fails fails its step, as on a runner
            ok, rc, detail = False, 1, {"error": f"{type(err).__name__}: {err}"}
        entry = {"step": n, "name": name, "status": "success" if ok else "failure", "exit_code": rc}
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        entry.update(detail)
        if not ok and log.exists():
            entry["log_tail"] = log.read_text(errors="replace").splitlines()[-8:]
        steps.append(entry)
        print(f"  step {n} {name}: {entry['status']} ({entry['seconds']} s)", flush=True)
        failed = failed or not ok
    if cache.get("pip"):  # what the cache action saves at the end of the job (pip caches downloads only)
        saved = Path(env["PIP_CACHE_DIR"])
        saved.mkdir(parents=True, exist_ok=True)  # saved under its key, whatever pip put there
        cache["pip"]["saved_bytes"] = sum(f.stat().st_size for f in saved.rglob("*") if f.is_file())
    return {
        "job_name": job_name,
        "job": "failure" if failed else "success",
        "wall_s": round(time.perf_counter() - t_job, 1),
        "steps": steps,
        "pip_cache": cache.get("pip"),
        "uploaded_bytes": cache.get("uploaded_bytes"),
        "uploaded_files": cache.get("uploaded_files"),
        "step_summary": summary.read_text(),
    }


def should_run(cond: str, failed: bool) -> bool:
    cond = re.sub(r"^\$\{\{\s*(.*?)\s*\}\}$", r"\1", cond)
    if cond == "always()":
        return True
    if cond == "failure()":
        return failed
    if cond == "success()":
        return not failed
    raise SystemExit(f"this runner does not evaluate `if: {cond}`")


def use_action(step: dict, workspace: Path, artifacts: Path, repo: Path, env: dict, cache_root: Path, state: dict):
    action, _, _version = step["uses"].partition("@")
    opts = step.get("with") or {}
    if action == "actions/checkout":
        shutil.copytree(repo, workspace)
        return {"action": "checkout: a fresh copy of the repository"}
    if action == "actions/setup-python":
        if str(opts.get("python-version")) != f"{sys.version_info.major}.{sys.version_info.minor}":
            raise SystemExit(f"this machine has Python {sys.version_info[:2]}, the workflow asks {opts}")
        venv = workspace.parent / "python"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
        env["pythonLocation"] = str(venv)
        detail: dict = {"action": f"setup-python: a new virtual environment of Python {sys.version.split()[0]}"}
        if opts.get("cache") == "pip":
            digest = hashlib.sha256()
            for rel in str(opts.get("cache-dependency-path", "")).split():
                digest.update((workspace / rel).read_bytes())
            key = f"pip-{digest.hexdigest()[:16]}"
            hit = (cache_root / key).exists()
            env["PIP_CACHE_DIR"] = str(cache_root / key)  # restored (hit) or saved at the end of the job (miss)
            state["pip"] = {"key": key, "hit": hit}
            detail["pip_cache"] = state["pip"]
        return detail
    if action == "actions/upload-artifact":
        files = []
        for rel in str(opts["path"]).split():
            src = workspace / rel
            if src.is_dir():
                files += [p for p in src.rglob("*") if p.is_file()]
            elif src.is_file():
                files.append(src)
        for f in files:
            dest = artifacts / f.relative_to(workspace)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dest)
        state["uploaded_bytes"] = sum(f.stat().st_size for f in files)
        state["uploaded_files"] = sorted(str(f.relative_to(workspace)) for f in files)
        return {"action": f"upload-artifact {opts.get('name')}: {len(files)} files, {state['uploaded_bytes']} bytes"}
    raise SystemExit(f"this runner does not know the action {step['uses']}")


if __name__ == "__main__":
    sys.exit(main())
