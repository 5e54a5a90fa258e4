import numpy as np
import pytest

from edgekit.errors import CalibrationError
from edgekit.measure.evaluation import EvalSet, accuracy, label_ids, macro_f1, spearman


def test_metrics_numbers():
    gold = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 2])
    assert accuracy(pred, gold) == pytest.approx(80.0)
    # class 0: f1 2/3; class 1: 0.8; class 2: 1
    assert macro_f1(pred, gold, 3) == pytest.approx((2 / 3 + 0.8 + 1.0) / 3 * 100)
    assert spearman(np.array([1, 2, 3, 4]), np.array([10, 20, 30, 40])) == pytest.approx(1.0)
    assert spearman(np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1])) == pytest.approx(-1.0)
    assert spearman(np.array([1, 2, 2, 3]), np.array([1, 2, 3, 4])) == pytest.approx(0.9487, abs=1e-4)


def test_label_ids():
    assert label_ids(["spam", "ham", "1"], {"ham": 0, "spam": 1}, 2).tolist() == [1, 0, 1]
    with pytest.raises(CalibrationError, match="neither a label name"):
        label_ids(["eggs"], {"ham": 0, "spam": 1}, 2)


def test_eval_set_accuracy_drop():
    ref = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
    out = np.array([[2.0, 0.0], [0.0, 2.0], [0.0, 2.0], [0.0, 2.0]])
    m = EvalSet("text-classification", ["a"] * 4, ref, np.array([0, 1, 0, 1])).metrics(out)
    assert m["reference_accuracy"] == 100.0 and m["accuracy"] == 75.0 and m["accuracy_drop"] == 25.0
    assert m["label_agreement"] == 0.75


def test_reference_outputs_are_keyed_on_every_input_byte(tiny_ckpt):
    """Two batches alike in their first 64 bytes (8 int64 tokens) but not after get their own outputs."""
    from edgekit.checkpoint import load_checkpoint
    from edgekit.data.calibration import load_text_data
    from edgekit.data.feeds import tokenize
    from edgekit.pipeline.context import StageContext, feeds_digest

    ckpt = load_checkpoint(tiny_ckpt)
    ctx = StageContext(checkpoint=ckpt, data=load_text_data(), recipe_digest="test", threads=1)
    specs = ctx.reference_session().inputs
    prefix = "the president said that the nation and the congress"
    a, b = (
        tokenize(ckpt.tokenizer, [f"{prefix} {tail}"], specs, 32, fixed=True)
        for tail in ("will build new roads", "must cut every tax")
    )
    assert a["input_ids"].tobytes()[:64] == b["input_ids"].tobytes()[:64]
    assert feeds_digest(a) != feeds_digest(b)
    out_a, out_b = ctx.reference_outputs(a), ctx.reference_outputs(b)
    assert np.abs(out_a - out_b).max() > 1e-3
    fresh = StageContext(checkpoint=ckpt, data=ctx.data, recipe_digest="test", threads=1).reference_outputs(b)
    np.testing.assert_array_equal(out_b, fresh)
    assert ctx.reference_outputs(a) is out_a  # the same bytes are still served from the cache
