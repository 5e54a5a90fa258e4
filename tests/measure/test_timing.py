import time

import numpy as np
import pytest

from edgekit.measure.timing import PeakRSS, interleaved, summarize


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
    del block  # freed after the sampler's last look: a starved sampler thread still sees it
    assert mem.delta_mb > 40


def test_peak_rss_counts_the_block_not_what_was_live_or_freed_before():
    def chunks(mb: int) -> list[bytes]:  # heap (not mmap) allocations, as a model's many small buffers are
        return [bytes(4000) for _ in range(mb * 2**20 // 4000)]

    live = np.ones(96 * 2**20 // 8)  # another model, still loaded
    freed = chunks(128)
    pin = bytes(4000)  # keeps the freed chunks inside the heap, where they could be reused unseen
    del freed
    with PeakRSS(interval_s=0.001) as mem:
        block = chunks(64)
        time.sleep(0.05)
    del block, pin, live
    assert 50 < mem.delta_mb < 90  # only this block: neither the live array nor the freed chunks
    assert mem.peak_mb > mem.delta_mb + 90


def _matmul_onnx(path, rows: int, cols: int) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((rows, cols)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", rows])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", cols])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_peak_rss_of_a_row_is_the_models_own_memory(tmp_path):
    """A 20 MB model reports tens of MB, not the benchmarking process's hundreds."""
    from edgekit.measure.harness import BenchSettings, Target, measure
    from edgekit.plugins import get_runtime

    adapter = get_runtime("onnxruntime")
    targets = []
    for name, cols in (("small", 64), ("big", 2560)):
        path = tmp_path / f"{name}.onnx"
        _matmul_onnx(path, 2048, cols)
        targets.append(
            Target(
                name=name,
                format="onnx",
                precision="fp32",
                runtime="onnxruntime",
                path=str(path),
                size_bytes=path.stat().st_size,
                load=lambda p=path: adapter.load(p, threads=1),
            )
        )
    ballast = np.ones(256 * 2**20 // 8)  # the process holds far more than either model
    rows = {r["name"]: r for r in measure(targets, BenchSettings(threads=1, warmup=1, runs=3), progress=False)}
    del ballast
    big, small = rows["big"], rows["small"]
    assert big["size_bytes"] / 2**20 == pytest.approx(20, rel=0.01)
    assert 20 <= big["peak_rss_mb"] < 120, big
    assert small["peak_rss_mb"] < big["peak_rss_mb"] - 15
    assert min(big["process_peak_rss_mb"], small["process_peak_rss_mb"]) > 256 + big["peak_rss_mb"]
