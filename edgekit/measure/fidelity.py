"""How close an artifact's outputs are to the reference's."""

from __future__ import annotations

import numpy as np

from edgekit.tasks import Task, cosine_rows, get_task

__all__ = ["compare", "cosine_rows", "headline"]


def compare(task: str | None, reference: np.ndarray, output: np.ndarray) -> dict:
    """Fidelity of ``output`` to ``reference`` for the task (no task, a model file's: the cosine of the
    outputs as they are), as plain floats."""
    return get_task(task).fidelity(reference, output) if task else Task.fidelity(_AS_IS, reference, output)


class _AsIs(Task):
    """Outputs compared as they are: no labels, no spans (a model file edgekit did not make)."""

    name = "as-is"


_AS_IS = _AsIs()


def headline(task: str, fidelity: dict) -> float | None:
    """The single number a user compares (label agreement or mean cosine, as the task says)."""
    return get_task(task).headline(fidelity) if task else fidelity.get("cosine_mean")
