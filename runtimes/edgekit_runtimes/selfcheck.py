"""Recorded input/output pairs that travel with an artifact (``selfcheck.npz``).

At export, edgekit runs each artifact on the runtime that validated it and
stores a few inputs with the outputs it gave. A runtime that cannot be trusted
to run every op version correctly (the legacy tflite-runtime) replays them on
load and refuses the model if it does not reproduce them. Needs numpy only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FILE = "selfcheck.npz"
MIN_COSINE = 0.999  # below this a runtime does not reproduce what the validating runtime computed


def record(session, feeds_list: list[dict[str, np.ndarray]], path: Path) -> None:
    arrays: dict[str, np.ndarray] = {}
    for i, feeds in enumerate(feeds_list):
        for name, arr in feeds.items():
            arrays[f"in{i}__{name}"] = arr
        for name, arr in session.run(feeds).items():
            arrays[f"out{i}__{name}"] = arr
    np.savez_compressed(path, allow_pickle=False, **arrays)  # numbers only: an object array is refused


def load_cases(path: Path) -> list[dict[str, dict[str, np.ndarray]]]:
    """The recorded cases in order, each ``{"in": {name: array}, "out": {name: array}}``."""
    cases: dict[int, dict[str, dict[str, np.ndarray]]] = {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            kind, name = key.split("__", 1)
            idx = int(kind[2:] if kind.startswith("in") else kind[3:])
            cases.setdefault(idx, {"in": {}, "out": {}})["in" if kind.startswith("in") else "out"][name] = data[key]
    return [cases[i] for i in sorted(cases)]


def replay(session, path: Path) -> float:
    """Run the recorded inputs; return the worst cosine between recorded and new outputs."""
    worst = 1.0
    for case in load_cases(path):
        got = session.run(case["in"])
        for name, expected in case["out"].items():
            a = expected.reshape(len(expected), -1).astype(np.float64)
            b = np.asarray(got[name]).reshape(len(expected), -1).astype(np.float64)
            cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
            worst = min(worst, float(np.nan_to_num(cos, nan=-1.0).min()))
    return worst


def verify(session, path: Path, what: str) -> float:
    """Replay ``path`` on ``session``; raise ParityError naming ``what`` when the outputs differ."""
    from edgekit.errors import ParityError

    worst = replay(session, path)
    if worst < MIN_COSINE:
        raise ParityError(
            f"{what} gives wrong output for this model (cosine {worst:.4f} to the outputs recorded at export)"
        )
    return worst
