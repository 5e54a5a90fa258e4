"""The converter contract: export, then validate parity (a typed error on mismatch)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
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
    requires: ClassVar[tuple[str, ...]] = ()  # importable module names the export needs (beside torch)

    @classmethod
    def refusal(cls, ckpt) -> str | None:
        """Why this converter does not export ``ckpt`` (refused before any work), or None."""
        return cls.unsupported.get(str(ckpt.config.get("model_type")))

    @classmethod
    def missing(cls) -> list[str]:
        """Modules this converter needs that are not importable here."""
        from edgekit_runtimes.base import missing_modules

        return missing_modules(cls.requires)

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


@contextlib.contextmanager
def quiet_export():
    """Keep an exporter's progress lines, warnings and native logs (absl, XNNPACK, torchao) out of edgekit's
    output; errors still propagate as exceptions."""
    from edgekit.logs import quiet_logging
    from edgekit_runtimes.base import native_stderr_silenced

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("torchao").setLevel(logging.ERROR)
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
        native_stderr_silenced(),
        quiet_logging(),
    ):
        warnings.simplefilter("ignore")
        yield
