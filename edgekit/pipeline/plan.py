"""Check a whole recipe before any work: what each stage reads, what it makes, what it is called.

:func:`plan` walks the recipe's stages with the formats each stage kind declares
(:class:`edgekit.stages.StageIO`). It needs nothing but the recipe, so every
mistake below is an exit-2 error in well under a second, before the first export
or training step:

* a stage whose input (or search target) is no earlier artifact;
* a stage given an artifact of a format, or precision, it does not take;
* a config its input's format cannot run (a quantize method that format's backend lacks);
* two stages writing the same artifact name (the second would replace the first), or a name
  that is not a plain directory name in the output, or one the output already uses.
"""

from __future__ import annotations

from typing import NamedTuple

from edgekit.errors import RecipeError
from edgekit.recipe.config import BenchConfig, ExportConfig, QuantizeConfig, Recipe, SearchConfig, StageConfig
from edgekit.stages import CHECKPOINT, default_name, describe_formats, refusal, stage_io

REFERENCE_NAME = "pytorch-fp32"  # the checkpoint the recipe starts from
RESERVED_NAMES = frozenset({REFERENCE_NAME, "recipe.yaml", "report.md", "report.json"})
MAX_NAME_BYTES = 255  # a directory name's limit on common file systems


class Step(NamedTuple):
    """One stage to run: its config, the artifact it writes and the artifact it reads."""

    config: StageConfig
    name: str
    input: str


class _Made(NamedTuple):
    """An artifact the plan knows of: its possible formats, its precision and the stage that makes it."""

    formats: frozenset[str]
    precision: str
    stage: int | None  # None: the recipe's input checkpoint


def plan(
    recipe: Recipe, root: str = REFERENCE_NAME, root_format: str = CHECKPOINT, root_precision: str = "fp32"
) -> list[Step]:
    """A :class:`Step` for every non-bench stage, in order, once the whole recipe is checked.

    The recipe starts from ``root``: the checkpoint, or a model file of ``root_format`` (see
    :mod:`edgekit.pipeline.model_file`)."""
    made = {root: _Made(frozenset({root_format}), root_precision, None)}
    steps, previous = [], root
    for i, cfg in enumerate(recipe.stages):
        if isinstance(cfg, BenchConfig):
            continue
        where = f"recipe {recipe.name}: stages.{i} ({cfg.kind})"
        budget = getattr(cfg, "budget", None)
        if budget is not None and budget.max_perplexity_increase is not None:
            raise RecipeError(
                f"{where}: budget max_perplexity_increase applies to decoder language models (text-generation); "
                "give min_fidelity or max_accuracy_drop"
            )
        if budget is not None and budget.max_metric_drop is not None:
            raise RecipeError(
                f"{where}: budget max_metric_drop applies to encoder-decoders (text2text-generation); "
                "give min_fidelity or max_accuracy_drop"
            )
        io = stage_io(cfg)
        parent = cfg.input or previous
        if parent not in made:
            raise RecipeError(f"recipe {recipe.name}: stages.{i}.input: no earlier artifact named {cfg.input!r}")
        sources = list(getattr(cfg, io.reads) or []) if io.reads else []
        for n in sources:
            if n not in made:
                raise RecipeError(f"recipe {recipe.name}: stages.{i}.{io.reads}: no earlier artifact named {n!r}")
        formats: set[str] = set()
        for n in sources or [parent]:
            for fmt in sorted(made[n].formats):
                why = refusal(cfg, _shown(n, made[n], recipe), fmt, made[n].precision)
                if why:
                    raise RecipeError(f"{where} {why}")
                formats.add(io.makes(cfg, fmt))
        name = _name(cfg, formats, where)
        _check_name(name, i, made, recipe, where)
        precision = io.precision(cfg) if io.precision else made[parent].precision
        made[name] = _Made(frozenset(formats), precision, i)
        steps.append(Step(cfg, name, parent))
        previous = name
    return steps


def _shown(name: str, a: _Made, recipe: Recipe) -> str:
    """An artifact as messages show it: its name and where it comes from."""
    if a.stage is None:
        return f"{name!r} (the checkpoint)" if CHECKPOINT in a.formats else f"{name!r} (the model file)"
    return f"{name!r} (stages.{a.stage}, {recipe.stages[a.stage].kind})"


def _name(cfg, formats: set[str], where: str) -> str:
    """The stage's artifact name: its own, else the default for the format it makes (which must be one)."""
    names = {default_name(cfg, fmt) for fmt in formats}
    if len(names) > 1:
        raise RecipeError(
            f"{where} may write {describe_formats(formats)} ({', '.join(sorted(names))}): give it a `name`"
        )
    return names.pop()


def _check_name(name: str, i: int, made: dict[str, _Made], recipe: Recipe, where: str) -> None:
    """``name`` is a new, plain directory name that nothing else in the output uses."""
    first = made[name].stage if name in made else None
    if first is not None:
        raise RecipeError(
            f"recipe {recipe.name}: stages.{first} ({recipe.stages[first].kind}) and stages.{i} "
            f"({recipe.stages[i].kind}) both write an artifact named {name!r}; the second would "
            "replace the first: give one of them another `name`"
        )
    if name in RESERVED_NAMES:
        raise RecipeError(
            f"{where}: the name {name!r} is the output's own ({', '.join(sorted(RESERVED_NAMES))}); "
            "give the stage another `name`"
        )
    if (
        not name
        or name.startswith(".")
        or any(c in name for c in "/\\")
        or not name.isprintable()
        or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES
    ):
        raise RecipeError(
            f"{where}: artifact name {name!r} is not a plain directory name (printable, no path "
            f"separators, not starting with '.', at most {MAX_NAME_BYTES} bytes)"
        )


def without_unavailable(recipe: Recipe, root_format: str = CHECKPOINT, checkpoint=None) -> tuple[Recipe, list[str]]:
    """``recipe`` less the stages whose format cannot be made or run here (its converter, runtime or quantizer
    is not installed, or the converter refuses ``checkpoint``: a model type it gets wrong) and the stages built
    on them, when the recipe says ``skip_unavailable``; and one line per stage left out, saying why. A search
    keeps the targets that remain. Other recipes come back as they are."""
    if not recipe.skip_unavailable:
        return recipe, []
    from edgekit import formats as fmts
    from edgekit.errors import RuntimeUnavailableError
    from edgekit.plugins import converters, runtime_for_format

    fmt_of: dict[str, str] = {REFERENCE_NAME: root_format}
    dropped: dict[str, str] = {}
    keep: dict[int, StageConfig] = {}
    index = {id(cfg): i for i, cfg in enumerate(recipe.stages)}
    for step in plan(recipe, root_format=root_format):
        cfg, why = step.config, None
        fmt = cfg.format if isinstance(cfg, ExportConfig) else fmt_of.get(step.input, "")
        fmt_of[step.name] = fmt
        if step.input in dropped and not (isinstance(cfg, SearchConfig) and cfg.targets):
            why = f"built on {step.input}, left out"
        elif isinstance(cfg, ExportConfig):
            conv = next((c for c in converters().values() if c.format == fmt), None)
            missing = conv.missing() if conv is not None else [f"a {fmt} converter"]
            refused = conv.refusal(checkpoint) if conv is not None and checkpoint is not None else None
            if refused:
                missing = [f"an exporter for this model ({refused})"]
            if not missing:
                try:
                    runtime_for_format(fmt)
                except RuntimeUnavailableError:
                    missing = [f"a {fmt} runtime"]
            why = f"needs {', '.join(missing)}" if missing else None
        elif isinstance(cfg, QuantizeConfig):
            missing = _quantizer_missing(fmts.get(fmt))
            why = f"needs {', '.join(missing)}" if missing else None
        elif isinstance(cfg, SearchConfig):
            targets = [
                t
                for t in (cfg.targets or [step.input])
                if t not in dropped and not _quantizer_missing(fmts.get(fmt_of[t]))
            ]
            if not targets:
                why = "every target left out"
            elif cfg.targets:
                cfg = cfg.model_copy(update={"targets": targets})
        if why:
            dropped[step.name] = f"{step.name} ({type(cfg).__name__.removesuffix('Config').lower()}): {why}"
        else:
            keep[index[id(step.config)]] = cfg
    stages = [keep.get(i, cfg) for i, cfg in enumerate(recipe.stages) if i in keep or isinstance(cfg, BenchConfig)]
    return recipe.model_copy(update={"stages": stages}), list(dropped.values())


def _quantizer_missing(fmt) -> list[str]:
    """Modules the quantize backend of the format ``fmt`` needs that are not importable here."""
    from edgekit_runtimes.base import missing_modules

    return missing_modules(getattr(fmt.quantize_backend(), "REQUIRES", ()))
