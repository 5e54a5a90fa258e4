"""The generative stage kinds (int4, distill-decoder, bench-generate, distill-seq2seq, bench-seq2seq) as the
one-pass pipeline sees them.

They run in the generative pipelines (:mod:`edgekit.generation.pipeline` for text-generation checkpoints,
:mod:`edgekit.generation.seq2seq_pipeline` for text2text-generation ones); a recipe that uses them on any
other model is refused when it is planned, before any work starts.
"""

from __future__ import annotations

from edgekit import formats
from edgekit.errors import InternalError
from edgekit.recipe.config import (
    DistillDecoderConfig,
    DistillSeq2SeqConfig,
    GenerateBenchConfig,
    Int4Config,
    Seq2SeqBenchConfig,
)
from edgekit.stages import CHECKPOINT, StageIO, declare, register

WHY = "applies to generative models (text-generation and text2text-generation checkpoints) only"


def _not_here(config, parent, ctx, out_dir):
    raise InternalError(f"stage {config.kind} reached the one-pass pipeline")


for _cfg, _name in (
    (Int4Config, "onnx-int4"),
    (DistillDecoderConfig, "student"),
    (GenerateBenchConfig, "bench"),
    (DistillSeq2SeqConfig, "student"),
    (Seq2SeqBenchConfig, "bench"),
):
    register(_cfg, lambda c, fmt, n=_name: n)(_not_here)
    declare(
        _cfg,
        StageIO(frozenset({CHECKPOINT, *formats.names()}), refuses=lambda c, fmt: WHY),
    )
