"""The gate's model identity: what defines the model, never the library versions that wrote it."""

from __future__ import annotations

import json
import shutil

from safetensors.numpy import load_file, save_file

from edgekit.artifact import model_identity
from edgekit.testing import make_tiny_checkpoint


def _identity(ckpt):
    config = json.loads((ckpt / "config.json").read_text())
    return model_identity(config, [ckpt / "model.safetensors"])


def test_identity_ignores_write_time_metadata_and_follows_weights(tiny_ckpt, tmp_path):
    copy = shutil.copytree(tiny_ckpt, tmp_path / "copy")
    before = _identity(copy)
    config = json.loads((copy / "config.json").read_text())
    config["transformers_version"] = "9.99.0"  # what broke the CI gate on a fresh install
    config["_name_or_path"] = "/somewhere/else"
    (copy / "config.json").write_text(json.dumps(config, indent=4))
    tensors = load_file(copy / "model.safetensors")
    save_file(dict(reversed(list(tensors.items()))), copy / "model.safetensors", metadata={"format": "np"})
    assert _identity(copy) == before

    name = sorted(tensors)[0]
    tensors[name] = tensors[name].copy()
    tensors[name].flat[0] += 1e-3
    save_file(tensors, copy / "model.safetensors")
    assert _identity(copy) != before

    config["hidden_act"] = "relu"  # a field that defines the model
    (copy / "config.json").write_text(json.dumps(config))
    save_file(load_file(tiny_ckpt / "model.safetensors"), copy / "model.safetensors")
    assert _identity(copy) != before


def test_tiny_checkpoint_weights_depend_on_the_seed_alone(tmp_path):
    a = make_tiny_checkpoint(tmp_path / "a", seed=3)
    b = make_tiny_checkpoint(tmp_path / "b", seed=3)
    c = make_tiny_checkpoint(tmp_path / "c", seed=4)
    assert _identity(a) == _identity(b) != _identity(c)
