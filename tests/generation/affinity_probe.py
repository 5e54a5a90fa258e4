"""A measurement module for tests: its result is the CPUs its process may run on (``measure_in_process`` pinning)."""

import os
import sys

from edgekit.generation.measure import main

if __name__ == "__main__":
    main(sys.argv[1:], run=lambda spec: {"cpus": sorted(os.sched_getaffinity(0))})
