"""ONNX artifact folders open in the ecosystem's loaders as they are: config and tokenizer beside the model,
sentence-transformers' module files, and the token embeddings Optimum reads beside the pooled output."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.artifact import Artifact

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["onnx-fp32", "onnx-fp32-opt", "onnx-int8-dynamic"])
def test_onnx_artifact_folders_carry_config_tokenizer_and_sentence_transformers_files(tiny_compressed, name):
    folder = tiny_compressed / name
    art = Artifact.load(folder)
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "modules.json", "1_Pooling/config.json"):
        assert (folder / f).is_file() and f in art.meta["files"], f  # hashed in the manifest like the model
    modules = json.loads((folder / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling"]
    pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    hidden = json.loads((folder / "config.json").read_text())["hidden_size"]
    assert pooling["pooling_mode_mean_tokens"] and pooling["word_embedding_dimension"] == hidden


def test_the_graph_has_token_embeddings_whose_mean_is_the_pooled_output(tiny_compressed):
    import onnxruntime as ort
    from transformers import AutoTokenizer

    folder = tiny_compressed / "onnx-fp32"
    tok = AutoTokenizer.from_pretrained(str(folder))  # the folder's own tokenizer files
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["embeddings", "last_hidden_state"]
    enc = tok(["a short one", "a rather longer sentence for the tokenizer"], padding=True, return_tensors="np")
    feeds = {i.name: enc[i.name].astype(np.int64) for i in session.get_inputs()}
    pooled, tokens = session.run(None, feeds)
    mask = enc["attention_mask"][..., None].astype(np.float32)
    assert tokens.shape == (*enc["input_ids"].shape, pooled.shape[-1])
    np.testing.assert_allclose((tokens * mask).sum(1) / mask.sum(1), pooled, atol=1e-5)


def test_the_checkpoints_own_sentence_transformers_files_are_kept(tmp_path):
    """A checkpoint with modules.json (MiniLM has Transformer, Pooling, Normalize) keeps its pipeline."""
    from types import SimpleNamespace

    from edgekit.pipeline.ecosystem import write_ecosystem_files
    from edgekit.tasks import get_task

    src = tmp_path / "ckpt"
    (src / "1_Pooling").mkdir(parents=True)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        {"idx": 3, "name": "3", "path": "../outside", "type": "x"},  # never followed out of the checkpoint
    ]
    (src / "modules.json").write_text(json.dumps(modules))
    (src / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')
    (src / "config.json").write_text("{}")
    out = tmp_path / "art"
    out.mkdir()
    ckpt = SimpleNamespace(path=src, config={}, task_def=get_task("feature-extraction"))
    written = write_ecosystem_files(ckpt, out)
    assert sorted(written) == ["1_Pooling/config.json", "config.json", "modules.json"]
    assert json.loads((out / "1_Pooling" / "config.json").read_text()) == {"pooling_mode_cls_token": True}


@pytest.mark.slow
def test_sentence_transformers_and_optimum_load_the_folder(tiny_compressed):
    """In their own environment (optimum-onnx pins transformers<4.58): made once under ~/.cache/edgekit."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from ecosystem_load import cosines, ecosystem_python, load_elsewhere
    finally:
        sys.path.pop(0)
    import onnxruntime as ort
    from transformers import AutoTokenizer

    texts = ["edgekit", "a sentence about the weather", "another one, longer than the first two sentences"]
    folder = tiny_compressed / "onnx-fp32"
    loaded, versions = load_elsewhere(ecosystem_python(None), folder, texts)
    tok = AutoTokenizer.from_pretrained(str(folder))
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    mine = []
    for t in texts:  # one at a time: no padding
        enc = tok([t], return_tensors="np")
        mine.append(session.run(["embeddings"], {i.name: enc[i.name] for i in session.get_inputs()})[0][0])
    for name, vectors in loaded.items():
        assert vectors.shape == (len(texts), len(mine[0])), name
        assert cosines(np.stack(mine), vectors).min() >= 0.9999, (name, versions)


def test_manifests_say_which_onnx_artifacts_need_onnx_runtime(tiny_compressed):
    export = Artifact.load(tiny_compressed / "onnx-fp32").meta["onnx_contrib_ops"]
    fused = Artifact.load(tiny_compressed / "onnx-fp32-opt").meta["onnx_contrib_ops"]
    assert export == []  # the export: standard ONNX ops only, any ONNX runtime runs it
    assert "com.microsoft.Attention" in fused and "com.microsoft.SkipLayerNormalization" in fused
