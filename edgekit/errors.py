"""Every error edgekit raises on purpose, and the exit code each maps to.

Exit codes (stable, documented in the README):
    0  success
    1  internal error (a bug, or a library failing in a way we did not foresee)
    2  bad input or usage (missing file, malformed recipe, unknown runtime, ...)
    3  a check failed (export parity, accuracy budget, regression gate)
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    INPUT = 2
    GATE = 3


class EdgekitError(Exception):
    """Base of all edgekit errors. The message is one line a user can act on."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InternalError(EdgekitError):
    exit_code = ExitCode.INTERNAL


class InputError(EdgekitError):
    """The user gave us something we cannot use."""

    exit_code = ExitCode.INPUT


class CheckpointError(InputError):
    """The checkpoint directory is missing, incomplete or unsafe to load."""


class RecipeError(InputError):
    """The recipe is unknown, malformed, or has an unknown key or a wrong type."""


class CalibrationError(InputError):
    """Calibration or evaluation data is missing, empty or malformed."""


class ModelFileError(InputError):
    """A model file is not what it claims to be (e.g. not ONNX)."""


class OutputError(InputError):
    """The output directory cannot be created or written."""


class RuntimeUnavailableError(InputError):
    """The runtime adapter asked for is unknown or its library is not installed."""


class ArtifactError(InputError):
    """An artifact directory is missing its manifest or its files."""


class GateFailed(EdgekitError):
    """A check on the result failed: the run worked, the result is not acceptable."""

    exit_code = ExitCode.GATE


class ParityError(GateFailed):
    """An exported or transformed model does not match its reference within tolerance."""


class RemoteError(InputError):
    """A remote target cannot be reached, or lacks what the runner needs."""


class ServeError(InputError):
    """``edgekit serve`` cannot listen where it was asked to (port in use, unknown host, no permission)."""
