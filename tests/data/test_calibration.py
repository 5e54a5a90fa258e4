import json
from collections import Counter

import numpy as np
import pytest

from edgekit.data.calibration import HELDOUT_FILE, data_dir, load_text_data, load_texts, stratified_order
from edgekit.errors import CalibrationError


def test_shipped_sets_are_disjoint_and_sized():
    data = load_text_data()
    assert len(data.calibration) == 1000
    assert len(data.heldout) == 300
    assert not set(data.calibration) & set(data.heldout)


def test_formats(tmp_path):
    (tmp_path / "a.txt").write_text("one\n\n two \n")
    (tmp_path / "a.jsonl").write_text('{"text": "one"}\n\n{"text": "two"}\n')
    (tmp_path / "a.csv").write_text('id,text\n1,one\n2,"two, with comma"\n')
    assert load_texts(tmp_path / "a.txt") == ["one", "two"]
    assert load_texts(tmp_path / "a.jsonl") == ["one", "two"]
    assert load_texts(tmp_path / "a.csv") == ["one", "two, with comma"]


@pytest.mark.parametrize(
    "name,content,match",
    [
        ("empty.txt", "\n \n", "no text samples"),
        ("bad.jsonl", '{"text": "ok"}\nnot json\n', r"bad.jsonl:2: not a JSON object"),
        ("nofield.jsonl", '{"body": "x"}\n', "no string field 'text'"),
        ("nocol.csv", "a,b\n1,2\n", "no 'text' column"),
        ("data.parquet", "x", "unsupported text format"),
    ],
)
def test_bad_files(tmp_path, name, content, match):
    (tmp_path / name).write_text(content)
    with pytest.raises(CalibrationError, match=match):
        load_texts(tmp_path / name)


def test_missing_file(tmp_path):
    with pytest.raises(CalibrationError, match="not found"):
        load_texts(tmp_path / "nope.txt")


def test_stratified_order_every_prefix_represents_every_label():
    labels = ["a"] * 700 + ["b"] * 200 + ["c"] * 90 + ["d"] * 10  # in label order, as folders are read
    order = stratified_order(labels, seed=0)
    assert sorted(order) == list(range(1000)) and order == stratified_order(labels, seed=0)
    assert order != stratified_order(labels, seed=1)
    assert {labels[i] for i in order[:4]} == {"a", "b", "c", "d"}
    for n in (10, 100, 300, 1000):
        counts = Counter(labels[i] for i in order[:n])
        for label, total in Counter(labels).items():
            assert abs(counts[label] - n * total / 1000) <= 1.5, (n, label, counts)


def test_a_labelled_evaluation_file_is_read_in_stratified_order(tmp_path):
    rows = [{"text": f"sample {i} of {lab}", "label": lab} for lab in ("ham", "spam", "eggs") for i in range(50)]
    path = tmp_path / "eval.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    data = load_text_data(evaluation=path)
    assert sorted(data.heldout) == sorted(r["text"] for r in rows)
    assert all(t.endswith(lab) for t, lab in zip(data.heldout, data.heldout_labels))  # texts keep their labels
    assert Counter(data.heldout_labels[:30]) == {"ham": 10, "spam": 10, "eggs": 10}
    assert data.sample_counts(30)["heldout_samples"] == {"used": 30, "of": 150, "labels": 3, "of_labels": 3}
    assert load_text_data().heldout == load_texts(data_dir() / HELDOUT_FILE)  # unlabelled: the file's order


def _image_set(root, counts: dict[str, int]) -> None:
    from PIL import Image

    for split in ("train", "validation", "test"):
        for label, n in counts.items():
            d = root / split / label
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((4, 4), i % 256, np.uint8)).save(d / f"{i:03d}.png")


def test_image_folder_calibration_and_evaluation_represent_every_label(tmp_path, tiny_ckpt, monkeypatch):
    """Folders are read in label order; the calibration sample and any first N test images hold every label."""
    from edgekit.checkpoint import load_checkpoint
    from edgekit.data.datasets import load_dataset
    from edgekit.pipeline import run as pipeline

    counts = {str(c): (30 if c == 0 else 3) for c in range(10)}  # one label dominates, as in the issue
    _image_set(tmp_path, counts)
    test = load_dataset(str(tmp_path)).test
    assert len(set(test.labels[:10])) == 10 and Counter(test.labels) == counts
    assert all(f"/{lab}/" in path for path, lab in zip(test.texts, test.labels))
    monkeypatch.setattr(pipeline, "CALIBRATION_IMAGES", 12)
    data = pipeline.image_data(load_checkpoint(tiny_ckpt), str(tmp_path))
    assert len(data.calibration) == 12 and set(data.calibration_labels) == set(counts)
    assert all(f"/{lab}/" in path for path, lab in zip(data.calibration, data.calibration_labels))
    assert data.sample_counts(20) == {
        "calibration_samples": {"used": 12, "of": 57, "labels": 10, "of_labels": 10},
        "heldout_samples": {"used": 20, "of": 57, "labels": 10, "of_labels": 10},
    }
