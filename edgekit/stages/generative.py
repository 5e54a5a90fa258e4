"""The decoder stage kinds (int4, distill-decoder, bench-generate) as the one-pass pipeline sees them.

They run in the generative pipeline (:mod:`edgekit.generation.pipeline`), which a text-generation
checkpoint takes; a recipe that uses them on any other model is refused when it is planned, before any
work starts.
"""

from __future__ import annotations

from edgekit import formats
from edgekit.errors import InternalError
from edgekit.recipe.config import DistillDecoderConfig, GenerateBenchConfig, Int4Config
from edgekit.stages import CHECKPOINT, StageIO, declare, register

WHY = "applies to decoder language models (text-generation checkpoints) only"


def _not_here(config, parent, ctx, out_dir):
    raise InternalError(f"stage {config.kind} reached the one-pass pipeline")


for _cfg, _name in ((Int4Config, "onnx-int4"), (DistillDecoderConfig, "student"), (GenerateBenchConfig, "bench")):
    register(_cfg, lambda c, fmt, n=_name: n)(_not_here)
    declare(
        _cfg,
        StageIO(frozenset({CHECKPOINT, *formats.names()}), refuses=lambda c, fmt: WHY),
    )
