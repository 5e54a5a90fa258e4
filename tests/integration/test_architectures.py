"""Export coverage on random-weight twins of the encoder families (the README's table): each cell exports
with parity to PyTorch, or is refused with exit 2 and its reason before any work."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edgekit.testing import ARCHITECTURES

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from architectures import FORMATS, TASKS, run_cell  # noqa: E402

sys.path.pop(0)
REFUSED = {("deberta-v2", "tflite")}  # litert-torch gets its relative-position attention wrong (cosine -0.38)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("model_type", list(ARCHITECTURES))
def test_random_weight_twin_exports_with_parity(model_type, task, fmt, tmp_path):
    cell = run_cell(model_type, task, fmt, tmp_path)
    if (model_type, fmt) in REFUSED:
        assert not cell["ok"] and cell["exit_code"] == 2 and "not supported" in cell["error"], cell
    else:
        assert cell["ok"] and cell["max_abs_diff"] <= 1e-4 and cell["min_cosine"] >= 0.99999, cell


def test_deberta_to_tflite_is_refused_before_any_work(tmp_path, run_cli):
    from edgekit.testing import make_tiny_architecture

    ckpt = make_tiny_architecture(tmp_path / "deberta", "deberta-v2")
    res = run_cli("compress", str(ckpt), "-r", "tflite-dynamic", "-o", str(tmp_path / "out"), "-q")
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "tflite export (tflite-fp32) of a deberta-v2 model is not supported" in res.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("model_type", ["vit", "deit"])
def test_a_vision_backbone_without_a_head_is_refused(tmp_path, run_cli, model_type):
    import json

    import transformers

    config = transformers.AutoConfig.for_model(
        model_type, image_size=8, patch_size=2, hidden_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    model = transformers.AutoModel.from_config(config)
    model.save_pretrained(str(tmp_path / "m"), safe_serialization=True)
    assert json.loads((tmp_path / "m" / "config.json").read_text())["architectures"][0].endswith("Model")
    res = run_cli("compress", str(tmp_path / "m"), "-o", str(tmp_path / "out"), "-q")
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "vision backbone without a classification head" in res.stderr
