"""How close an artifact's outputs are to the reference's."""

from __future__ import annotations

import numpy as np

from edgekit.tasks import CLASSIFIERS


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(na * nb, 1e-12)


def compare(task: str, reference: np.ndarray, output: np.ndarray) -> dict:
    """Fidelity of ``output`` to ``reference`` for the task, as plain floats."""
    if reference.shape != output.shape:
        return {"error": f"shape {output.shape} differs from reference {reference.shape}"}
    cos = cosine_rows(reference, output)
    result = {
        "samples": int(len(reference)),
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),
        "max_abs_diff": float(np.abs(reference - output).max()),
    }
    if task in CLASSIFIERS:
        result["label_agreement"] = float((reference.argmax(-1) == output.argmax(-1)).mean())
    return result


def headline(task: str, fidelity: dict) -> float | None:
    """The single number a user compares: label agreement or mean cosine."""
    key = "label_agreement" if task in CLASSIFIERS else "cosine_mean"
    return fidelity.get(key)
