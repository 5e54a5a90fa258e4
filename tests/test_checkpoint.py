import json

import pytest

from edgekit.checkpoint import load_checkpoint
from edgekit.errors import CheckpointError
from edgekit.tasks import infer_task


def test_loads_tiny_and_infers_task(tiny_ckpt, tiny_cls_ckpt):
    ck = load_checkpoint(tiny_ckpt)
    assert ck.task == "feature-extraction"
    assert ck.input_names == ["input_ids", "attention_mask", "token_type_ids"]
    assert load_checkpoint(tiny_cls_ckpt).task == "text-classification"
    assert load_checkpoint(tiny_cls_ckpt, task="feature-extraction").task == "feature-extraction"


def test_infer_task_from_architectures():
    assert infer_task({"architectures": ["BertForSequenceClassification"]}) == "text-classification"
    assert infer_task({"architectures": ["BertModel"]}) == "feature-extraction"
    assert infer_task({}) == "feature-extraction"


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope")


def test_config_without_weights(tiny_ckpt, copy_ckpt):
    d = copy_ckpt(tiny_ckpt)
    (d / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights"):
        load_checkpoint(d)


def test_truncated_safetensors(tiny_ckpt, copy_ckpt):
    d = copy_ckpt(tiny_ckpt)
    w = d / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="corrupt or truncated safetensors"):
        load_checkpoint(d)


def test_garbage_safetensors(tiny_ckpt, copy_ckpt):
    d = copy_ckpt(tiny_ckpt)
    (d / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(d)


def test_pickle_weights_refused_without_flag(tiny_ckpt, copy_ckpt):
    d = copy_ckpt(tiny_ckpt)
    (d / "model.safetensors").unlink()
    (d / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(CheckpointError, match="allow-unsafe-pickle"):
        load_checkpoint(d)
    assert load_checkpoint(d, allow_unsafe_pickle=True).path == d


def test_bad_config(tiny_ckpt, copy_ckpt, tmp_path):
    d = copy_ckpt(tiny_ckpt)
    (d / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(d)
    (d / "config.json").write_text(json.dumps({"hidden_size": 3}))
    with pytest.raises(CheckpointError, match="no model_type"):
        load_checkpoint(d)
    (d / "config.json").unlink()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_checkpoint(d)


def test_file_instead_of_directory(tmp_path):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="must be a directory"):
        load_checkpoint(f)


def test_unknown_task(tiny_ckpt):
    with pytest.raises(CheckpointError, match="unknown task"):
        load_checkpoint(tiny_ckpt, task="translation")


def test_remote_code_is_never_run(tiny_ckpt, copy_ckpt):
    d = copy_ckpt(tiny_ckpt)
    cfg = json.loads((d / "config.json").read_text())
    cfg["model_type"] = "evil-custom"
    cfg["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "modeling_evil.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(CheckpointError, match=r"needs the checkpoint's own Python code \(auto_map"):
        load_checkpoint(d)  # refused from config.json alone, before any weight or module is read
    del cfg["auto_map"]  # an unknown model_type without auto_map: transformers has no class for it
    (d / "config.json").write_text(json.dumps(cfg))
    ck = load_checkpoint(d)
    with pytest.raises(CheckpointError, match="cannot load the model"):
        _ = ck.model
