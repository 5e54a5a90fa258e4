"""The reliability catalogue: every case is marked ``reliability`` (run alone with ``-m reliability``,
or with its counts through ``python benchmarks/reliability.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)
