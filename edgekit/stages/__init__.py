"""Stage handlers, registered by config type.

A handler is ``(config, parent_artifact, ctx, out_dir) -> StageResult``: it reads
the parent, writes model files into the empty ``out_dir`` and says what it made.
The runner (:mod:`edgekit.pipeline.run`) writes the manifest and moves it into place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgekit.errors import RecipeError


@dataclass(frozen=True)
class StageResult:
    format: str
    precision: str
    model_file: str
    validation: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    session: Any = None  # the runtime session the stage validated its output on


_HANDLERS: dict[type, Callable] = {}
_DEFAULT_NAMES: dict[type, Callable] = {}


def register(config_type: type, default_name: Callable):
    def deco(fn: Callable) -> Callable:
        _HANDLERS[config_type] = fn
        _DEFAULT_NAMES[config_type] = default_name
        return fn

    return deco


def handler_for(config) -> Callable:
    _load_builtin()
    try:
        return _HANDLERS[type(config)]
    except KeyError:
        raise RecipeError(f"no handler for stage kind {config.kind!r}") from None


def output_format(config, parent_format: str) -> str:
    """Export changes the format; every other stage keeps its parent's."""
    return getattr(config, "format", None) if config.kind == "export" else parent_format


def default_name(config, parent_format: str) -> str:
    _load_builtin()
    return config.name or _DEFAULT_NAMES[type(config)](config, parent_format)


def _load_builtin() -> None:
    from edgekit.stages import export, optimize, quantize, search, train  # noqa: F401  (registers)
