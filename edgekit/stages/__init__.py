"""Stage handlers and what each stage kind takes and makes, registered by config type.

A handler is ``(config, parent_artifact, ctx, out_dir) -> StageResult``: it reads
the parent, writes model files into the empty ``out_dir`` and says what it made.
The runner (:mod:`edgekit.pipeline.run`) writes the manifest and moves it into place.

Every stage kind also declares its formats (:class:`StageIO`): which formats its
input may have and which format it makes from each. :func:`edgekit.pipeline.plan.plan`
walks a whole recipe with them before any work starts, so a stage given the wrong
kind of artifact fails at once, not after an hour of training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from edgekit import formats
from edgekit.errors import InternalError, RecipeError
from edgekit.recipe.config import DistillConfig, PruneConfig, QATConfig

CHECKPOINT = "hf-checkpoint"  # a Hugging Face checkpoint directory (the recipe's input, a student)
ONNX = "onnx"  # what the ONNX-only stages (optimize, QAT) read or write; model formats: edgekit.formats
_SHOWN = {CHECKPOINT: "a checkpoint"}


@dataclass(frozen=True)
class StageResult:
    format: str
    precision: str
    model_file: str
    validation: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    session: Any = None  # the runtime session the stage validated its output on


def same_format(config, input_format: str) -> str:
    """``makes`` of a stage that writes the format it reads."""
    return input_format


@dataclass(frozen=True)
class StageIO:
    """What a stage kind reads and writes.

    ``takes``: the formats its input may have. ``makes(config, input_format)``: the format it writes
    from an input of that format. ``precision(config)``: the precision it writes (``None``: its input's).
    ``fp32_only``: its input must be fp32 (nothing built in quantizes, optimizes or searches a model twice).
    ``reads``: the config field listing the artifacts the stage reads instead of its input, when set
    (search's ``targets``). ``refuses(config, input_format)``: why this config cannot run on a format
    the kind takes (``None``: it can). ``trains``: it trains the model (distillation, pruning, QAT), which
    only tasks that declare :attr:`Task.trainable` support.
    """

    takes: frozenset[str]
    makes: Callable[[Any, str], str] = same_format
    precision: Callable[[Any], str] | None = None
    fp32_only: bool = True
    reads: str | None = None
    refuses: Callable[[Any, str], str | None] | None = None
    trains: bool = False


_HANDLERS: dict[type, Callable] = {}
_DEFAULT_NAMES: dict[type, Callable] = {}
_IO: dict[type, StageIO] = {}


def register(
    config_type: type,
    default_name: Callable,
    *,
    takes: Iterable[str] | None = None,
    makes: Callable[[Any, str], str] = same_format,
    precision: Callable[[Any], str] | None = None,
    fp32_only: bool = True,
    reads: str | None = None,
    refuses: Callable[[Any, str], str | None] | None = None,
):
    """Register the handler for ``config_type``. ``default_name(config, fmt)`` names its artifact from the
    format ``fmt`` it makes; the keywords declare what it reads and writes (see :class:`StageIO`)."""

    def deco(fn: Callable) -> Callable:
        _HANDLERS[config_type] = fn
        _DEFAULT_NAMES[config_type] = default_name
        if takes is not None:
            declare(config_type, StageIO(frozenset(takes), makes, precision, fp32_only, reads, refuses))
        return fn

    return deco


def declare(config_type: type, io: StageIO) -> None:
    """Declare the formats of a stage kind whose handler registers without them."""
    _IO[config_type] = io


def handler_for(config) -> Callable:
    _load_builtin()
    try:
        return _HANDLERS[type(config)]
    except KeyError:
        raise RecipeError(f"no handler for stage kind {config.kind!r}") from None


def stage_io(config) -> StageIO:
    """The formats ``config``'s stage kind takes and makes."""
    handler_for(config)
    try:
        return _IO[type(config)]
    except KeyError:
        raise InternalError(f"stage kind {config.kind!r} declares no formats (register it with takes=...)") from None


def output_format(config, input_format: str) -> str:
    """The format ``config``'s stage writes from an input of ``input_format``."""
    return stage_io(config).makes(config, input_format)


def default_name(config, fmt: str) -> str:
    """The artifact's name: the config's ``name``, else the kind's default for the format ``fmt`` it makes."""
    _load_builtin()
    return config.name or _DEFAULT_NAMES[type(config)](config, fmt)


def describe_formats(names: Iterable[str]) -> str:
    """``{"onnx", "tflite"}`` -> ``"ONNX or TFLite"`` (each format as its declaration labels it)."""
    return formats.either(_SHOWN.get(f) or formats.label(f) for f in sorted(names))


def refusal(config, source: str, fmt: str, precision: str) -> str | None:
    """Why ``config``'s stage cannot read ``source`` (an artifact, as shown in messages) of ``fmt`` and
    ``precision``; None: it can."""
    io = stage_io(config)
    if fmt not in io.takes:
        return f"reads {describe_formats(io.takes)}, but its input {source} is {fmt}"
    if io.fp32_only and precision != "fp32":
        return f"reads fp32 models only, but its input {source} is {fmt} {precision}"
    why = io.refuses(config, fmt) if io.refuses else None
    return f"cannot run on its input {source}: {why}" if why else None


def require_input(config, parent) -> None:
    """Raise when ``parent`` is not an artifact ``config``'s stage takes (for a handler called on its own;
    a recipe is checked whole by :func:`edgekit.pipeline.plan.plan` before it runs)."""
    why = refusal(config, repr(parent.name), parent.format, parent.precision)
    if why:
        raise RecipeError(f"stage {config.kind} {why}")


def _load_builtin() -> None:
    from edgekit.stages import export, generative, optimize, quantize, search, train  # noqa: F401  (registers)


# training registers its handlers in edgekit.stages.train; search declares its formats with its handler
# (edgekit.stages.search: those whose quantize backend has a search space)
declare(
    DistillConfig,
    StageIO(frozenset({CHECKPOINT}), makes=lambda c, fmt: CHECKPOINT, precision=lambda c: "fp32", trains=True),
)
declare(
    PruneConfig,
    StageIO(frozenset({CHECKPOINT}), makes=lambda c, fmt: CHECKPOINT, precision=lambda c: "fp32", trains=True),
)
declare(  # QDQ
    QATConfig, StageIO(frozenset({CHECKPOINT}), makes=lambda c, fmt: ONNX, precision=lambda c: "int8", trains=True)
)
