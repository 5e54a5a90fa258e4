"""Export stage: PyTorch checkpoint -> a format, through its converter."""

from __future__ import annotations

from edgekit.errors import RecipeError
from edgekit.plugins import converters
from edgekit.recipe.config import ExportConfig
from edgekit.stages import CHECKPOINT, StageResult, register, require_input


@register(
    ExportConfig,
    lambda c, fmt: f"{fmt}-fp32",
    takes={CHECKPOINT},
    makes=lambda c, fmt: c.format,
    precision=lambda c: "fp32",
)
def run_export(config: ExportConfig, parent, ctx, out_dir) -> StageResult:
    require_input(config, parent)
    available = converters()
    if config.format not in available:
        raise RecipeError(f"stage export: no converter for format {config.format!r}")
    converter = available[config.format]()
    validation, session = converter.convert(ctx, config, out_dir)
    return StageResult(
        format=converter.format,
        precision="fp32",
        model_file=converter.model_file,
        validation=validation,
        session=session,
    )
