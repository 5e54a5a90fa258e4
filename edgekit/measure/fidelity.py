"""How close an artifact's outputs are to the reference's."""

from __future__ import annotations

import numpy as np

from edgekit.tasks import cosine_rows, get_task

__all__ = ["compare", "cosine_rows", "headline"]


def compare(task: str, reference: np.ndarray, output: np.ndarray) -> dict:
    """Fidelity of ``output`` to ``reference`` for the task, as plain floats."""
    return get_task(task).fidelity(reference, output)


def headline(task: str, fidelity: dict) -> float | None:
    """The single number a user compares (label agreement or mean cosine, as the task says)."""
    return get_task(task).headline(fidelity) if task else fidelity.get("cosine_mean")
