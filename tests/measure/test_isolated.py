"""Timing models each in its own process (the search's finalists): real runtimes, alternating slices."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import InternalError
from edgekit.measure.isolated import time_isolated
from tests.foreign_models import legacy_fc_tflite, mlp_onnx


def test_an_onnx_and_a_tflite_model_are_timed_each_in_its_own_process(tmp_path):
    x = np.random.default_rng(0).standard_normal((1, 64)).astype(np.float32)
    models = [
        ("onnx", mlp_onnx(tmp_path / "m.onnx", hidden=512), {"x": x}),
        ("tflite", legacy_fc_tflite(tmp_path / "m.tflite", legacy_opcodes=False), {"input": x}),
    ]
    lats = time_isolated(models, tmp_path / "work", threads=1, warmup=2, runs=10, rounds=3)
    assert [lat.runs for lat in lats] == [10, 10]  # 4 + 3 + 3 runs each
    assert all(0 < lat.p50 <= lat.p90 < 1000 for lat in lats)
    logs = sorted(p.name for p in (tmp_path / "work").glob("spec-*.log"))
    assert logs == ["spec-0.log", "spec-1.log"]  # one worker per model


def test_a_worker_that_cannot_load_its_model_is_an_error_naming_the_model(tmp_path):
    bad = tmp_path / "missing.onnx"
    with pytest.raises(InternalError, match="missing.onnx"):
        time_isolated([("onnx", bad, {"x": np.zeros((1, 64), np.float32)})], tmp_path / "w", 1, 1, 3)


def test_a_worker_that_does_not_answer_is_stopped(tmp_path):
    import subprocess
    import sys

    from edgekit.measure.isolated import _read_line

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    with pytest.raises(InternalError, match="no answer in 1 s"):
        _read_line(proc, "m.onnx", tmp_path / "none.log", timeout_s=1)
    assert proc.wait(timeout=10) != 0  # killed, not left behind
    proc.stdout.close()
