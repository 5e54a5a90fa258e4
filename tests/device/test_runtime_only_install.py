"""The wheel built from this tree, installed with its runtime-only extras (`pip install
"edgekit_ml-*.whl[litert,onnxruntime]"`) in a fresh virtual environment: no torch, no TensorFlow, no
transformers, and it still loads, verifies, runs and benchmarks artifacts and bundles."""

import json
import subprocess
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runtime_env(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rt")
    env = root / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    pip = [str(env / "bin" / "python"), "-m", "pip"]
    built = subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", "-w", str(root / "dist"), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if built.returncode != 0 and "connection" in built.stderr.lower():
        pytest.skip(f"package index unreachable (the build backend): {built.stderr.splitlines()[-1]}")
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (root / "dist").glob("edgekit_ml-*-py3-none-any.whl")  # the distribution's name: edgekit-ml
    proc = subprocess.run(
        [*pip, "install", "-q", f"{wheel}[litert,onnxruntime]"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0 and ("No matching distribution" in proc.stderr or "connection" in proc.stderr.lower()):
        pytest.skip(f"package index unreachable: {proc.stderr.splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return env


def test_no_torch_no_tensorflow(runtime_env):
    code = (
        "import importlib.util as u, json; print(json.dumps({m: u.find_spec(m) is not None for m in "
        "['torch', 'tensorflow', 'transformers', 'ai_edge_litert', 'onnxruntime', 'tokenizers', 'edgekit_runtimes']}))"
    )
    out = subprocess.run([str(runtime_env / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True)
    found = json.loads(out.stdout)
    assert found == {
        "torch": False,
        "tensorflow": False,
        "transformers": False,
        "ai_edge_litert": True,
        "onnxruntime": True,
        "tokenizers": True,
        "edgekit_runtimes": True,
    }


def test_runs_and_benchmarks_an_exported_artifact(runtime_env, tiny_tflite, tmp_path):
    report = tmp_path / "r.json"
    proc = subprocess.run(
        [
            str(runtime_env / "bin" / "edgekit"),
            "bench",
            str(tiny_tflite / "tflite-int8-dynamic"),
            "--runs",
            "5",
            "-o",
            str(report),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    row = json.loads(report.read_text())["results"][0]
    assert row["runtime"] == "litert"
    assert row["fidelity"]["selfcheck_cosine_min"] > 0.999
    assert row["latency_ms"]["p50"] > 0
    assert "torch" not in json.loads(report.read_text())["environment"]["versions"]


@pytest.fixture(scope="module")
def tflite_bundle(tiny_tflite, tmp_path_factory) -> Path:
    from edgekit.pipeline.bundling import build_bundle

    return build_bundle(tiny_tflite, tmp_path_factory.mktemp("tb") / "b", artifacts=["tflite-int8-dynamic"]).path


@pytest.mark.parametrize("which", ["tiny_bundle", "tflite_bundle"])
def test_edgekit_run_reproduces_the_recorded_reference(runtime_env, which, request):
    """`edgekit run` there gives the outputs recorded when the bundle was made (cosine >= 0.999)."""
    import numpy as np

    from edgekit.device.bundle import open_bundle

    bundle = open_bundle(request.getfixturevalue(which))
    texts = bundle.reference_texts[:4]
    proc = subprocess.run(
        [str(runtime_env / "bin" / "edgekit"), "run", str(bundle.path), *texts],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    got = np.array([r["embedding"] for r in out["results"]])
    expected = bundle.reference_outputs(out["variant"])[:4]
    cos = (got * expected).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1))
    assert cos.min() >= 0.999
    check = subprocess.run(
        [str(runtime_env / "bin" / "edgekit"), "run", str(bundle.path), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert check.returncode == 0 and json.loads(check.stdout)["check"]["passed"], check.stderr
