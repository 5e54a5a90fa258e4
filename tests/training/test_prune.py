"""Structured pruning removes weights physically and the result reloads as a checkpoint."""

import numpy as np
import pytest
import torch

from edgekit.checkpoint import load_checkpoint
from edgekit.training.data import encode
from edgekit.training.prune import HEADS_KEY, apply, measure_importance


@pytest.fixture
def model_and_batches(tiny_cls_ckpt, task_dir):
    from edgekit.data.datasets import load_dataset

    ck = load_checkpoint(tiny_cls_ckpt)
    data = load_dataset(str(task_dir))
    enc = encode(ck.tokenizer, data.train.texts[:64], 32, [int(x[-1]) for x in data.train.labels[:64]])
    return ck, enc, [enc.batch(range(i, i + 16)) for i in range(0, 64, 16)]


def _loss(m, b):
    b = dict(b)
    y = b.pop("labels")
    return torch.nn.functional.cross_entropy(m(**b).logits, y)


def test_importance_is_measured_on_data(model_and_batches):
    ck, _, batches = model_and_batches
    imp = measure_importance(ck.model, batches, _loss)
    assert imp.heads.shape == (2, 2) and imp.ffn.shape == (2, 128) and imp.layers.shape == (2,)
    assert (imp.heads > 0).all() and (imp.ffn >= 0).all() and imp.ffn.max() > 0
    assert not np.allclose(imp.ffn[0], imp.ffn[0].mean())  # neurons differ


def test_pruned_model_is_smaller_and_reloads_identically(model_and_batches, tmp_path):
    ck, enc, batches = model_and_batches
    model = ck.model
    before = sum(p.numel() for p in model.parameters())
    plan = apply(model, measure_importance(model, batches, _loss), heads=1, ffn=0.5)
    after = sum(p.numel() for p in model.parameters())
    assert model.config.intermediate_size == 64 and getattr(model.config, HEADS_KEY) == 1
    layer = model.base_model.encoder.layer[0]
    assert layer.attention.self.query.out_features == 16 and layer.output.dense.in_features == 64
    assert after < before * 0.8
    assert set(plan["heads"]) == {0, 1}
    b = enc.batch(range(8))
    b.pop("labels")
    with torch.no_grad():
        expected = model(**b).logits
    model.save_pretrained(str(tmp_path / "p"))
    ck.tokenizer.save_pretrained(str(tmp_path / "p"))
    again = load_checkpoint(tmp_path / "p").model
    with torch.no_grad():
        torch.testing.assert_close(again(**b).logits, expected)
    assert sum(p.numel() for p in again.parameters()) == after


def test_layers_kept_by_importance(model_and_batches):
    ck, _, batches = model_and_batches
    model = ck.model
    plan = apply(model, measure_importance(model, batches, _loss), layers=1)
    assert len(plan["layers"]) == 1 and model.config.num_hidden_layers == 1
    assert len(model.base_model.encoder.layer) == 1


def test_encoder_macs_counts_projections_ffn_and_attention():
    from edgekit.training.prune import encoder_macs

    minilm = {"hidden_size": 384, "num_attention_heads": 12, "intermediate_size": 1536, "num_hidden_layers": 6}
    assert encoder_macs(minilm, 128) == 6 * (128 * (4 * 384 * 384 + 2 * 384 * 1536) + 2 * 128 * 128 * 384)
    pruned = {**minilm, "num_hidden_layers": 3, "intermediate_size": 768, "edgekit_attention_heads": 8}
    assert encoder_macs(pruned, 128) == 402_653_184  # the spam student: 8 heads of 32, FFN 768
    vit = {"hidden_size": 128, "num_attention_heads": 4, "intermediate_size": 512, "num_hidden_layers": 6}
    assert encoder_macs(vit, 17) == 6 * (17 * (4 * 128 * 128 + 2 * 128 * 512) + 2 * 17 * 17 * 128)
