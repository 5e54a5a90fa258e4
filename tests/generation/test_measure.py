import os

import pytest

from edgekit.generation.measure import measure_in_process

PROBE = "tests.generation.affinity_probe"


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this system")
def test_measurement_process_runs_on_the_cpus_asked_for(tmp_path):
    mine = sorted(os.sched_getaffinity(0))
    spec = {"path": "probe"}
    assert measure_in_process(spec, tmp_path / "a", module=PROBE)["cpus"] == mine  # unpinned: the parent's CPUs
    assert measure_in_process(spec, tmp_path / "b", module=PROBE, cpus={mine[-1]})["cpus"] == [mine[-1]]
    assert sorted(os.sched_getaffinity(0)) == mine  # the parent is not pinned
