"""The converter contract: export, then validate parity (a typed error on mismatch)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar


class Converter(ABC):
    name: ClassVar[str]
    format: ClassVar[str]
    model_file: ClassVar[str]
    runtime: ClassVar[str]  # the adapter used to validate parity
    # the graph also has the task's ecosystem outputs after its own (Task.ecosystem_outputs: last_hidden_state)
    ecosystem_outputs: ClassVar[bool] = False
    # model types whose export this converter is known to get wrong, and why: refused before any work
    unsupported: ClassVar[dict[str, str]] = {}

    @abstractmethod
    def export(self, ctx, config, out_dir: Path) -> Path:
        """Write the model into ``out_dir``; return the model file path."""

    def convert(self, ctx, config, out_dir: Path) -> tuple[dict, object]:
        """Export, then check parity with the reference. Returns the validation record and the
        session it was measured on (the caller records its self-check with it)."""
        from edgekit.plugins import get_runtime

        path = self.export(ctx, config, out_dir)
        session = get_runtime(self.runtime).load(path, threads=ctx.threads)
        return ctx.check_parity(session, f"{self.name} export", config.atol, config.min_cosine), session
