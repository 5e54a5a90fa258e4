"""Keeping third-party chatter out of edgekit's output."""

from __future__ import annotations

import logging
from contextlib import contextmanager


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
