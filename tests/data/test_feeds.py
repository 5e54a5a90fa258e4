import numpy as np
import pytest

from edgekit.data.feeds import synthesize, tokenize
from edgekit.errors import InputError
from edgekit_runtimes.base import TensorSpec


def test_synthesize_fills_dynamic_axes_and_types():
    specs = [
        TensorSpec("input_ids", "int64", ("batch", "seq")),
        TensorSpec("attention_mask", "int32", (None, None)),
        TensorSpec("token_type_ids", "int64", (2, "seq")),
        TensorSpec("pixels", "float32", (1, 3, 8, 8)),
    ]
    f = synthesize(specs, batch_size=4, seq_len=16)
    assert f["input_ids"].shape == (4, 16) and f["input_ids"].dtype == np.int64
    assert f["attention_mask"].dtype == np.int32 and (f["attention_mask"] == 1).all()
    assert f["token_type_ids"].shape == (2, 16) and (f["token_type_ids"] == 0).all()
    assert f["pixels"].shape == (1, 3, 8, 8) and f["pixels"].dtype == np.float32


def test_synthesize_refuses_strings():
    with pytest.raises(InputError, match="cannot synthesize input 'text' of type string"):
        synthesize([TensorSpec("text", "string", (1,))], 1, 8)


def test_tokenize_respects_static_shapes(tiny_ckpt):
    from edgekit.checkpoint import load_checkpoint

    tok = load_checkpoint(tiny_ckpt).tokenizer
    dyn = [TensorSpec("input_ids", "int64", ("b", "s")), TensorSpec("attention_mask", "int64", ("b", "s"))]
    f = tokenize(tok, ["short", "a somewhat longer sentence here"], dyn, 64)
    assert f["input_ids"].shape[1] < 64
    static = [TensorSpec("input_ids", "int32", (1, 24)), TensorSpec("attention_mask", "int32", (1, 24))]
    f = tokenize(tok, ["short"], static, 64)
    assert f["input_ids"].shape == (1, 24) and f["input_ids"].dtype == np.int32
