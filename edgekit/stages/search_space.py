"""The candidates the search tries, per format, cheapest and most promising first.

Each format's quantize backend owns its space (``space()`` in the module its
:class:`edgekit.formats.Format` names as ``quantizer``; see
:mod:`edgekit.stages.quantize`): the formats the search takes are those whose
backend has one. A backend with ``sensitivity(rows, model_path)`` also gets,
during the search, dynamic int8 with the k most sensitive layers kept in float
(NNCF / AIMET style fallback, sensitivity from the per-layer error of the
first dynamic candidate): the ONNX backend has it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from edgekit import formats
from edgekit.recipe.config import QuantizeConfig
from edgekit.stages.quantize import candidate
from edgekit.stages.quantize.onnx_backend import FFN_OUTPUT as FFN_OUTPUT_ONNX  # noqa: F401 - older import path
from edgekit.stages.quantize.tflite_backend import FFN_OUTPUT as FFN_OUTPUT_TFLITE  # noqa: F401 - older import path


def _backend(fmt: str):
    found = formats.find(fmt)
    return found.quantize_backend() if found else None


def searchable() -> frozenset[str]:
    """The formats the search stage takes: those whose quantize backend has a search space."""
    return frozenset(f.name for f in formats.all_formats() if hasattr(f.quantize_backend(), "space"))


def space(fmt: str) -> list[QuantizeConfig]:
    """The candidates for an fp32 ``fmt`` artifact (empty: the format has no search space)."""
    space_of = getattr(_backend(fmt), "space", None)
    return list(space_of()) if space_of else []


def sensitivity_ranker(fmt: str) -> Callable[[list[dict], object], list[str]] | None:
    """``(layer_diff rows, model_path) -> node names, most sensitive first`` for ``fmt`` models, when its
    backend ranks layers for the float fallback (None: no fallback candidates for it)."""
    return getattr(_backend(fmt), "sensitivity", None)


def fallback_candidates(ranked_nodes: list[str], count: int) -> list[QuantizeConfig]:
    """Dynamic int8 keeping the 1, 2, 4, ... most sensitive nodes in float (``count`` candidates)."""
    out: list[QuantizeConfig] = []
    k = 1
    while len(out) < count and k <= len(ranked_nodes):
        names = ranked_nodes[:k]
        out.append(candidate(f"dynamic-float-top{k}", method="dynamic", exclude=[f"^{re.escape(n)}$" for n in names]))
        k *= 2
    return out
