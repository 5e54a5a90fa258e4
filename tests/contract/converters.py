"""The contract every converter (an ``edgekit.converters`` entry point) must meet.

A converter's test module subclasses :class:`ConverterContract` and provides the
class-scoped fixture ``converter`` (an instance); it may override ``export_config``
(the export stage config its format is converted with; default: that format's
defaults). The tiny checkpoint is converted once for the class, and once more
against a deliberately broken reference, which must fail parity with the typed
:class:`~edgekit.errors.ParityError` (exit 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edgekit.checkpoint import load_checkpoint
from edgekit.data.calibration import load_text_data
from edgekit.errors import ExitCode, ParityError
from edgekit.measure.fidelity import cosine_rows
from edgekit.pipeline.context import StageContext
from edgekit.plugins import converters, runtime_adapters, runtime_for_format
from edgekit.recipe.config import ExportConfig
from edgekit.stages import CHECKPOINT, default_name, output_format
from edgekit_converters.base import Converter


def stage_context(ckpt_path: Path, reference=None) -> StageContext:
    """The context an export stage gives its converter; ``reference``: a checkpoint to compare with instead."""
    from edgekit_runtimes.torch_eager import TorchEagerAdapter

    session = TorchEagerAdapter().from_checkpoint(reference, threads=1) if reference is not None else None
    return StageContext(
        checkpoint=load_checkpoint(ckpt_path),
        data=load_text_data(),
        recipe_digest="contract",
        threads=1,
        progress=False,
        _reference_session=session,
    )


def perturbed(ckpt_path: Path):
    """The checkpoint with its largest weight scaled by 1.5, in memory: a reference the export cannot match."""
    import torch

    ckpt = load_checkpoint(ckpt_path)
    with torch.no_grad():
        max(ckpt.model.parameters(), key=lambda p: p.numel()).mul_(1.5)
    return ckpt


@dataclass
class Converted:
    out: Path
    validation: dict
    ctx: StageContext


class ConverterContract:
    @pytest.fixture(scope="class")
    def export_config(self, converter) -> ExportConfig:
        return ExportConfig(kind="export", format=converter.format)

    @pytest.fixture(scope="class")
    def converted(self, converter, export_config, tiny_ckpt, tmp_path_factory) -> Converted:
        ctx = stage_context(tiny_ckpt)
        out = tmp_path_factory.mktemp(f"contract-{converter.name}")
        validation, _ = converter.convert(ctx, export_config, out)
        return Converted(out, validation, ctx)

    def test_declares_name_format_model_file_and_validating_runtime(self, converter):
        assert isinstance(converter, Converter)
        assert converter.name and converter.format and converter.model_file and converter.runtime
        assert converter.format in runtime_adapters()[converter.runtime].formats

    def test_is_the_entry_point_for_its_format(self, converter):
        assert converters()[converter.format] is type(converter)

    def test_the_export_stage_makes_its_format_from_a_checkpoint(self, converter, export_config):
        assert export_config.format == converter.format
        assert output_format(export_config, CHECKPOINT) == converter.format
        assert (
            default_name(ExportConfig(kind="export", format=converter.format), converter.format)
            == f"{converter.format}-fp32"
        )

    def test_writes_a_model_file_the_formats_runtime_loads_and_runs(self, converter, converted):
        path = converted.out / converter.model_file
        assert path.is_file() and path.stat().st_size > 0
        session = runtime_for_format(converter.format).load(path, threads=1)
        ctx = converted.ctx
        want = [s.name for s in ctx.reference_session().outputs]
        extra = list(ctx.checkpoint.task_def.ecosystem_outputs) if converter.ecosystem_outputs else []
        assert [s.name for s in session.outputs] == want + extra
        feeds = ctx.parity_feeds(session)[0]
        got, ref = session.run(feeds)[want[0]], ctx.reference_outputs(feeds)
        assert got.shape == ref.shape and np.isfinite(got).all()
        assert float(np.abs(got - ref).max()) <= converted.validation["atol"]

    def test_parity_is_recorded_within_the_stated_tolerance(self, converted, export_config):
        v = converted.validation
        assert (v["atol"], v["required_min_cosine"]) == (export_config.atol, export_config.min_cosine)
        assert 0 <= v["max_abs_diff"] <= v["atol"]
        assert v["required_min_cosine"] <= v["min_cosine"] <= 1 + 1e-6

    def test_a_broken_reference_is_a_typed_parity_error(self, converter, export_config, tiny_ckpt, tmp_path):
        ctx = stage_context(tiny_ckpt, reference=perturbed(tiny_ckpt))
        feeds = ctx.parity_feeds(ctx.reference_session())[0]
        honest = stage_context(tiny_ckpt).reference_outputs(feeds)
        assert cosine_rows(honest, ctx.reference_outputs(feeds)).min() < export_config.min_cosine  # truly broken
        with pytest.raises(ParityError) as err:
            converter.convert(ctx, export_config, tmp_path)
        assert err.value.exit_code == ExitCode.GATE
        assert err.value.message.startswith(f"{converter.name} export: does not match the PyTorch reference")
