"""The real MiniLM through the TFLite recipes, run on LiteRT."""

import pytest

from edgekit.pipeline.run import compress
from tests.conftest import requires_minilm
from tests.helpers import fast_recipe

pytestmark = [pytest.mark.integration, requires_minilm]


@pytest.mark.slow  # ~30 s on 2 cores: run with `python -m pytest -m slow`
def test_tflite_int8_recipe(tmp_path):
    res = compress(
        "minilm",
        fast_recipe("tflite-int8", fidelity_samples=100, seq_len=128, threads=2),
        tmp_path / "tfl",
        progress=False,
    )
    rows = {r["name"]: r for r in res.report["results"]}
    fp32 = rows["tflite-fp32"]
    assert fp32["fidelity"]["cosine_min"] > 0.99999
    for name in ("tflite-int8-static", "tflite-int8-dynamic"):
        row = rows[name]
        assert row["fidelity"]["cosine_mean"] >= 0.99, name
        assert row["size_bytes"] <= 0.27 * fp32["size_bytes"], name
        assert row["runtime_details"]["xnnpack_delegate"] is True
    assert (tmp_path / "tfl" / "tflite-int8-static" / "selfcheck.npz").is_file()
