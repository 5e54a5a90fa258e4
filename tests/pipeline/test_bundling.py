"""reference.npz: variant names are keys, whatever they are; numbers only."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.pipeline.bundling import save_npz


def test_reference_npz_takes_any_variant_name_and_refuses_objects(tmp_path):
    arrays = {"file": np.arange(3, dtype=np.float32), "allow_pickle": np.ones((2, 2)), "onnx-int8-dynamic": np.zeros(1)}
    save_npz(tmp_path / "r.npz", arrays)  # np.savez_compressed(**arrays) would take two of these for its parameters
    with np.load(tmp_path / "r.npz", allow_pickle=False) as data:
        assert sorted(data.files) == sorted(arrays)
        assert all(np.array_equal(data[k], v) for k, v in arrays.items())
    with pytest.raises(ValueError, match="allow_pickle"):
        save_npz(tmp_path / "o.npz", {"x": np.array([object()])})
