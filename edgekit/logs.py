"""Keeping third-party chatter out of edgekit's output."""

from __future__ import annotations

import logging
from contextlib import contextmanager

# Notices libraries log on every run that say nothing about the user's work, by logger: torchao's optional
# CUDA/CPU kernels that do not load on this machine, and torch's deprecation note for the Enums torchao
# registers with pytree. Only these messages are dropped; every other record of those loggers passes.
LIBRARY_NOISE = {
    "torchao": ("Failed to load ", "Skipping import of cpp extensions"),
    "torch.utils._pytree": ("is an Enum subclass and is now natively supported",),
}


class _DropNotices(logging.Filter):
    def __init__(self, needles: tuple[str, ...]) -> None:
        super().__init__()
        self.needles = needles

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(n in text for n in self.needles)


def quiet_libraries() -> None:
    """Drop :data:`LIBRARY_NOISE` from now on (call before the libraries are imported; calling again is a no-op)."""
    for name, needles in LIBRARY_NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNotices) for f in logger.filters):
            logger.addFilter(_DropNotices(needles))


@contextmanager
def quiet_logging():
    """Quantizers and converters log advice through the root logger; keep it out of the user's terminal."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
