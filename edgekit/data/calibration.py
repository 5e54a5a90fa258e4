"""Text data for calibration and for held-out evaluation.

The shipped set lives in ``calibration_data/`` (see its MANIFEST): one file to
calibrate, a disjoint held-out file used only to measure fidelity. Users bring
their own as ``.txt`` (one sample a line), ``.jsonl`` (a ``text`` field) or
``.csv`` (a ``text`` column).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.errors import CalibrationError

if TYPE_CHECKING:
    from edgekit.tasks import Task

CALIBRATION_FILE = "sotu_calibration.txt"
HELDOUT_FILE = "sotu_heldout.txt"


def data_dir() -> Path:
    """The shipped calibration_data folder (in the wheel, or in a source checkout)."""
    package = Path(__file__).resolve().parents[1]  # edgekit/
    for candidate in (package / "_calibration_data", package.parent / "calibration_data"):
        if (candidate / CALIBRATION_FILE).is_file():
            return candidate
    raise CalibrationError("the shipped calibration_data folder is missing from this install")


def read_jsonl(path: Path, raw: str | None = None) -> list[tuple[int, Any]]:
    """The records of a UTF-8 JSON-lines file (its text ``raw`` when already read) with their line numbers,
    blank lines skipped; a line that is not JSON is bad input naming the file and line."""
    if raw is None:
        try:
            raw = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise CalibrationError(f"{path}: not UTF-8 text") from None
    records = []
    for i, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append((i, json.loads(line)))
        except json.JSONDecodeError:
            raise CalibrationError(f"{path}:{i}: not a JSON object") from None
    return records


def load_texts(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"text file not found: {path}")
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CalibrationError(f"{path}: not UTF-8 text") from None
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        texts = []
        for i, obj in read_jsonl(path, raw):
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise CalibrationError(f"{path}:{i}: no string field 'text'")
            texts.append(obj["text"])
    elif suffix == ".csv":
        reader = csv.DictReader(raw.splitlines())
        if not reader.fieldnames or "text" not in reader.fieldnames:
            raise CalibrationError(f"{path}: CSV has no 'text' column (columns: {reader.fieldnames})")
        texts = [row["text"] for row in reader]
    elif suffix in (".txt", ""):
        texts = raw.splitlines()
    else:
        raise CalibrationError(f"{path}: unsupported text format {suffix!r} (use .txt, .jsonl or .csv)")
    texts = [t.strip() for t in texts if t and t.strip()]
    if not texts:
        raise CalibrationError(f"{path}: no text samples in the file")
    return texts


def load_labels(path: str | Path) -> list[str] | None:
    """The ``label`` of every record of a .jsonl/.csv file (as strings), or None when it has none."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        return None
    raw = path.read_text(encoding="utf-8")
    if suffix == ".jsonl":
        rows = [json.loads(line) for line in raw.splitlines() if line.strip()]
    else:
        rows = list(csv.DictReader(raw.splitlines()))
    rows = [r for r in rows if isinstance(r.get("text"), str) and r["text"].strip()]
    if not rows or not all("label" in r for r in rows):
        if any("label" in r for r in rows):
            raise CalibrationError(f"{path}: some records have a 'label' and some do not")
        return None
    return [str(r["label"]) for r in rows]


def stratified_order(labels: Sequence[str], seed: int = 0) -> list[int]:
    """An order of ``range(len(labels))`` in which every prefix is a stratified sample.

    Each label's samples come in a seeded shuffle, spread through the order in proportion
    to the label's share (its k-th of c samples sits at k / c): the first n samples hold
    every label as soon as n reaches the number of labels, and each label about its share.
    """
    rng = np.random.default_rng(seed)
    groups: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    first = rng.permutation(len(groups))  # which label leads among samples at the same position
    keyed = []
    for g, label in enumerate(sorted(groups)):
        members = rng.permutation(groups[label])
        keyed += [(k / len(members), int(first[g]), int(i)) for k, i in enumerate(members)]
    return [i for _, _, i in sorted(keyed)]


def _counts(used: int, of: int, labels: Sequence[str] | None, label_count: int | None) -> dict:
    """``{"used": n, "of": m}``, plus ``labels`` (in the n used) and ``of_labels`` when the set is labelled."""
    counts = {"used": used, "of": of}
    if labels and all(isinstance(x, str) for x in labels):  # class labels (not per-token tags or answers)
        counts.update(labels=len(set(labels[:used])), of_labels=label_count or len(set(labels)))
    return counts


@dataclass(frozen=True)
class TextData:
    calibration: list  # texts, or the task's items (text pairs, image paths)
    heldout: list
    calibration_source: str
    heldout_source: str
    heldout_labels: list | None = None  # when the evaluation file is labelled (names, or the task's gold form)
    calibration_labels: list[str] | None = None  # when the calibration samples were drawn from a labelled set
    calibration_total: int | None = None  # samples in the set they were drawn from (None: all of it is used)
    label_count: int | None = None  # labels of the whole labelled set, when known

    def sample_counts(self, fidelity_samples: int) -> dict:
        """How many samples of how many (and of how many labels) calibration and the fidelity pass use."""
        return {
            "calibration_samples": _counts(
                len(self.calibration),
                self.calibration_total or len(self.calibration),
                self.calibration_labels,
                self.label_count,
            ),
            "heldout_samples": _counts(
                min(fidelity_samples, len(self.heldout)), len(self.heldout), self.heldout_labels, self.label_count
            ),
        }


def load_text_data(
    calibration: str | Path | None = None, evaluation: str | Path | None = None, task: Task | None = None
) -> TextData:
    """Calibration and held-out items (texts, or what ``task`` takes, read by its :meth:`Task.load_items`); a
    labelled evaluation file comes in stratified order (see :func:`stratified_order`), so any first N of it
    represents every label. A task with shipped sets of its own (:meth:`Task.builtin_data`) defaults to them,
    its held-out set labelled."""
    builtin = task.builtin_data() if task is not None else None
    default_cal, default_eval = builtin or (data_dir() / CALIBRATION_FILE, data_dir() / HELDOUT_FILE)
    cal_path = Path(calibration) if calibration else default_cal
    eval_path = Path(evaluation) if evaluation else default_eval
    read = task.load_items if task is not None else (lambda p: (load_texts(p), load_labels(p)))
    heldout, labels = read(eval_path)
    if not evaluation and builtin is None:
        labels = None  # the shipped plain texts carry no labels
    if labels is not None:
        if len(labels) != len(heldout):
            raise CalibrationError(f"{eval_path}: {len(heldout)} texts but {len(labels)} labels")
        if all(isinstance(x, str) for x in labels):
            order = stratified_order(labels)
            heldout, labels = [heldout[i] for i in order], [labels[i] for i in order]
    return TextData(
        calibration=read(cal_path)[0],
        heldout=heldout,
        calibration_source=str(cal_path) if calibration else _shown(cal_path),
        heldout_source=str(eval_path) if evaluation else _shown(eval_path),
        heldout_labels=labels,
    )


def _shown(path: Path) -> str:
    """A shipped file as reports name it: ``builtin:<path under calibration_data>``."""
    return f"builtin:{path.relative_to(data_dir()).as_posix()}"
