"""Export stage: PyTorch checkpoint -> a format, through its converter."""

from __future__ import annotations

from edgekit.errors import RecipeError
from edgekit.plugins import converters
from edgekit.recipe.config import ExportConfig
from edgekit.stages import StageResult, register


@register(ExportConfig, lambda c, fmt: f"{c.format}-fp32")
def run_export(config: ExportConfig, parent, ctx, out_dir) -> StageResult:
    if parent.format != "hf-checkpoint":
        raise RecipeError(f"stage export reads a checkpoint, but its input {parent.name!r} is {parent.format}")
    available = converters()
    if config.format not in available:
        raise RecipeError(f"stage export: no converter for format {config.format!r}")
    converter = available[config.format]()
    validation, session = converter.convert(ctx, config, out_dir)
    return StageResult(format=converter.format, precision="fp32", model_file=converter.model_file,
                       validation=validation, session=session)
