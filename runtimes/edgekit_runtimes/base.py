"""The contract every runtime adapter fulfils.

An adapter declares the artifact formats it takes and the Python modules it
needs; ``load`` returns a :class:`Session` whose ``run`` maps named numpy
inputs to named numpy outputs. Timing, metrics and reports are not here: they
are core code shared by every adapter.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np


def missing_modules(names) -> list[str]:
    """Those of the module ``names`` that are not importable here (nothing is imported)."""
    return [m for m in names if importlib.util.find_spec(m) is None]


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name, e.g. "int64", "float32"; "string" etc. when not numeric
    shape: tuple[int | str | None, ...]  # int: fixed; str/None: dynamic

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)


class Session(ABC):
    """A loaded model ready to run."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    max_seq_len: int | None = None  # longest sequence the model takes, when it has static buckets

    def details(self) -> dict:
        """Runtime facts worth a line in the report (e.g. whether a delegate took over)."""
        return {}

    @abstractmethod
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once. ``feeds`` holds exactly the declared inputs."""

    def close(self) -> None:  # noqa: B027 - not abstract: most sessions have nothing to free
        pass


class RuntimeAdapter(ABC):
    name: ClassVar[str]
    formats: ClassVar[tuple[str, ...]]
    requires: ClassVar[tuple[str, ...]]  # importable module names
    description: ClassVar[str] = ""
    isolate: ClassVar[bool] = False  # probe unknown models in a subprocess before loading them in-process
    explicit_only: ClassVar[bool] = False  # used only when named (e.g. a GPU adapter), never picked by default

    @classmethod
    def missing(cls) -> list[str]:
        """Modules this adapter needs that are not importable here."""
        return missing_modules(cls.requires)

    @classmethod
    def available(cls) -> bool:
        return not cls.missing()

    @abstractmethod
    def load(self, path: Path, threads: int = 1) -> Session:
        """Load the model at ``path`` (a file or an artifact directory)."""


@contextlib.contextmanager
def native_stderr_silenced():
    """Silence what native libraries print straight to file descriptor 2 (e.g. LiteRT's
    "INFO: Created TensorFlow Lite XNNPACK delegate", absl's start-up lines)."""
    try:
        saved = os.dup(2)
    except OSError:  # no real stderr (embedded interpreters)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
