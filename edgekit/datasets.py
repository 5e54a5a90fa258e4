"""Labelled task data: the shipped spam set, or a user's .jsonl/.csv with text and label."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgekit.calibration import data_dir, load_labels, load_texts
from edgekit.errors import CalibrationError

BUILTIN = {"spam": "spam_{split}.jsonl"}
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Split:
    texts: list[str]
    labels: list[str]
    source: str


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


def load_dataset(spec: str) -> LabelledData:
    """``spam`` (shipped), or a directory holding train/validation/test .jsonl or .csv files."""
    if spec in BUILTIN:
        files = {s: data_dir() / BUILTIN[spec].format(split=s) for s in SPLITS}
    else:
        root = Path(spec)
        if not root.is_dir():
            raise CalibrationError(f"dataset {spec!r}: not a built-in ({', '.join(BUILTIN)}) nor a directory")
        files = {}
        for s in SPLITS:
            found = [root / f"{s}{ext}" for ext in (".jsonl", ".csv") if (root / f"{s}{ext}").is_file()]
            if not found:
                raise CalibrationError(f"dataset {root}: no {s}.jsonl or {s}.csv")
            files[s] = found[0]
    return LabelledData(spec, *(load_split(files[s]) for s in SPLITS))
