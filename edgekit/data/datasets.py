"""Labelled task data: the shipped spam set, scikit-learn's digits images, or a user's own.

A user's text set is a directory of train/validation/test ``.jsonl``/``.csv``
files with text and label; an image set is a directory of ``train/``,
``validation/`` and ``test/`` folders, each holding one folder of images per
label. ``Split.texts`` holds the samples: strings for text, images for images.

The validation and test splits come in stratified order (seeded), whatever the
order on disk: the first N of them, as a fidelity pass or a search takes,
represent every label in about its share. The train split keeps its order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgekit.data.calibration import data_dir, load_labels, load_texts, stratified_order
from edgekit.errors import CalibrationError

BUILTIN = {"spam": "spam_{split}.jsonl"}
IMAGE_BUILTIN = ("digits",)
DIGITS_SPLIT = (0.7, 0.1)  # train, validation; the rest is test
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Split:
    texts: list[str]
    labels: list[str]
    source: str

    def stratified(self, n: int | None = None, seed: int = 0) -> Split:
        """The samples in seeded :func:`~edgekit.data.calibration.stratified_order`, or the first ``n`` of that
        order: a stratified sample with every label represented once ``n`` allows."""
        order = stratified_order(self.labels, seed)[:n]
        return Split([self.texts[i] for i in order], [self.labels[i] for i in order], self.source)


@dataclass(frozen=True)
class LabelledData:
    name: str
    train: Split
    validation: Split
    test: Split

    @property
    def label_names(self) -> list[str]:
        return sorted(set(self.train.labels) | set(self.validation.labels) | set(self.test.labels))


def load_split(path: Path) -> Split:
    texts = load_texts(path)
    labels = load_labels(path)
    if labels is None:
        raise CalibrationError(f"{path}: no 'label' field; a task set needs text and label on every record")
    if len(labels) != len(texts):
        raise CalibrationError(f"{path}: {len(texts)} texts but {len(labels)} labels")
    return Split(texts, labels, str(path))


def digits() -> LabelledData:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download), as uint8 grey images,
    split 70/10/20 by a fixed permutation."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise CalibrationError("dataset digits needs scikit-learn: pip install scikit-learn") from None
    import numpy as np

    d = load_digits()
    images = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)
    order = np.random.default_rng(0).permutation(len(images))
    n_train, n_val = int(len(order) * DIGITS_SPLIT[0]), int(len(order) * DIGITS_SPLIT[1])
    parts = {"train": order[:n_train], "validation": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    return LabelledData(
        "digits",
        *(
            Split([images[i] for i in parts[s]], [str(int(d.target[i])) for i in parts[s]], f"builtin:digits/{s}")
            for s in SPLITS
        ),
    )


def image_dataset(root: Path) -> LabelledData:
    from edgekit.data.images import image_folder

    splits = []
    for s in SPLITS:
        paths, labels = image_folder(root / s)
        if not paths:
            raise CalibrationError(f"dataset {root}: no images under {s}/<label>/")
        splits.append(Split([str(p) for p in paths], labels, str(root / s)))
    return LabelledData(str(root), *splits)


def load_dataset(spec: str) -> LabelledData:
    """``spam`` or ``digits`` (shipped), or a directory holding train/validation/test .jsonl or .csv files,
    or train/validation/test image folders (one sub-folder per label). Validation and test in stratified order."""
    data = _read_dataset(spec)
    return LabelledData(data.name, data.train, data.validation.stratified(), data.test.stratified())


def _read_dataset(spec: str) -> LabelledData:
    if spec == "digits":
        return digits()
    if Path(spec).is_dir() and all((Path(spec) / s).is_dir() for s in SPLITS):
        return image_dataset(Path(spec))
    if spec in BUILTIN:
        files = {s: data_dir() / BUILTIN[spec].format(split=s) for s in SPLITS}
    else:
        root = Path(spec)
        if not root.is_dir():
            raise CalibrationError(
                f"dataset {spec!r}: not a built-in ({', '.join([*BUILTIN, *IMAGE_BUILTIN])}) nor a directory"
            )
        files = {}
        for s in SPLITS:
            found = [root / f"{s}{ext}" for ext in (".jsonl", ".csv") if (root / f"{s}{ext}").is_file()]
            if not found:
                raise CalibrationError(f"dataset {root}: no {s}.jsonl or {s}.csv")
            files[s] = found[0]
    return LabelledData(spec, *(load_split(files[s]) for s in SPLITS))
