import time

import numpy as np

from edgekit.benchmark import PeakRSS, interleaved, summarize


def test_summarize_percentiles():
    lat = summarize(np.arange(1, 101, dtype=float))
    assert lat.p50 == 50.5 and round(lat.p90, 1) == 90.1 and round(lat.p99, 2) == 99.01
    assert lat.runs == 100


def test_interleaved_times_every_runner_the_same_number_of_times():
    calls = {"a": 0, "b": 0}

    def a():
        calls["a"] += 1

    def b():
        calls["b"] += 1
        time.sleep(0.002)

    la, lb = interleaved([a, b], warmup=2, runs=11, rounds=3, settle_s=0)
    assert calls == {"a": 13, "b": 13}
    assert la.runs == lb.runs == 11
    assert lb.p50 > la.p50 and lb.p50 >= 2.0


def test_peak_rss_sees_an_allocation():
    with PeakRSS(interval_s=0.001) as mem:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB
        time.sleep(0.05)
        del block
    assert mem.delta_mb > 40
