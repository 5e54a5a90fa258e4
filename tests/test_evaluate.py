import numpy as np
import pytest

from edgekit.errors import CalibrationError
from edgekit.evaluate import EvalSet, accuracy, label_ids, macro_f1, spearman


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
    m = EvalSet("text-classification", ["a"] * 4, ref, np.array([0, 1, 0, 1]), 2).metrics(out)
    assert m["reference_accuracy"] == 100.0 and m["accuracy"] == 75.0 and m["accuracy_drop"] == 25.0
    assert m["label_agreement"] == 0.75
